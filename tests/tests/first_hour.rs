//! What a new operator trips over in the first hour (issue 26): a playbook's one name in every
//! language, notifications that survive `| head`, a server that says where it listens, a first
//! compile that says it is compiling, `host runs` with a header, `host check` on routes nobody
//! can reach.

use std::process::Command;

use runbook_tests::polyglot::{self as guests, Lang};
use runbook_tests::server::Server;
use runbook_tests::{Sandbox, calls, guests as hostile, host_bin};

/// `host new x-y --lang L` built as its README says, installed in a plugin dir under the file
/// name the build gave it, granted by the documented (describe) name: the grant holds for the
/// granted path and not for another; `host check` names a file named otherwise.
fn granted_by_its_describe_name(lang: Lang) {
    let test = format!("{}_template_is_granted_by_its_describe_name", lang.flag());
    let (project, wasm) = match guests::template(lang) {
        Ok(built) => built,
        Err(reason) => return guests::skipped(&test, lang, &reason),
    };
    let name = format!("check-{}", lang.flag());
    let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("`[plugins.{name}.grants]`")),
        "{readme}"
    );

    let sandbox = Sandbox::new();
    let file_name = wasm.file_name().unwrap().to_str().unwrap().to_string();
    std::fs::create_dir_all(sandbox.path().join("plugins")).unwrap();
    std::fs::copy(&wasm, sandbox.path().join("plugins").join(&file_name)).unwrap();
    let granted = sandbox.path().join("granted");
    let other = sandbox.path().join("other");
    std::fs::create_dir_all(&granted).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    sandbox.write(
        "host.toml",
        format!(
            "plugin-dirs = [\"plugins\"]\n[plugins.{name}.grants]\nfs-meta = [{:?}]\n",
            granted.display()
        ),
    );

    let list = sandbox.host(&["list", "--json"]).json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(names.contains(&name.as_str()), "{list:#}");
    let stem = file_name.trim_end_matches(".wasm");
    if stem != name {
        assert!(
            !names.contains(&stem),
            "listed under its file name too: {list:#}"
        );
    }

    let run_on = |path: &std::path::Path| {
        let path = format!("path={}", path.display());
        let run = sandbox.host(&[
            "run",
            &name,
            "--json",
            "-p",
            &path,
            "-p",
            "warn-percent=101",
        ]);
        (run.code, run.json())
    };
    let (code, run) = run_on(&granted);
    assert_eq!(
        (code, run["status"].as_str()),
        (0, Some("no-action")),
        "{run:#}"
    );
    assert_eq!(run["playbook"], name.as_str());
    assert_eq!(
        calls(&run, "fs-read", "usage")[0]["result"],
        "ok",
        "{run:#}"
    );
    let (_, run) = run_on(&other);
    assert_eq!(
        calls(&run, "fs-read", "usage")[0]["result"],
        "denied",
        "{run:#}"
    );

    // The file given by path is the same playbook, with the same grants.
    let path = format!("path={}", granted.display());
    let wasm_arg = sandbox.path().join("plugins").join(&file_name);
    let by_path = sandbox.host(&["run", wasm_arg.to_str().unwrap(), "--json", "-p", &path]);
    assert_eq!(
        calls(&by_path.json(), "fs-read", "usage")[0]["result"],
        "ok"
    );

    let check = sandbox.host(&["check"]);
    let renamed = format!("the file is named {stem:?} but describe() names the playbook {name:?}");
    assert_eq!(
        check.stderr.contains(&renamed),
        stem != name,
        "{}",
        check.stderr
    );
    assert!(
        !check.stderr.contains("no playbook named"),
        "{}",
        check.stderr
    );
}

#[test]
fn rust_template_is_granted_by_its_describe_name() {
    granted_by_its_describe_name(Lang::Rust);
}

#[test]
fn python_template_is_granted_by_its_describe_name() {
    granted_by_its_describe_name(Lang::Python);
}

#[test]
fn js_template_is_granted_by_its_describe_name() {
    granted_by_its_describe_name(Lang::Js);
}

#[test]
fn check_names_files_that_describe_one_playbook_twice() {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("hostile");
    let alone = sandbox.host(&["check", "--plugin-dir", "plugins"]);
    assert!(
        !alone.stderr.contains("describe the playbook"),
        "{}",
        alone.stderr
    );
    assert!(
        !alone.stderr.contains("the file is named"),
        "{}",
        alone.stderr
    );

    std::fs::copy(
        hostile::path("hostile"),
        sandbox.path().join("plugins/zz-copy.wasm"),
    )
    .unwrap();
    let check = sandbox.host(&["check", "--plugin-dir", "plugins"]);
    assert_eq!(check.code, 1, "{}", check.stderr);
    assert!(
        check
            .stderr
            .contains("2 files describe the playbook \"hostile\"")
            && check
                .stderr
                .contains("zz-copy.wasm; only the last one is used"),
        "{}",
        check.stderr
    );
    assert!(
        check.stderr.contains(
            "zz-copy.wasm: the file is named \"zz-copy\" but describe() names the playbook \"hostile\""
        ),
        "{}",
        check.stderr
    );
    let inspect = sandbox.host(&["inspect", "hostile", "--plugin-dir", "plugins", "--json"]);
    assert!(
        inspect.json()["origin"]
            .as_str()
            .unwrap()
            .ends_with("zz-copy.wasm")
    );
}

