//! A new operator's first hour, as the README tells it: the `host` commands of its opening block
//! and of "Using it", read from README.md itself (so the test follows the README when it
//! changes), run top to bottom in a clean HOME and an empty directory, each checked for its exit
//! status and its first lines. Commands that need something a newcomer does not have yet (a
//! server, an alert file, a playbook they have not built) are skipped by rule and listed.

use std::path::{Path, PathBuf};
use std::process::Command;

use runbook_tests::host_bin;
use runbook_tests::polyglot::repo_root;

/// One `host …` command of the README, as written.
struct Step {
    line: String,
    args: Vec<String>,
    /// `> FILE`: where the README sends stdout.
    redirect: Option<String>,
}

/// The fenced `sh` blocks before "## What it is" and inside "## Using it".
fn readme_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut section = "top".to_string();
    let mut block: Option<String> = None;
    for line in readme.lines() {
        if let Some(open) = &mut block {
            if line.starts_with("```") {
                if section == "top" || section == "## Using it" {
                    blocks.push(std::mem::take(open));
                }
                block = None;
            } else {
                open.push_str(line);
                open.push('\n');
            }
        } else if line.starts_with("```sh") {
            block = Some(String::new());
        } else if line.starts_with("## ") {
            section = line.trim().to_string();
        }
    }
    blocks
}

/// Every `host` command in the blocks (also after `&&`), comments dropped.
fn steps(blocks: &[String]) -> Vec<Step> {
    let mut steps = Vec::new();
    for block in blocks {
        for line in block.lines() {
            let code = line.split(" #").next().unwrap_or_default();
            for part in code.split("&&") {
                let mut words: Vec<String> = part.split_whitespace().map(String::from).collect();
                let is_host = words
                    .first()
                    .is_some_and(|w| w == "host" || w.ends_with("/release/host"));
                if !is_host {
                    continue;
                }
                words.remove(0);
                let redirect = match words.iter().position(|w| w == ">") {
                    Some(at) => {
                        let file = words.get(at + 1).cloned();
                        words.truncate(at);
                        file
                    }
                    None => None,
                };
                steps.push(Step {
                    line: part.trim().to_string(),
                    args: words,
                    redirect,
                });
            }
        }
    }
    steps
}

