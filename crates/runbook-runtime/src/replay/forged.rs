//! The class test of the replay seam: for every function of every capability interface in the
//! WIT (read from wit/, so a new function is a failing test until it is listed here), a
//! fixture whose recorded target disagrees with the call is refused (a bad fixture, or the
//! error a live call would get), and the same call with an agreeing target (or none) gets the
//! recorded answer. The calls go through the real host functions on a real `RunState`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Value, json};

use super::{FixtureCall, Replayer, Tape};
use crate::bindings::CapError;
use crate::bindings::runbook::host::{approval, docker, fs_read, http, notify};
use crate::policy::{Grants, Limits};
use crate::state::{RunState, Services};
use crate::timeline::Timeline;

const GRANTS: &str = r#"
fs-read = ["/srv/app"]
http = ["http://127.0.0.1:*"]
notify = ["ops"]
approval = ["oncall"]
docker = [{ containers = ["bar-*"], networks = ["front-*"], verbs = ["read", "start", "stop", "restart", "pause", "unpause", "network-disconnect", "prune"] }]
"#;

/// What every case's fixture answers: an error no check produces, so getting it back means
/// the recorded answer came through (for `largest-many`, as its one path's answer).
fn recorded(function: &str) -> Value {
    if function == "largest-many" {
        return json!({ "ok": [{ "Err": { "NotFound": "as recorded" } }] });
    }
    json!({ "error": { "kind": "not-found", "detail": "as recorded" } })
}

fn state(interface: &str, function: &str, target: Option<Value>) -> RunState {
    let grants: Grants = toml::from_str(GRANTS).expect("grants");
    let store = crate::store::open_in_memory().expect("a store");
    let services = Services {
        notifier: Arc::new(crate::notify::Notifier::new(
            &BTreeMap::new(),
            store,
            crate::notify::ConsoleStream::Stderr,
        )),
        docker: Arc::new(crate::caps::docker::DockerEngine::from_env()),
        http: Arc::new(crate::caps::http::HttpClient::new().expect("a client")),
        protected: Arc::new(crate::caps::fs_read::Protected::default()),
        approvals: None,
        safety: None,
    };
    let mut state = RunState::new(
        Arc::new(grants),
        Limits::default(),
        false,
        Timeline::new(None),
        services,
    );
    // One recorded call, matching whatever the case calls with (`$any`).
    state.set_tape(Tape::Replaying(Replayer::new(vec![FixtureCall {
        interface: interface.into(),
        function: function.into(),
        args: json!(super::ANY),
        result: recorded(function),
        target,
        group: None,
    }])));
    state
}

/// What the guest got: the recorded answer, a refusal, or the run ended as a bad fixture.
#[derive(Debug, PartialEq)]
enum Got {
    Recorded,
    Refused(String),
    Inconsistent(String),
}

fn got<T>(result: wasmtime::Result<Result<T, CapError>>) -> Got {
    match result {
        Ok(Err(CapError::NotFound(d))) if d == "as recorded" => Got::Recorded,
        Ok(Err(e)) => Got::Refused(format!("{}: {}", e.kind(), e.detail())),
        Ok(Ok(_)) => Got::Refused("an answer no fixture gave".into()),
        Err(trap) if trap.to_string().contains("fixture inconsistent") => {
            Got::Inconsistent(trap.to_string())
        }
        Err(trap) => Got::Refused(format!("trap: {trap}")),
    }
}

fn from<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("a WIT record")
}

/// Calls `interface.function` the way a guest would, on `bar-1` / `front-1` /
/// `/srv/app/x.log` (all granted here).
async fn call(state: &mut RunState, interface: &str, function: &str) -> Got {
    let c = || "bar-1".to_string();
    let p = || "/srv/app/x.log".to_string();
    let find = || {
        from(
            json!({"name_glob": null, "min_age_secs": null, "max_depth": null, "limit": null, "files_only": null}),
        )
    };
    let grep = || from(json!({"case_insensitive": false, "max_matches": 10, "last_lines": null}));
    match (interface, function) {
        ("docker", "list-containers") => got(docker::Host::list_containers(
            &mut state.docker(),
            from(json!({"all": true, "name": null, "labels": []})),
        )
        .await),
        ("docker", "inspect") => got(docker::Host::inspect(&mut state.docker(), c()).await),
        ("docker", "logs") => got(docker::Host::logs(
            &mut state.docker(),
            c(),
            from(json!({"tail": 10, "since_secs": null, "timestamps": false})),
        )
        .await),
        ("docker", "start") => got(docker::Host::start(&mut state.docker(), c()).await),
        ("docker", "stop") => got(docker::Host::stop(&mut state.docker(), c(), None).await),
        ("docker", "restart") => got(docker::Host::restart(&mut state.docker(), c(), None).await),
        ("docker", "pause") => got(docker::Host::pause(&mut state.docker(), c()).await),
        ("docker", "unpause") => got(docker::Host::unpause(&mut state.docker(), c()).await),
        ("docker", "stats") => got(docker::Host::stats(&mut state.docker(), c()).await),
        ("docker", "disk-usage") => got(docker::Host::disk_usage(&mut state.docker()).await),
        ("docker", "prune") => got(docker::Host::prune(
            &mut state.docker(),
            from(json!({"containers": true, "images": false, "all_images": false, "build_cache": false, "volumes": false})),
        )
        .await),
        ("docker", "network-disconnect") => got(docker::Host::network_disconnect(
            &mut state.docker(),
            c(),
            "front-1".into(),
            false,
        )
        .await),
        ("fs-read", "read") => got(fs_read::Host::read(&mut state.fs_read(), p(), 0, 10).await),
        ("fs-read", "tail") => got(fs_read::Host::tail(&mut state.fs_read(), p(), 10).await),
        ("fs-read", "list-dir") => got(fs_read::Host::list_dir(&mut state.fs_read(), p()).await),
        ("fs-read", "stat") => got(fs_read::Host::stat(&mut state.fs_read(), p()).await),
        ("fs-read", "usage") => got(fs_read::Host::usage(&mut state.fs_read(), p()).await),
        ("fs-read", "largest") => got(fs_read::Host::largest(&mut state.fs_read(), p(), 1, 10).await),
        ("fs-read", "largest-many") => {
            let answer = fs_read::Host::largest_many(&mut state.fs_read(), vec![p()], 1, 10).await;
            // Its one path's answer, as the call's.
            got(answer.map(|r| r.and_then(|mut each| each.remove(0).map(|_| ()))))
        }
        ("fs-read", "find") => got(fs_read::Host::find(&mut state.fs_read(), p(), find()).await),
        ("fs-read", "find-entries") => {
            got(fs_read::Host::find_entries(&mut state.fs_read(), p(), find()).await)
        }
        ("fs-read", "grep") => got(fs_read::Host::grep(&mut state.fs_read(), p(), "x".into(), grep()).await),
        ("http", "send") => got(http::Host::send(
            &mut state.http(),
            from(json!({"method": "GET", "url": "http://127.0.0.1:9/", "headers": [], "body": null, "timeout_ms": null})),
        )
        .await),
        ("http", "probe") => {
            got(http::Host::probe(&mut state.http(), "http://127.0.0.1:9/".into(), None).await)
        }
        ("notify", "send") => got(notify::Host::send(
            &mut state.notify(),
            "ops".into(),
            from(json!({"title": "t", "body": "b", "severity": "Info", "fields": []})),
        )
        .await),
        ("approval", "ask") => got(approval::Host::ask(
            &mut state.approval(),
            "oncall".into(),
            from(json!({"title": "t", "body": "b", "actions": [], "timeout_secs": 60})),
        )
        .await),
        other => panic!("no case for {other:?}: add one to replay/forged.rs"),
    }
}