/// `host run disk-full | head -2`: the reader leaves after two lines; the run goes on to its
/// end, ops gets its message on stderr, nothing is recorded as failed.
#[test]
fn a_run_piped_into_head_loses_nothing() {
    let sandbox = Sandbox::new();
    let script = format!(
        "set -o pipefail; '{}' run disk-full -p warn-percent=0 -p mounts=/ | head -2; \
         echo \"host exited ${{PIPESTATUS[0]}}\" >&2",
        host_bin().display()
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .current_dir(sandbox.path())
        .env("RUNBOOK_CACHE_DIR", sandbox.cache_dir())
        .env("RUNBOOK_STORE", sandbox.store())
        .env_remove("RUNBOOK_CONFIG")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(
        stdout.starts_with("▶ disk-full (built-in, cli)"),
        "{stdout}"
    );
    // Over a warning threshold of 0 %: escalated, and the exit status says so (not a panic, not
    // a SIGPIPE death).
    assert!(stderr.contains("host exited 3"), "{stderr}");
    assert!(
        stderr.contains("── notify ops"),
        "ops printed on stderr: {stderr}"
    );
    assert!(!stderr.contains("panic"), "{stderr}");

    let runs = sandbox.host(&["runs", "--json"]).json();
    assert_eq!(runs[0]["status"], "escalated", "{runs:#}");
    let failed = sandbox.host(&["notify", "list", "--state", "failed", "--json"]);
    assert_eq!(failed.json(), serde_json::json!([]), "{}", failed.stdout);
    let delivered = sandbox
        .host(&["notify", "list", "--state", "delivered", "--json"])
        .json();
    assert_eq!(delivered[0]["channel"], "ops", "{delivered:#}");
}

#[test]
fn serve_says_where_it_listens_and_where_the_console_is() {
    let sandbox = Sandbox::new();
    // Server::start configures [webhooks.api]: the console is readable.
    let mut server = Server::start(&sandbox, &[]);
    let log = server.log(&sandbox);
    let address = format!("http://127.0.0.1:{}", server.port);
    assert!(log.contains(&format!("listening on {address} ")), "{log}");
    assert!(log.contains(&format!("console: {address}/ui")), "{log}");
    server.stop("TERM");

    let closed = Sandbox::new();
    closed.write("host.toml", "");
    let mut server = Server::start_as_configured(&closed, &[]);
    let log = server.log(&closed);
    assert!(log.contains("listening on http://127.0.0.1:"), "{log}");
    assert!(
        !log.contains("console:"),
        "no console without [webhooks.api]: {log}"
    );
    server.stop("TERM");
}

#[test]
fn the_first_compile_says_so_and_the_cached_one_does_not() {
    let sandbox = Sandbox::new();
    let wasm = sandbox.path().join("hostile.wasm");
    std::fs::copy(hostile::path("hostile"), &wasm).unwrap();
    let args = ["inspect", wasm.to_str().unwrap()];
    let first = sandbox.host(&args);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(
        first
            .stderr
            .contains("compiling hostile.wasm (first run; cached afterwards)…"),
        "{}",
        first.stderr
    );
    let second = sandbox.host(&args);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(!second.stderr.contains("compiling"), "{}", second.stderr);
}

#[test]
fn runs_lists_under_a_header() {
    let sandbox = Sandbox::new();
    let empty = sandbox.host(&["runs"]);
    assert!(empty.stdout.starts_with("no runs yet"), "{}", empty.stdout);
    let run = sandbox
        .host(&["run", "disk-full", "--json", "-p", "mounts=/"])
        .json();
    let runs = sandbox.host(&["runs"]);
    let lines: Vec<&str> = runs.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", runs.stdout);
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["RUN", "STARTED", "PLAYBOOK", "STATUS", "TRIGGER", "SUMMARY"]
    );
    assert!(
        lines[1].starts_with(run["run_id"].as_str().unwrap()),
        "{}",
        runs.stdout
    );
    // Columns line up: the playbook starts where its header does.
    assert_eq!(lines[0].find("PLAYBOOK"), lines[1].find("disk-full"));
}

#[test]
fn check_warns_of_routes_no_alert_can_reach() {
    let sandbox = Sandbox::new();
    let route = "[[route]]\nmatchers = ['alertname=\"DiskFull\"']\nplaybook = \"disk-full\"\n";
    sandbox.write("host.toml", route);
    let check = sandbox.host(&["check"]);
    assert_eq!(check.code, 1, "{}", check.stderr);
    assert!(
        check.stderr.contains(
            "[[route]]: 1 route(s) but no [webhooks.alertmanager] auth, so every alert gets 401; \
             add [webhooks.alertmanager]"
        ),
        "{}",
        check.stderr
    );
    sandbox.write(
        "host.toml",
        format!("{route}[webhooks.alertmanager]\nauth = {{ kind = \"none\" }}\n"),
    );
    let check = sandbox.host(&["check"]);
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
}