/// Why a newcomer cannot run this one yet, if so.
fn skip_reason(step: &Step, cwd: &Path) -> Option<String> {
    let first = step.args.first().map(String::as_str);
    if first == Some("serve") {
        return Some("a server (the serve tests start one)".into());
    }
    for arg in &step.args {
        if arg.starts_with('<') && arg != "<id>" {
            return Some(format!("placeholder {arg}"));
        }
        let names_a_file = arg.ends_with(".wasm") || arg.ends_with(".json");
        if names_a_file && !cwd.join(arg).exists() {
            return Some(format!("{arg} is the reader's own file"));
        }
    }
    None
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(home: &Path, cwd: &Path, args: &[String]) -> Ran {
    let output = Command::new("timeout")
        .arg("120")
        .arg(host_bin())
        .args(args)
        .current_dir(cwd)
        .env("HOME", home)
        .env_remove("XDG_CACHE_HOME")
        .env_remove("XDG_STATE_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("RUNBOOK_CONFIG")
        .env_remove("RUNBOOK_STORE")
        .env_remove("RUNBOOK_CACHE_DIR")
        .env("NO_COLOR", "1")
        .output()
        .expect("running host");
    Ran {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// What each subcommand must answer a newcomer: exit status and first lines. A README command
/// this does not know fails the test, so a new one gets its expectation written down.
fn check(step: &Step, ran: &Ran) {
    let args: Vec<&str> = step.args.iter().map(String::as_str).collect();
    let first = ran.stdout.lines().next().unwrap_or_default();
    let said = format!(
        "`{}` exited {}:\n{}\n{}",
        step.line, ran.code, ran.stdout, ran.stderr
    );
    let ok = |cond: bool| assert!(cond, "{said}");
    match args.as_slice() {
        ["run", rest @ ..] => {
            // disk-full escalates (3) on a machine whose disk is over its threshold.
            ok(ran.code == 0 || ran.code == 3);
            if rest.contains(&"--json") {
                let doc: serde_json::Value = serde_json::from_str(&ran.stdout).expect(&said);
                ok(doc["status"].is_string() && doc["run_id"].is_string());
            } else {
                ok(first.starts_with(&format!("▶ {} (built-in", rest[0])));
            }
            ok(!ran.stderr.contains("error:") && !ran.stderr.contains("panic"));
        }
        ["new", name, ..] => {
            ok(ran.code == 0);
            ok(first.starts_with(&format!("created {name} in ")));
        }
        ["wit", ..] => {
            ok(ran.code == 0);
            ok(first.ends_with(".wit"));
        }
        ["list"] => {
            ok(ran.code == 0);
            for builtin in ["disk-full", "bot-down", "web-down", "security"] {
                ok(ran.stdout.lines().any(|l| l.starts_with(builtin)));
            }
        }
        ["inspect", name] => {
            ok(ran.code == 0);
            ok(first.starts_with(&format!("{name} ")));
            ok(ran.stdout.contains("parameters:"));
        }
        ["check"] => {
            ok(ran.code == 0);
            ok(first == "config: (none: built-in defaults)");
            ok(ran.stdout.trim_end().ends_with("all good"));
        }
        ["runs"] => {
            ok(ran.code == 0);
            ok(first.starts_with("RUN") && first.contains("PLAYBOOK") && first.contains("STATUS"));
            ok(ran
                .stdout
                .lines()
                .nth(1)
                .is_some_and(|l| l.starts_with('r')));
        }
        ["runs", "show", ..] => {
            ok(ran.code == 0);
            ok(first.starts_with("run "));
        }
        ["runs", "report", ..] => {
            ok(ran.code == 0);
            ok(first.starts_with("# "));
        }
        // `<id>` is the newest run, which has ended: refused, saying why.
        ["runs", "cancel", ..] => {
            ok(ran.code == 1);
            ok(format!("{}{}", ran.stdout, ran.stderr).contains("nothing to cancel"));
        }
        ["notify", "test", channel] => {
            ok(ran.code == 0);
            ok(ran.stdout.contains(channel) && ran.stdout.contains("delivered"));
        }
        _ => panic!(
            "the README's `{}` is not known to the newcomer test: write down what it must \
             answer in `check`",
            step.line
        ),
    }
}

#[test]
fn the_readme_commands_work_for_a_newcomer() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let steps = steps(&readme_blocks(&readme));
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let cwd = tmp.path().join("work");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&cwd).unwrap();

    let mut ran_lines = Vec::new();
    let mut skipped = Vec::new();
    let mut last_run: Option<String> = None;
    for step in &steps {
        if let Some(why) = skip_reason(step, &cwd) {
            skipped.push(format!("{} ({why})", step.line));
            continue;
        }
        let needs_run = step.args.iter().any(|a| a == "<id>");
        let args: Vec<String> = match (&last_run, needs_run) {
            (None, true) => {
                skipped.push(format!("{} (no run yet)", step.line));
                continue;
            }
            (Some(id), true) => step
                .args
                .iter()
                .map(|a| if a == "<id>" { id.clone() } else { a.clone() })
                .collect(),
            _ => step.args.clone(),
        };
        let ran = run(&home, &cwd, &args);
        check(step, &ran);
        if let Some(file) = &step.redirect {
            std::fs::write(cwd.join(file), &ran.stdout).unwrap();
        }
        if args.first().is_some_and(|a| a == "run") {
            let listed = run(&home, &cwd, &["runs".into(), "--json".into()]);
            let runs: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
            last_run = runs[0]["id"].as_str().map(String::from);
        }
        ran_lines.push(step.line.clone());
    }
    eprintln!(
        "newcomer: ran {} README commands, skipped {}:\n  {}",
        ran_lines.len(),
        skipped.len(),
        skipped.join("\n  ")
    );
    // The README's own first steps are among them: the parse did not come back empty.
    for must in [
        "run disk-full",
        "list",
        "check",
        "runs",
        "new disk-check --lang python",
    ] {
        assert!(
            ran_lines
                .iter()
                .any(|l| l.ends_with(&format!("host {must}"))
                    || l.contains(&format!("host {must} "))),
            "`host {must}` was not run; ran: {ran_lines:#?}"
        );
    }
    // Everything stayed in the clean HOME and the working directory.
    let state: PathBuf = home.join(".local/state/runbook-host/runs.sqlite3");
    assert!(state.is_file(), "no run store in the clean HOME");
    assert!(cwd.join("disk-check/app.py").is_file());
}
