//! Playbooks in any language: `host new` templates in Rust, Python and JS scaffolded, built as
//! their README says and run by the real host; the Python and JS examples against their Rust
//! counterparts on the same fixtures; a Python playbook branching on a denied call.

use runbook_tests::docker::{TestContainer, docker, free_port};
use runbook_tests::http::Peer;
use runbook_tests::polyglot::{self as guests, Lang, readme_command};
use runbook_tests::{Sandbox, calls};

fn run_json(sandbox: &Sandbox, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["run", "--json"];
    all.extend_from_slice(args);
    let run = sandbox.host(&all);
    (run.code, run.json())
}

/// The same template in every language: denied → the playbook's own branch; granted → a real
/// statvfs and a notification over the threshold.
fn template_end_to_end(lang: Lang) {
    let test = format!("{}_template_end_to_end", lang.flag());
    let (project, wasm) = match guests::template(lang) {
        Ok(built) => built,
        Err(reason) => return guests::skipped(&test, lang, &reason),
    };
    let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
    let lines: Vec<&str> = readme.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 6, "a title and five lines:\n{readme}");
    let test_cmd = readme_command(&readme, "Test:");
    assert!(
        test_cmd.starts_with("host run --plugin ") && test_cmd.ends_with(" --dry-run --json"),
        "{test_cmd}"
    );

    // The README's test line, with no grants: fs-read is denied and the playbook says so.
    let sandbox = Sandbox::new();
    let wasm = wasm.to_str().unwrap();

    // The README's replay line: the template's fixture (disk at 95 %) passes, no disk read.
    let replay_cmd = readme_command(&readme, "Replay:");
    assert!(
        replay_cmd.starts_with("host test --plugin "),
        "{replay_cmd}"
    );
    let fixture = project.join("tests/over-threshold.json");
    let config = project.join("tests/host.toml");
    // A sandbox of its own: the one below expects its first run to compile (cache miss).
    let replay = Sandbox::new().host(&[
        "test",
        "--plugin",
        wasm,
        "--fixture",
        fixture.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(replay.code, 0, "{}{}", replay.stdout, replay.stderr);
    assert!(replay.stdout.starts_with("PASS "), "{}", replay.stdout);
    let (code, run) = run_json(&sandbox, &["--plugin", wasm, "--dry-run"]);
    assert_eq!(
        (code, run["status"].as_str()),
        (0, Some("no-action")),
        "{run:#}"
    );
    assert_eq!(
        run["summary"], "fs-read of /tmp is not granted; grant it in host.toml",
        "{run:#}"
    );
    let usage = calls(&run, "fs-read", "usage");
    assert_eq!(usage.len(), 1, "{run:#}");
    assert_eq!(usage[0]["result"], "denied", "{run:#}");
    assert_eq!(run["timings"]["load"]["cache"], "miss");
    let compile_ms = run["timings"]["load"]["compile_ms"].as_f64().unwrap();

    // Granted by its describe() name (the Rust build's file says check_rust), and over a
    // threshold of 0 %: a real statvfs, then a notification.
    let name = format!("check-{}", lang.flag());
    assert!(
        readme.contains(&format!("[plugins.{name}.grants]")),
        "{readme}"
    );
    sandbox.write(
        "host.toml",
        format!("[plugins.{name}.grants]\nfs-read = [\"/\"]\nnotify = [\"ops\"]\n"),
    );
    let (code, run) = run_json(
        &sandbox,
        &["--plugin", wasm, "-p", "path=/", "-p", "warn-percent=0"],
    );
    assert_eq!(
        (code, run["status"].as_str()),
        (3, Some("escalated")),
        "{run:#}"
    );
    let summary = run["summary"].as_str().unwrap();
    let percent = summary
        .strip_prefix("/ is ")
        .and_then(|s| s.strip_suffix("% full (over 0%)"))
        .unwrap_or_else(|| panic!("{summary}"));
    assert!(percent.parse::<u32>().unwrap() <= 100, "{summary}");
    assert_eq!(run["actions"], serde_json::json!(["notified ops"]));
    assert_eq!(calls(&run, "notify", "send")[0]["result"], "ok", "{run:#}");
    assert_eq!(
        run["timings"]["load"]["cache"], "hit",
        "second run loads from the cache"
    );
    // Seconds to compile a Python or JS component, milliseconds to load it compiled: an order
    // of magnitude apart whatever else the machine is doing (absolute figures are the
    // benchmark's, scripts/bench-languages.sh).
    let load_ms = run["timings"]["load"]["load_ms"].as_f64().unwrap();
    assert!(
        load_ms * 10.0 < compile_ms,
        "cached load {load_ms} ms against a compile of {compile_ms} ms"
    );
}

#[test]
fn rust_template_end_to_end() {
    template_end_to_end(Lang::Rust);
}

#[test]
fn python_template_end_to_end() {
    template_end_to_end(Lang::Python);
}

#[test]
fn js_template_end_to_end() {
    template_end_to_end(Lang::Js);
}

#[test]
fn a_python_playbook_gets_the_error_kind_of_a_denied_call() {
    let test = "a_python_playbook_gets_the_error_kind_of_a_denied_call";
    let (_, template) = match guests::template(Lang::Python) {
        Ok(built) => built,
        Err(reason) => return guests::skipped(test, Lang::Python, &reason),
    };
    let sandbox = Sandbox::new();
    // The template catches `runbook.Denied` and words its own outcome from the detail.
    let (_, run) = run_json(&sandbox, &["--plugin", template.to_str().unwrap()]);
    let steps: Vec<&serde_json::Value> = run["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "step" && e["status"] == "skipped")
        .collect();
    assert_eq!(steps.len(), 1, "{run:#}");
    let call = &calls(&run, "fs-read", "usage")[0];
    assert_eq!(call["result"], "denied", "{run:#}");
    assert!(
        call["detail"]
            .as_str()
            .unwrap()
            .contains("outside the granted fs-read roots")
    );
    assert_eq!(
        steps[0]["detail"], call["detail"],
        "the step carries the Denied exception's detail: {run:#}"
    );
    assert_eq!(run["status"], "no-action");

    // Uncaught, the same exception ends the run with its kind, as a Rust `Err(Error::Denied)`.
    let web_down = guests::example("python-web-down", Lang::Python).unwrap();
    let (code, run) = run_json(
        &sandbox,
        &[web_down.to_str().unwrap(), "-p", "url=http://127.0.0.1:9/"],
    );
    assert_eq!(code, 1, "{run:#}");
    assert_eq!(calls(&run, "http", "probe")[0]["result"], "denied");
    let reason = run["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the playbook returned denied: ") && reason.contains("not granted"),
        "{reason}"
    );
}

/// What must be equal between two languages' runs: outcome, actions, the capability calls in
/// order with their result kinds, and the notification; digits (latencies) are masked.
fn comparable(run: &serde_json::Value) -> serde_json::Value {
    let mask = |s: &str| {
        let mut out = String::new();
        for c in s.chars() {
            if !c.is_ascii_digit() {
                out.push(c);
            } else if !out.ends_with('#') {
                out.push('#');
            }
        }
        out
    };
    let text = |v: &serde_json::Value| mask(&v.to_string());
    let calls: Vec<String> = run["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "call")
        .map(|e| format!("{}.{} → {}", e["interface"], e["function"], e["result"]))
        .collect();
    let notes: Vec<String> = run["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "notify" || e["event"] == "step")
        .map(|e| {
            let mut e = e.clone();
            let e = e.as_object_mut().unwrap();
            e.retain(|k, _| k != "at" && k != "offset_ms" && k != "duration_ms");
            text(&serde_json::Value::Object(e.clone()))
        })
        .collect();
    serde_json::json!({
        "status": run["status"],
        "summary": text(&run["summary"]),
        "actions": text(&run["actions"]),
        "reason": run["reason"],
        "calls": calls,
        "steps and notifications": notes,
    })
}

const WEB_DOWN_GRANTS: &str = "notify = [\"ops\"]\nhttp = [\"http://127.0.0.1:*\"]\n\
    docker = [{ containers = [\"*\"], verbs = [\"read\", \"start\", \"restart\"] }]\n";

#[test]
fn python_web_down_matches_the_rust_web_down() {
    let test = "python_web_down_matches_the_rust_web_down";
    let python = match guests::example("python-web-down", Lang::Python) {
        Ok(wasm) => wasm,
        Err(reason) => return guests::skipped(test, Lang::Python, &reason),
    };
    let python = python.to_str().unwrap();
    let sandbox = Sandbox::new();
    sandbox.write(
        "host.toml",
        // Granted by the name its describe() gives (web-down, like the Rust one), not its file's.
        format!("[plugins.web-down.grants]\n{WEB_DOWN_GRANTS}"),
    );
    let healthy = Peer::status(200);
    let failing = Peer::status(503);
    let closed = format!("http://127.0.0.1:{}/", free_port());
    let web = TestContainer::web();
    docker(&["exec", &web.name, "sh", "-c", "kill $(pidof httpd)"]);
    let container = format!("container={}", web.name);
    let web_url = format!("url={}", web.url("/index.html"));

    let fixtures: Vec<(&str, Vec<String>)> = vec![
        ("up", vec![format!("url={}", healthy.url("/"))]),
        ("refused, no container", vec![format!("url={closed}")]),
        (
            "503, unknown container",
            vec![
                format!("url={}", failing.url("/")),
                "container=rbt-none".into(),
            ],
        ),
        (
            "dead server, dry run",
            vec![web_url.clone(), container.clone(), "--dry-run".into()],
        ),
        ("dead server, restarted", vec![web_url, container]),
        (
            "bad parameter",
            vec!["url=http://x/".into(), "expected-status=500".into()],
        ),
    ];
    for (fixture, params) in &fixtures {
        let mut runs = Vec::new();
        for playbook in ["web-down", python] {
            if params.iter().any(|p| p.starts_with("container=rbt-web")) {
                // The same dead server for both: the first run's restart revived it.
                let kill = "kill $(pidof httpd) 2>/dev/null; true";
                docker(&["exec", &web.name, "sh", "-c", kill]);
            }
            let mut args = vec![playbook, "-p", "timeout-ms=500", "-p", "wait-secs=10"];
            for p in params {
                if p.starts_with("--") {
                    args.push(p);
                } else {
                    args.extend(["-p", p.as_str()]);
                }
            }
            let (code, run) = run_json(&sandbox, &args);
            runs.push((code, comparable(&run)));
        }
        assert_eq!(
            runs[0], runs[1],
            "{fixture}: Rust (left) and Python (right) differ"
        );
        let expected = match *fixture {
            "up" => "no-action",
            "dead server, restarted" => "resolved",
            "bad parameter" => "failed",
            _ => "escalated",
        };
        assert_eq!(runs[0].1["status"], expected, "{fixture}: {:#}", runs[0].1);
    }
}

/// `date -u` N minutes ago, RFC 3339.
fn minutes_ago(minutes: u32) -> String {
    let out = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("-{minutes} min"),
            "+%Y-%m-%dT%H:%M:%S.%3NZ",
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn js_error_rate_matches_the_rust_error_rate() {
    let test = "js_error_rate_matches_the_rust_error_rate";
    let js = match guests::example("js-error-rate", Lang::Js) {
        Ok(wasm) => wasm,
        Err(reason) => return guests::skipped(test, Lang::Js, &reason),
    };
    let rust = guests::example("rust-error-rate", Lang::Rust).unwrap();
    let sandbox = Sandbox::new();
    let mut log = String::new();
    for m in 0..6 {
        log += &format!(
            "{} ERROR db: ConnectionError: refused\n",
            minutes_ago(2 + m)
        );
    }
    for m in 0..3 {
        log += &format!(
            "{} ERROR [TimeoutError] upstream took 30s\n",
            minutes_ago(20 + m)
        );
    }
    log += &format!("{} FATAL worker died\n", minutes_ago(30));
    log += &format!("{} ERROR ValueError: too old to count\n", minutes_ago(90));
    log += "Traceback (most recent call last): no timestamp\n";
    log += &format!("{} INFO all good\n", minutes_ago(1));
    let file = sandbox.write("logs/app.log", log);
    let logs = file.parent().unwrap().display().to_string();
    let grants = format!("fs-read = [\"{logs}\"]\nnotify = [\"ops\"]\n");
    // Both twins describe themselves as `error-rate`: grants follow the name a playbook
    // declares, not the file it was built into.
    sandbox.write(
        "host.toml",
        format!("[plugins.error-rate.grants]\n{grants}"),
    );
    let path = format!("path={}", file.display());
    let fixtures: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "over the threshold",
            vec![&path, "-p", "threshold=5"],
            "escalated",
        ),
        ("under the default threshold", vec![&path], "no-action"),
        (
            "ten-minute window",
            vec![&path, "-p", "window-secs=600", "-p", "threshold=3"],
            "escalated",
        ),
        (
            "dry run",
            vec![&path, "-p", "threshold=0", "--dry-run"],
            "escalated",
        ),
        ("missing file", vec!["path=/nonexistent/app.log"], "failed"),
    ];
    for (fixture, args, expected) in fixtures {
        let mut runs = Vec::new();
        for wasm in [&rust, &js] {
            let mut all = vec![wasm.to_str().unwrap(), "-p"];
            all.extend(&args);
            let (code, run) = run_json(&sandbox, &all);
            runs.push((code, comparable(&run)));
        }
        assert_eq!(
            runs[0], runs[1],
            "{fixture}: Rust (left) and JS (right) differ"
        );
        assert_eq!(runs[0].1["status"], expected, "{fixture}: {:#}", runs[0].1);
    }
    // A parameter that is not a number is refused before either twin starts, in the same words:
    // both declare `threshold` with a numeric default, so the host types it for them.
    let refusals: Vec<(i32, String)> = [&rust, &js]
        .iter()
        .map(|wasm| {
            let run = sandbox.host(&[
                "run",
                "--json",
                wasm.to_str().unwrap(),
                "-p",
                &path,
                "-p",
                "threshold=many",
            ]);
            (run.code, run.stderr.clone())
        })
        .collect();
    assert_eq!(
        refusals[0], refusals[1],
        "Rust (left) and JS (right) refuse differently"
    );
    assert_eq!(refusals[0].0, 2, "{}", refusals[0].1);
    assert!(
        refusals[0]
            .1
            .contains(r#"parameter "threshold" of error-rate is a number: "many" is not one"#),
        "{}",
        refusals[0].1
    );
    // The over-threshold run, in full: the count, the kinds, the notification.
    let (_, run) = run_json(
        &sandbox,
        &[js.to_str().unwrap(), "-p", &path, "-p", "threshold=5"],
    );
    let summary = run["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("10 error lines in the last 60 min of ")
            && summary
                .ends_with("(threshold 5); top: ConnectionError ×6, TimeoutError ×3, other ×1"),
        "{summary}"
    );
    assert_eq!(run["actions"], serde_json::json!(["notified ops"]));
}

#[test]
fn host_wit_writes_the_contract_this_host_implements() {
    let sandbox = Sandbox::new();
    let run = sandbox.host(&["wit", "out/wit"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let repo_wit = guests::repo_root().join("wit");
    let mut names = Vec::new();
    // The current contract's files; older versions kept in subdirectories (wit/0.1.0/) are
    // the host's to load, not a new playbook's to build against.
    for entry in std::fs::read_dir(&repo_wit).unwrap() {
        let name = entry.unwrap().file_name();
        if !name.to_string_lossy().ends_with(".wit") {
            continue;
        }
        let written = std::fs::read(sandbox.path().join("out/wit").join(&name)).unwrap();
        assert_eq!(
            written,
            std::fs::read(repo_wit.join(&name)).unwrap(),
            "{name:?}"
        );
        names.push(name);
    }
    assert_eq!(run.stdout.lines().count(), names.len(), "{}", run.stdout);

    // A project never lands on top of someone's files, and a bad name is a usage error.
    sandbox.write("taken/notes.txt", "mine");
    let run = sandbox.host(&["new", "x", "--lang", "python", "--dir", "taken"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("not empty"), "{}", run.stderr);
    let run = sandbox.host(&["new", "Disk_Check"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(!sandbox.path().join("Disk_Check").exists());
}
