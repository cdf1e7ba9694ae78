//! `host test`: every built-in replayed against its fixtures (plugins/*/tests/) with no Docker
//! engine reachable; a fixture never makes a call this host denies succeed; a mismatch fails
//! with a diff; a bad fixture exits 2; `host run --record` and `host runs export --fixture`
//! write a fixture that replays.

use std::path::{Path, PathBuf};
use std::time::Instant;

use runbook_tests::Sandbox;
use runbook_tests::http::Peer;
use serde_json::{Value, json};

fn plugins_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins")
}

fn fixtures_of(playbook: &str) -> Vec<PathBuf> {
    let dir = plugins_dir().join(playbook).join("tests");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json" || x == "toml"))
        .filter(|p| !p.ends_with("host.toml"))
        .collect();
    found.sort();
    found
}

/// `host test PLAYBOOK --config plugins/PLAYBOOK/tests/host.toml --fixture … --json`, with
/// Docker pointed at nothing: a replay must not need it.
fn replay(sandbox: &Sandbox, playbook: &str, config: &Path, fixtures: &[PathBuf]) -> (i32, Value) {
    let config = config.display().to_string();
    let mut args = vec!["test", playbook, "--config", &config, "--json"];
    let paths: Vec<String> = fixtures.iter().map(|f| f.display().to_string()).collect();
    for path in &paths {
        args.extend(["--fixture", path]);
    }
    let run = sandbox.host_env(&args, &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]);
    (run.code, run.json())
}

fn host_toml(playbook: &str) -> PathBuf {
    plugins_dir().join(playbook).join("tests/host.toml")
}

#[test]
fn every_builtin_replays_its_fixtures_without_docker() {
    let sandbox = Sandbox::new();
    let builtins = [
        "backup-verify",
        "bot-down",
        "disk-full",
        "health-check",
        "high-memory",
        "security",
        "web-down",
    ];
    for playbook in builtins {
        let fixtures = fixtures_of(playbook);
        assert!(fixtures.len() >= 3, "{playbook}: {fixtures:?}");
        let started = Instant::now();
        let (code, doc) = replay(&sandbox, playbook, &host_toml(playbook), &fixtures);
        for entry in doc["fixtures"].as_array().unwrap() {
            assert_eq!(entry["report"]["result"], "pass", "{playbook}: {entry:#}");
        }
        assert_eq!(code, 0, "{playbook}: {doc:#}");
        eprintln!(
            "{playbook}: {} fixtures replayed in {:?}",
            fixtures.len(),
            started.elapsed()
        );
    }
}