/// Per call kind: a target that agrees with the call (or none, for calls that reach only what
/// their arguments name) and targets that disagree.
fn targets(interface: &str, function: &str) -> (Option<Value>, Vec<Value>) {
    let id = "ab".repeat(32);
    let container = |name: &str| json!({ "id": id, "name": name, "labels": [] });
    let path = |path: &str, kind: &str| json!({ "path": path, "kind": kind });
    match (interface, function) {
        ("docker", "network-disconnect") => (
            Some(json!({"name": "bar-1", "labels": [], "network": "front-1"})),
            vec![
                json!({"name": "bar-2", "labels": [], "network": "front-1"}),
                json!({"name": "bar-1", "labels": [], "network": "front-2"}),
                json!({"name": "bar-1", "labels": []}),
            ],
        ),
        ("docker", "list-containers" | "disk-usage" | "prune")
        | ("http" | "notify" | "approval", _) => (None, vec![container("bar-1"), json!({})]),
        ("docker", _) => (
            Some(container("bar-1")),
            vec![container("bar-2"), container("prod-db"), json!({"name": 1})],
        ),
        ("fs-read", "largest-many") => (
            Some(json!([path("/srv/app/x.log", "dir")])),
            vec![
                json!([path("/etc", "dir")]),
                json!([path("/srv/app/x.log", "symlink")]),
                json!([]),
                path("/srv/app/x.log", "dir"),
            ],
        ),
        ("fs-read", function) => {
            let kind = match function {
                "read" | "tail" | "grep" | "usage" | "stat" => "file",
                _ => "dir",
            };
            let mut forged = vec![
                path("/etc/shadow", kind),
                path("/srv/app/../../etc/shadow", kind),
                json!({"path": "/srv/app/x.log"}),
            ];
            forged.push(if function == "stat" {
                path("/srv/app/other.log", "file")
            } else {
                path("/srv/app/x.log", "symlink")
            });
            (Some(path("/srv/app/x.log", kind)), forged)
        }
        other => panic!("no targets for {other:?}"),
    }
}

/// (interface, function) of every capability function in the WIT, `report` aside (the run's
/// own timeline: nothing is replayed there).
fn wit_functions() -> BTreeSet<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("wit/") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "wit") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut interface = None;
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("interface ") {
                interface = rest.split_whitespace().next().map(String::from);
            } else if let (Some(i), Some((name, _))) = (&interface, line.split_once(": func("))
                && i != "report"
                && !name.contains(' ')
            {
                found.insert((i.clone(), name.to_string()));
            }
        }
    }
    found
}

#[tokio::test]
async fn every_capability_call_refuses_a_target_that_disagrees_with_it() {
    let functions = wit_functions();
    assert!(functions.len() >= 25, "{functions:?}");
    for (interface, function) in &functions {
        let (agreeing, forged) = targets(interface, function);
        // Positive control: the recorded answer comes through.
        let mut s = state(interface, function, agreeing.clone());
        assert_eq!(
            call(&mut s, interface, function).await,
            Got::Recorded,
            "{interface}.{function} with {agreeing:?}"
        );
        for target in forged {
            let mut s = state(interface, function, Some(target.clone()));
            let outcome = call(&mut s, interface, function).await;
            assert_ne!(
                outcome,
                Got::Recorded,
                "{interface}.{function} took the forged target {target}"
            );
            if let Got::Inconsistent(message) = &outcome {
                assert!(
                    message.contains(&format!("call #1 {interface}.{function}")),
                    "{message}"
                );
            }
        }
    }
}
