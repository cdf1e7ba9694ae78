//! The CLI's answers to bad input: a clear message, the right exit code, nothing run.

use runbook_tests::Sandbox;

#[test]
fn unknown_playbook_exits_2_and_lists_known_ones() {
    let run = Sandbox::new().host(&["run", "no-such-playbook"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("unknown playbook \"no-such-playbook\""),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("known playbooks: backup-verify, bot-down, disk-full, health-check, high-memory, security, web-down"),
        "{}",
        run.stderr
    );
}

#[test]
fn param_without_equals_is_refused() {
    let run = Sandbox::new().host(&["run", "disk-full", "-p", "mounts"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("expected key=value, got \"mounts\""),
        "{}",
        run.stderr
    );
}

#[test]
fn unknown_param_is_named_with_the_known_ones() {
    let run = Sandbox::new().host(&["run", "disk-full", "-p", "mount=/"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("has no parameter \"mount\""),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("mounts, warn-percent"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stdout.contains("notify"),
        "nothing may run: {}",
        run.stdout
    );
}

#[test]
fn alert_file_that_is_not_json_gives_line_and_column() {
    let sandbox = Sandbox::new();
    let file = sandbox.write(
        "alert.json",
        "{\n  \"labels\": {\n    \"alertname\": oops\n  }\n}\n",
    );
    let run = sandbox.host(&["run", "disk-full", "--alert-file", file.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("is not valid JSON"), "{}", run.stderr);
    assert!(run.stderr.contains("line 3 column"), "{}", run.stderr);
}

#[test]
fn alert_file_reaches_the_playbook_as_an_alert_trigger() {
    let sandbox = Sandbox::new();
    let file = sandbox.write(
        "alert.json",
        r#"{"status":"firing","alerts":[{"status":"firing","labels":{"alertname":"DiskFull","instance":"web-1"},
            "annotations":{"summary":"disk"},"startsAt":"2026-11-25T10:00:00Z","fingerprint":"abc123"}]}"#,
    );
    let run = sandbox.host(&[
        "run",
        "disk-full",
        "--json",
        "--dry-run",
        "--alert-file",
        file.to_str().unwrap(),
        "-p",
        "paths=",
        "-p",
        "backups=",
    ]);
    let json = run.json();
    assert_eq!(json["trigger"], "alert", "{json:#}");
}

#[test]
fn files_that_are_not_playbooks_are_named_with_the_reason() {
    let sandbox = Sandbox::new();
    sandbox.write("plugins/junk.wasm", b"this is not wasm");
    sandbox.write("plugins/core.wasm", wat::parse_str("(module)").unwrap());
    sandbox.write(
        "plugins/other-world.wasm",
        wat::parse_str("(component)").unwrap(),
    );

    let run = sandbox.host(&["check", "--plugin-dir", "plugins"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let problems: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("problem:"))
        .collect();
    assert_eq!(problems.len(), 3, "{}", run.stderr);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("junk.wasm") && p.contains("not a WebAssembly file"))
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("core.wasm")
                && p.contains("core WebAssembly module, not a component"))
    );
    assert!(problems.iter().any(|p| p.contains("other-world.wasm")
        && p.contains("does not export the runbook:host playbook world")));
    assert!(run.stdout.contains("ok  disk-full"), "{}", run.stdout);

    for (file, reason) in [
        ("plugins/junk.wasm", "not a WebAssembly file"),
        (
            "plugins/other-world.wasm",
            "does not export the runbook:host playbook world",
        ),
    ] {
        let run = sandbox.host(&["run", file]);
        assert_eq!(run.code, 1);
        assert!(
            run.stderr.contains(file) && run.stderr.contains(reason),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn a_plugin_dir_file_overrides_a_builtin_by_name() {
    let sandbox = Sandbox::new();
    // Broken on purpose: the error proves the file, not the built-in, was picked.
    sandbox.write("plugins/disk-full.wasm", b"not wasm");
    let run = sandbox.host(&["run", "disk-full", "--plugin-dir", "plugins"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("plugins/disk-full.wasm"),
        "{}",
        run.stderr
    );
}

#[test]
fn config_errors_carry_line_numbers() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "host.toml",
        "[plugins.disk-full]\ndeadline-secs = 10\nmemroy-mib = 5\n",
    );
    let run = sandbox.host(&["check"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("line 3"), "{}", run.stderr);
    assert!(run.stderr.contains("memroy-mib"), "{}", run.stderr);
}

#[test]
fn list_and_inspect_describe_the_builtin() {
    let sandbox = Sandbox::new();
    let run = sandbox.host(&["list", "--json"]);
    assert_eq!(run.code, 0);
    let list = run.json();
    let disk = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "disk-full")
        .unwrap();
    assert_eq!(disk["origin"], "built-in");
    assert_eq!(
        disk["capabilities"],
        serde_json::json!(["fs-read", "docker", "notify"])
    );

    let run = sandbox.host(&["inspect", "disk-full", "--json"]);
    let doc = run.json();
    let params: Vec<&str> = doc["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(params.contains(&"warn-percent") && params.contains(&"critical-percent"));
    // disk-full sees the whole tree's metadata and no file's content.
    assert_eq!(doc["grants"]["fs-meta"], serde_json::json!(["/"]));
    assert_eq!(doc["grants"]["fs-read"], serde_json::json!([]));
    assert_eq!(doc["grants"]["notify"], serde_json::json!(["ops"]));

    let help = sandbox.host(&["run", "--help"]);
    assert!(help.stdout.contains("Examples:") && help.stdout.contains("host run disk-full"));
}

#[test]
fn check_names_every_problem_in_the_server_config() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "host.toml",
        "[webhooks.alertmanager]\nauth = { kind = \"bearer\", token = { env = \"RUNBOOK_TEST_UNSET_TOKEN\" } }\n\
         [[route]]\nmatchers = ['alertname BotDown']\nplaybook = \"bot-down\"\nparams = { containr = \"x\" }\n\
         [[route]]\nmatchers = ['alertname=\"X\"']\nplaybook = \"nope\"\n",
    );
    let run = sandbox.host(&["check"]);
    assert_eq!(run.code, 1);
    for expected in [
        "[[route]] #1 (bot-down): matcher \"alertname BotDown\"",
        "[[route]] #1 (bot-down): bot-down has no parameter \"containr\"",
        "[[route]] #2 (nope): no playbook named \"nope\"",
        "[webhooks.alertmanager]: secret: environment variable RUNBOOK_TEST_UNSET_TOKEN is not set",
    ] {
        assert!(
            run.stderr.contains(expected),
            "missing {expected:?} in:\n{}",
            run.stderr
        );
    }
}