#[test]
fn a_fixture_cannot_make_a_call_this_host_denies_succeed() {
    let sandbox = Sandbox::new();
    // disk-full's hand-written fixture has prune answering "12 GB reclaimed"; this host does
    // not grant prune, so the playbook's prune is denied and it cannot claim the cleanup.
    let config = sandbox.write(
        "no-prune.toml",
        "[plugins.disk-full.grants]\nfs-meta = [\"/tmp\"]\ndocker = [{ verbs = [\"disk-usage\"] }]\nnotify = [\"ops\"]\n",
    );
    let fixture = plugins_dir().join("disk-full/tests/hand-written.toml");
    let (code, doc) = replay(&sandbox, "disk-full", &config, &[fixture]);
    let report = &doc["fixtures"][0]["report"];
    assert_eq!(code, 1, "{doc:#}");
    let actions = report["actions"].as_array().unwrap();
    assert!(
        !actions
            .iter()
            .any(|a| a.as_str().unwrap().starts_with("pruned docker")),
        "{report:#}"
    );
    assert!(
        report["problems"].to_string().contains("actions: expected"),
        "{report:#}"
    );

    // bot-down restarts a container the fixture names rbf-bot; a host granting restart only
    // on other names denies it (checked on the name the fixture says the call reached).
    let config = sandbox.write(
        "other-names.toml",
        "[plugins.bot-down.grants]\ndocker = [{ containers = [\"rbf-*\"], verbs = [\"read\"] }, { containers = [\"payments-*\"], verbs = [\"restart\", \"start\"] }]\nhttp = [\"http://127.0.0.1:*\"]\nnotify = [\"ops\"]\n",
    );
    let fixture = plugins_dir().join("bot-down/tests/down-restarted.json");
    let (code, doc) = replay(&sandbox, "bot-down", &config, &[fixture]);
    let report = &doc["fixtures"][0]["report"];
    assert_eq!(code, 1, "{doc:#}");
    assert_ne!(report["status"], "resolved", "{report:#}");
    // The playbook saw the denial (and told ops so, where the fixture expected a restart).
    assert!(
        report["mismatch"]["actual"]
            .to_string()
            .contains(r#"docker start on container \"rbf-bot\" is not granted"#),
        "{report:#}"
    );

    // security greps a log the fixture recorded; a host whose fs-read root is elsewhere
    // denies the grep whatever the fixture answers.
    let config = sandbox.write(
        "elsewhere.toml",
        "[plugins.security.grants]\nfs-read = [\"/srv/logs\"]\nnotify = [\"security\"]\n",
    );
    let fixture = plugins_dir().join("security/tests/brute-force.json");
    let (code, doc) = replay(&sandbox, "security", &config, &[fixture]);
    let report = &doc["fixtures"][0]["report"];
    assert_eq!(code, 1, "{doc:#}");
    assert_ne!(report["status"], "escalated", "{report:#}");
}

#[test]
fn a_call_that_differs_from_the_fixture_fails_with_a_diff() {
    let sandbox = Sandbox::new();
    let recorded =
        std::fs::read_to_string(plugins_dir().join("bot-down/tests/healthy.json")).unwrap();
    let mut fixture: Value = serde_json::from_str(&recorded).unwrap();
    fixture["calls"][0]["args"]["container"] = "rbf-other".into();
    let path = sandbox.write("renamed.json", fixture.to_string());
    let config = host_toml("bot-down").display().to_string();
    let run = sandbox.host(&[
        "test",
        "bot-down",
        "--config",
        &config,
        "--fixture",
        &path.display().to_string(),
    ]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("FAIL bot-down"), "{}", run.stdout);
    assert!(
        run.stdout.contains("- expected: docker.inspect"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("+ actual:   docker.inspect"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(r#"args.container: expected "rbf-other", got "rbf-bot""#),
        "{}",
        run.stdout
    );
}

#[test]
fn a_bad_fixture_exits_2() {
    let sandbox = Sandbox::new();
    let config = host_toml("disk-full");
    let cases = [
        ("not-json.json", "{ calls: nope".to_string()),
        (
            "unknown-kind.json",
            r#"{"calls":[{"interface":"fs-read","function":"usage","args":{"path":"/tmp"},"result":{"error":{"kind":"oops","detail":""}}}]}"#.to_string(),
        ),
        (
            "wrong-shape.json",
            r#"{"incident":{"params":{"mounts":"/tmp"}},"calls":[{"interface":"fs-read","function":"usage","args":{"path":"/tmp"},"result":{"ok":"97 percent"}}]}"#.to_string(),
        ),
        ("unknown-param.json", r#"{"incident":{"params":{"nope":"1"}}}"#.to_string()),
    ];
    for (name, text) in cases {
        let path = sandbox.write(name, text);
        let (code, doc) = replay(&sandbox, "disk-full", &config, &[path]);
        assert_eq!(code, 2, "{name}: {doc:#}");
        assert_eq!(
            doc["fixtures"][0]["report"]["result"], "bad-fixture",
            "{name}: {doc:#}"
        );
    }
}

#[test]
fn a_recorded_run_is_exported_and_replays_with_url_secrets_masked() {
    let sandbox = Sandbox::new();
    let peer = Peer::status(200);
    let config = host_toml("web-down").display().to_string();
    let recorded = sandbox.path().join("recorded.json");
    let url = peer.url("/health?token=hunter2");
    let run = sandbox.host(&[
        "run",
        "web-down",
        "--config",
        &config,
        "--json",
        "-p",
        &format!("url={url}"),
        "--record",
        &recorded.display().to_string(),
    ]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let run_id = run.json()["run_id"].as_str().unwrap().to_string();
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(&recorded).unwrap()).unwrap();
    let probe = &fixture["calls"][0];
    assert_eq!(probe["function"], "probe", "{fixture:#}");
    assert_eq!(
        probe["args"]["url"],
        peer.url("/health?token=***"),
        "{fixture:#}"
    );
    assert_eq!(probe["result"]["ok"]["status"], 200, "{fixture:#}");
    assert_eq!(fixture["expect"]["status"], "no-action", "{fixture:#}");

    // The store kept it with the run.
    let exported = sandbox.path().join("exported.json");
    let export = sandbox.host(&[
        "runs",
        "export",
        &run_id,
        "--fixture",
        &exported.display().to_string(),
    ]);
    assert_eq!(export.code, 0, "{}", export.stderr);
    assert_eq!(
        std::fs::read_to_string(&exported).unwrap(),
        std::fs::read_to_string(&recorded).unwrap()
    );

    // The replay asks for the URL the playbook gets (with its token) and matches the masked
    // one only where the fixture says `$any`: loosen the url, as an author would.
    let mut loosened = fixture.clone();
    loosened["calls"][0]["args"]["url"] = "$any".into();
    for call in loosened["calls"].as_array_mut().unwrap() {
        if call["interface"] == "notify" {
            call["args"]["message"] = "$any".into();
        }
    }
    let path = sandbox.write("loosened.json", loosened.to_string());
    let (code, doc) = replay(&sandbox, "web-down", Path::new(&config), &[path]);
    assert_eq!(code, 0, "{doc:#}");

    // A run that was not recorded has no fixture to export.
    let plain = sandbox.host(&[
        "run",
        "web-down",
        "--config",
        &config,
        "--json",
        "-p",
        &format!("url={}", peer.url("/")),
    ]);
    let plain_id = plain.json()["run_id"].as_str().unwrap().to_string();
    let export = sandbox.host(&["runs", "export", &plain_id, "--fixture", "x.json"]);
    assert_eq!(export.code, 2, "{}", export.stderr);
    assert!(
        export.stderr.contains("was not recorded"),
        "{}",
        export.stderr
    );
}

/// A recorded fixture as JSON, to forge.
fn recorded(playbook: &str, name: &str) -> Value {
    let path = plugins_dir().join(playbook).join("tests").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn calls_of<'a>(fixture: &'a mut Value, function: &str) -> Vec<&'a mut Value> {
    fixture["calls"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .filter(|c| c["function"] == function)
        .collect()
}

/// (exit code, the fixture's report) of `host test` with `config` and the forged fixture.
fn replay_forged(
    sandbox: &Sandbox,
    playbook: &str,
    config: &Path,
    name: &str,
    fixture: &Value,
) -> (i32, Value) {
    let path = sandbox.write(name, fixture.to_string());
    let (code, doc) = replay(sandbox, playbook, config, &[path]);
    (code, doc["fixtures"][0]["report"].clone())
}

fn problems(report: &Value) -> String {
    report["problems"].to_string()
}

#[test]
fn a_recorded_target_must_be_what_the_call_names() {
    let sandbox = Sandbox::new();
    // The issue's case: restart granted on bar-* only, the playbook works on prod-db.
    let config = sandbox.write(
        "bar-only.toml",
        "[plugins.bot-down.grants]\ndocker = [{ containers = [\"bar-*\"], verbs = [\"read\", \"start\", \"restart\"] }]\nhttp = [\"http://127.0.0.1:*\"]\nnotify = [\"ops\"]\n",
    );
    let mut prod = recorded("bot-down", "down-restarted.json");
    prod["incident"]["params"]["container"] = "prod-db".into();
    for call in prod["calls"].as_array_mut().unwrap() {
        if call["interface"] == "docker" {
            call["args"]["container"] = "prod-db".into();
            call["target"]["name"] = "prod-db".into();
        }
    }
    // Honest targets: this host denies prod-db, the test fails (not a pass).
    let (code, report) = replay_forged(&sandbox, "bot-down", &config, "prod.json", &prod);
    assert_eq!(
        (code, report["result"].as_str()),
        (1, Some("fail")),
        "{report:#}"
    );
    assert_ne!(report["status"], "resolved", "{report:#}");
    // The forgery: the fixture says the calls reached bar-1.
    let mut swapped = prod.clone();
    for call in swapped["calls"].as_array_mut().unwrap() {
        if call["interface"] == "docker" {
            call["target"]["name"] = "bar-1".into();
        }
    }
    let (code, report) = replay_forged(&sandbox, "bot-down", &config, "swapped.json", &swapped);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["result"], "bad-fixture", "{report:#}");
    assert!(
        problems(&report).contains("fixture inconsistent: call #1 docker.inspect")
            && problems(&report).contains(r#"\"prod-db\""#)
            && problems(&report).contains(r#"\"bar-1\""#),
        "{report:#}"
    );
    // An id reference reaches the container whose id it starts: that is no forgery. Positive
    // control with the fixture's own grants: every call by id prefix, targets as recorded.
    let mut by_id = recorded("bot-down", "down-restarted.json");
    let id = by_id["calls"][0]["result"]["ok"]["container"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    by_id["incident"]["params"]["container"] = id[..12].into();
    for call in by_id["calls"].as_array_mut().unwrap() {
        if call["interface"] == "docker" {
            call["args"]["container"] = id[..12].into();
            call["target"]["id"] = id.clone().into();
        }
        if call["interface"] == "notify" {
            call["args"] = "$any".into();
        }
    }
    by_id["expect"]["summary"] = Value::Null;
    by_id["expect"]["actions"] = Value::Null;
    by_id["expect"]["notifications"] = Value::Null;
    let (code, report) = replay_forged(
        &sandbox,
        "bot-down",
        &host_toml("bot-down"),
        "by-id.json",
        &by_id,
    );
    assert_eq!(
        (code, report["result"].as_str()),
        (0, Some("pass")),
        "{report:#}"
    );
    // …but not one that is not its prefix.
    let mut other_id = by_id.clone();
    for call in calls_of(&mut other_id, "inspect") {
        call["target"]["id"] = "f".repeat(64).into();
    }
    let (code, report) = replay_forged(
        &sandbox,
        "bot-down",
        &host_toml("bot-down"),
        "other-id.json",
        &other_id,
    );
    assert_eq!(code, 2, "{report:#}");
    assert!(
        problems(&report).contains("fixture inconsistent"),
        "{report:#}"
    );
}

#[test]
fn a_forged_label_is_refused_and_a_consistent_one_grants() {
    let sandbox = Sandbox::new();
    // start is granted only on containers labelled runbook.restart=yes.
    let config = sandbox.write(
        "by-label.toml",
        "[plugins.bot-down.grants]\ndocker = [{ containers = [\"rbf-*\"], verbs = [\"read\"] }, { labels = [\"runbook.restart=yes\"], verbs = [\"start\"] }]\nhttp = [\"http://127.0.0.1:*\"]\nnotify = [\"ops\"]\n",
    );
    let label = json!(["runbook.restart", "yes"]);
    // The start call's target claims the label; the inspects of the same container say no.
    let mut forged = recorded("bot-down", "down-restarted.json");
    for call in calls_of(&mut forged, "start") {
        call["target"]["labels"]
            .as_array_mut()
            .unwrap()
            .push(label.clone());
    }
    let (code, report) = replay_forged(&sandbox, "bot-down", &config, "label.json", &forged);
    assert_eq!(code, 2, "{report:#}");
    assert!(
        problems(&report).contains("fixture inconsistent: calls[3] (docker.start) says container \\\"rbf-bot\\\" is labelled"),
        "{report:#}"
    );
    // Positive control: a world where the container has the label everywhere it is seen.
    let mut labelled = recorded("bot-down", "down-restarted.json");
    for call in labelled["calls"].as_array_mut().unwrap() {
        if call["interface"] == "docker" {
            call["target"]["labels"]
                .as_array_mut()
                .unwrap()
                .push(label.clone());
            if call["function"] == "inspect" {
                call["result"]["ok"]["container"]["labels"]
                    .as_array_mut()
                    .unwrap()
                    .push(label.clone());
            }
        }
    }
    let (code, report) = replay_forged(&sandbox, "bot-down", &config, "labelled.json", &labelled);
    assert_eq!(
        (code, report["result"].as_str()),
        (0, Some("pass")),
        "{report:#}"
    );
    // Without the label anywhere, start is denied as live.
    let plain = recorded("bot-down", "down-restarted.json");
    let (code, report) = replay_forged(&sandbox, "bot-down", &config, "plain.json", &plain);
    assert_eq!(
        (code, report["result"].as_str()),
        (1, Some("fail")),
        "{report:#}"
    );
}

#[test]
fn a_recorded_path_must_be_the_canonical_form_of_the_one_asked() {
    let sandbox = Sandbox::new();
    let config = host_toml("backup-verify");
    let dir = "/tmp/runbook-fixtures/backups/bad";
    let file = format!("{dir}/db-2.tar.gz");
    // Positive control: the recorded fixture with targets as `host run --record` now writes
    // them passes.
    let mut honest = recorded("backup-verify", "stale-broken.json");
    calls_of(&mut honest, "find-entries")[0]["target"] = json!({ "path": dir, "kind": "dir" });
    calls_of(&mut honest, "read")[0]["target"] = json!({ "path": file, "kind": "file" });
    let (code, report) = replay_forged(&sandbox, "backup-verify", &config, "honest.json", &honest);
    assert_eq!(
        (code, report["result"].as_str()),
        (0, Some("pass")),
        "{report:#}"
    );

    // A symlink leading out of the root, recorded where it leads: denied, as live.
    let mut escape = honest.clone();
    calls_of(&mut escape, "read")[0]["target"] = json!({ "path": "/etc/shadow", "kind": "file" });
    let (code, report) = replay_forged(&sandbox, "backup-verify", &config, "escape.json", &escape);
    assert_eq!(
        (code, report["result"].as_str()),
        (1, Some("fail")),
        "{report:#}"
    );

    // The same symlink recorded as a plain file, while the listing shows it is a symlink.
    let mut hidden = honest.clone();
    for entry in calls_of(&mut hidden, "find-entries")[0]["result"]["ok"]["entries"]
        .as_array_mut()
        .unwrap()
    {
        if entry["path"] == file.as_str() {
            entry["kind"] = "Symlink".into();
        }
    }
    let (code, report) = replay_forged(&sandbox, "backup-verify", &config, "hidden.json", &hidden);
    assert_eq!(code, 2, "{report:#}");
    assert!(
        problems(&report).contains("fixture inconsistent: calls[1] (fs-read.read) says path"),
        "{report:#}"
    );
    // …or with no target at all.
    calls_of(&mut hidden, "read")[0]
        .as_object_mut()
        .unwrap()
        .remove("target");
    let (code, report) = replay_forged(&sandbox, "backup-verify", &config, "untold.json", &hidden);
    assert_eq!(code, 2, "{report:#}");
    assert!(
        problems(&report).contains("which the fixture shows is a symlink"),
        "{report:#}"
    );

    // A read that follows cannot have reached a symlink.
    let mut link = honest.clone();
    calls_of(&mut link, "read")[0]["target"]["kind"] = "symlink".into();
    let (code, report) = replay_forged(&sandbox, "backup-verify", &config, "link.json", &link);
    assert_eq!(code, 2, "{report:#}");
    assert!(
        problems(&report).contains("fixture inconsistent")
            && problems(&report).contains("fs-read.read")
            && problems(&report).contains("symlink"),
        "{report:#}"
    );

    // A path outside the root whose target says it canonicalises inside: the path itself
    // is refused first, as live.
    let elsewhere = sandbox.write(
        "srv.toml",
        "[plugins.backup-verify.grants]\nfs-read = [\"/srv/backups\"]\nnotify = [\"ops\"]\n",
    );
    let mut inside = honest.clone();
    calls_of(&mut inside, "find-entries")[0]["target"] =
        json!({ "path": "/srv/backups/bad", "kind": "dir" });
    calls_of(&mut inside, "read")[0]["target"] =
        json!({ "path": "/srv/backups/bad/db-2.tar.gz", "kind": "file" });
    let (code, report) = replay_forged(
        &sandbox,
        "backup-verify",
        &elsewhere,
        "inside.json",
        &inside,
    );
    assert_eq!(
        (code, report["result"].as_str()),
        (1, Some("fail")),
        "{report:#}"
    );
}
