//! What operators expect of a command line: shell completions that parse, a manual page naming
//! every subcommand, a version that names its commit, colour only on a terminal and never with
//! NO_COLOR, and `host health` for container and service health checks.

use std::process::Command;

use runbook_tests::server::Server;
use runbook_tests::{Sandbox, host_bin};

/// The subcommands `host --help` lists (clap's "Commands:" block), without `help`.
fn subcommands(sandbox: &Sandbox) -> Vec<String> {
    let help = sandbox.host(&["--help"]);
    assert_eq!(help.code, 0, "{}", help.stderr);
    let block = help
        .stdout
        .split("Commands:\n")
        .nth(1)
        .expect("a Commands: block");
    let names: Vec<String> = block
        .lines()
        .take_while(|line| line.starts_with("  "))
        // A wrapped description continues further in.
        .filter(|line| !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect();
    assert!(names.len() >= 10, "too few subcommands in {block}");
    names
}

fn installed(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `<shell> -n` on `host completions <shell>`; false when that shell is not installed.
fn completion_parses(sandbox: &Sandbox, shell: &str) -> bool {
    let script = sandbox.host(&["completions", shell]);
    assert_eq!(script.code, 0, "{}", script.stderr);
    assert!(
        script.stdout.contains("host") && script.stdout.contains("serve"),
        "{shell} completions do not complete subcommands:\n{}",
        script.stdout
    );
    if !installed(shell) {
        eprintln!("note: {shell} is not installed: its completions were generated, not parsed");
        return false;
    }
    let path = sandbox.write(&format!("host.{shell}"), &script.stdout);
    let check = Command::new(shell).arg("-n").arg(&path).output().unwrap();
    assert!(
        check.status.success(),
        "{shell} -n rejects the completions: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    true
}

#[test]
fn completions_parse_in_each_shell() {
    let sandbox = Sandbox::new();
    assert!(
        completion_parses(&sandbox, "bash"),
        "bash is always there: its completions must be checked"
    );
    completion_parses(&sandbox, "zsh");
    completion_parses(&sandbox, "fish");
    let unknown = sandbox.host(&["completions", "tcsh"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
}

/// The pages are runbook-host(1), runbook-host-run(1) …: bind9's host(1) keeps its name.
#[test]
fn man_page_renders_and_names_every_subcommand() {
    let sandbox = Sandbox::new();
    let names = subcommands(&sandbox);
    let page = sandbox.host(&["man"]);
    assert_eq!(page.code, 0, "{}", page.stderr);
    assert!(
        page.stdout.contains(".TH runbook-host 1"),
        "{}",
        page.stdout
    );
    assert!(!page.stdout.contains(".TH host 1"), "{}", page.stdout);
    // The synopsis shows the command as typed.
    assert!(page.stdout.contains("\\fBhost\\fR"), "{}", page.stdout);
    for name in &names {
        assert!(
            page.stdout.contains(&format!("runbook\\-host\\-{name}(1)")),
            "runbook-host(1) does not list `{name}`:\n{}",
            page.stdout
        );
    }
    if installed("man") {
        let path = sandbox.write("host.1", &page.stdout);
        let shown = Command::new("man")
            .arg("-l")
            .arg(&path)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(shown.status.success(), "man -l failed: {text}");
        assert!(text.contains("SUBCOMMANDS"), "{text}");
        assert!(!text.contains(".TH") && !text.contains("\\fB"), "{text}");
    } else {
        eprintln!("note: man is not installed: the page was checked as text only");
    }

    // One page per subcommand for packagers, nested ones included.
    let dir = sandbox.path().join("man1");
    let written = sandbox.host(&["man", "--dir", dir.to_str().unwrap()]);
    assert_eq!(written.code, 0, "{}", written.stderr);
    for name in names.iter().map(|n| format!("runbook-host-{n}.1")).chain([
        "runbook-host.1".to_string(),
        "runbook-host-runs-show.1".to_string(),
        "runbook-host-notify-test.1".to_string(),
    ]) {
        let page = std::fs::read_to_string(dir.join(&name))
            .unwrap_or_else(|e| panic!("{name} was not written: {e}"));
        assert!(page.contains(".SH SYNOPSIS"), "{name}:\n{page}");
    }
    let run = std::fs::read_to_string(dir.join("runbook-host-run.1")).unwrap();
    assert!(run.contains(".TH runbook-host-run 1"), "{run}");
    assert!(
        run.contains("\\fBhost run\\fR"),
        "synopsis as typed:\n{run}"
    );
    let clashing: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| !f.starts_with("runbook-host"))
        .collect();
    assert!(
        clashing.is_empty(),
        "pages outside runbook-host*: {clashing:?}"
    );
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let run = Sandbox::new().host(&["--version"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let line = run.stdout.trim();
    let commit = line
        .strip_prefix(&format!("host {} (commit ", env!("CARGO_PKG_VERSION")))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no commit in {line:?}"));
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let in_git = Command::new("git")
        .args(["-C", repo, "rev-parse", "--git-dir"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !in_git {
        assert_eq!(commit, "unknown", "{line}");
        return;
    }
    assert!(
        commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
        "{line}"
    );
    let known = Command::new("git")
        .args([
            "-C",
            repo,
            "cat-file",
            "-e",
            &format!("{commit}^{{commit}}"),
        ])
        .status()
        .unwrap();
    assert!(known.success(), "{commit} is no commit of this repository");
}

/// Commands whose output the CLI colours on a terminal: a check's ok/ERR, an `error:`, and
/// clap's own usage error.
const COLOURED: &[&[&str]] = &[&["check"], &["runs", "show", "r-none"], &["--bogus"]];

const ESC: char = '\u{1b}';

#[test]
fn no_escape_codes_off_a_terminal_or_with_no_color() {
    let sandbox = Sandbox::new();
    for args in COLOURED {
        // Pipes, even with a colour-capable TERM.
        let piped = sandbox.host_env(args, &[("TERM", "xterm-256color")]);
        assert!(
            !piped.stdout.contains(ESC) && !piped.stderr.contains(ESC),
            "host {args:?} into a pipe wrote escape codes:\n{}{}",
            piped.stdout,
            piped.stderr
        );
        // A terminal (script(1) gives the command a pty): colour, unless NO_COLOR is set.
        let coloured = on_a_terminal(&sandbox, args, &[]);
        assert!(
            coloured.contains(&format!("{ESC}[")),
            "host {args:?} on a terminal is not coloured:\n{coloured}"
        );
        let plain = on_a_terminal(&sandbox, args, &[("NO_COLOR", "1")]);
        assert!(
            !plain.contains(ESC),
            "host {args:?} with NO_COLOR wrote escape codes:\n{plain:?}"
        );
        // NO_COLOR wins over a forced colour (no-color.org).
        let forced = on_a_terminal(
            &sandbox,
            args,
            &[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")],
        );
        assert!(!forced.contains(ESC), "host {args:?}: {forced:?}");
    }
}

/// What `host ARGS` writes (stdout and stderr) when both are a terminal.
fn on_a_terminal(sandbox: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command_line = shell_quote(host_bin().to_str().unwrap());
    for arg in args {
        command_line.push(' ');
        command_line.push_str(&shell_quote(arg));
    }
    let output = Command::new("timeout")
        .args(["60", "script", "-qec", &command_line, "/dev/null"])
        .current_dir(sandbox.path())
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("CLICOLOR")
        .env("RUNBOOK_CACHE_DIR", sandbox.cache_dir())
        .env("RUNBOOK_STORE", sandbox.store())
        .env_remove("RUNBOOK_CONFIG")
        .envs(env.iter().copied())
        .output()
        .expect("script(1) from util-linux");
    assert_ne!(output.status.code(), Some(124), "host {args:?} hung");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[test]
fn health_exits_0_for_a_serving_host_and_1_otherwise() {
    let sandbox = Sandbox::new();
    let mut server = Server::start(&sandbox, &[]);
    let healthz = server.url("/healthz");
    let up = sandbox.host(&["health", "--url", &healthz]);
    assert_eq!(up.code, 0, "{}{}", up.stdout, up.stderr);
    assert!(up.stdout.contains("200 OK"), "{}", up.stdout);
    // The environment variable is what a container's HEALTHCHECK can set once.
    let by_env = sandbox.host_env(&["health"], &[("RUNBOOK_HEALTH_URL", &healthz)]);
    assert_eq!(by_env.code, 0, "{}", by_env.stderr);

    // Not a health endpoint: answers, but not 2xx.
    let wrong = sandbox.host(&["health", "--url", &server.url("/no-such-path")]);
    assert_eq!(wrong.code, 1, "{}", wrong.stdout);
    assert!(wrong.stderr.contains("404"), "{}", wrong.stderr);

    server.stop("TERM");
    let down = sandbox.host(&["health", "--url", &healthz, "--timeout", "2"]);
    assert_eq!(down.code, 1, "{}", down.stdout);
    assert!(down.stderr.starts_with("unhealthy: "), "{}", down.stderr);
}
