//! The audit trail: each act is one event, shipped to a file sink through the outbox across a
//! restart and across a process that died between storing an event and shipping it; acts the
//! CLI does on the store are audited like the server's.

use std::time::{Duration, Instant};

use runbook_tests::Sandbox;
use runbook_tests::server::Server;
use serde_json::{Value, json};

use super::{CONFIG, ENV, RUN_TOKEN, UI_PASSWORD, WAIT, agent, basic, call, create_token};

/// Audit events of `act` on `target` in `host audit --json`.
fn events(sandbox: &Sandbox, act: &str, target: &str) -> Vec<Value> {
    let all = sandbox.host_env(&["audit", "--json"], &ENV).json();
    all.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["act"] == act && e["target"].as_str() == Some(target))
        .cloned()
        .collect()
}

/// The audit ids the file sink holds, in order.
fn shipped(sandbox: &Sandbox) -> Vec<String> {
    let text = std::fs::read_to_string(sandbox.path().join("audit.jsonl")).unwrap_or_default();
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("a JSON line");
            assert_eq!(
                v["dedup_key"],
                format!("audit-{}", v["fields"]["id"].as_str().unwrap())
            );
            v["fields"]["id"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn each_act_is_one_audit_event_shipped_to_a_file_across_a_restart() {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("asks");
    sandbox.write("host.toml", CONFIG);
    let mut server = Server::start(&sandbox, &ENV);
    let http = agent();
    let root = basic("root", UI_PASSWORD);
    let operator = format!("Bearer {}", create_token(&sandbox, "ops", "operator", "1h"));
    let created = sandbox.host_env(&["tokens", "list", "--json"], &ENV).json();
    let token_id = created[0]["id"].as_str().unwrap().to_string();
    assert_eq!(events(&sandbox, "token-created", &token_id).len(), 1);

    // A person cancels a run (API, operator token): one event naming the token.
    let params = json!({ "group": "group-a", "timeout": "120" }).to_string();
    let run = server.submit_run("/hooks/run/asks", RUN_TOKEN, params.as_bytes());
    let (status, body) = call(
        &http,
        &server,
        "POST",
        &format!("/runs/{run}/cancel"),
        Some(&operator),
        "",
    );
    assert!(status == 200 || status == 202, "{status} {body}");
    let cancelled = events(&sandbox, "run-cancelled", &run);
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    assert_eq!(cancelled[0]["actor"], "token:ops");
    assert_eq!(cancelled[0]["source"], "127.0.0.1");
    // A refused act is no event.
    let viewer = format!("Bearer {}", create_token(&sandbox, "look", "viewer", "1h"));
    let other = server.submit_run("/hooks/run/asks", RUN_TOKEN, params.as_bytes());
    assert_eq!(
        call(
            &http,
            &server,
            "POST",
            &format!("/runs/{other}/cancel"),
            Some(&viewer),
            ""
        )
        .0,
        403
    );
    assert!(events(&sandbox, "run-cancelled", &other).is_empty());

    // The freeze switch from the CLI, both ways.
    assert_eq!(
        sandbox
            .host_env(&["freeze", "--reason", "audit <b>test</b>"], &ENV)
            .code,
        0
    );
    assert_eq!(sandbox.host_env(&["unfreeze"], &ENV).code, 0);
    let all = sandbox.host_env(&["audit", "--json"], &ENV).json();
    let count = |act: &str| {
        all.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["act"] == act)
            .count()
    };
    assert_eq!((count("freeze"), count("unfreeze")), (1, 1), "{all}");
    // Untrusted text is escaped where it is shown.
    let (_, page) = call(&http, &server, "GET", "/ui/audit", Some(&root), "");
    assert!(page.contains("audit &lt;b&gt;test&lt;/b&gt;"), "{page}");
    assert_eq!(
        call(&http, &server, "GET", "/ui/audit", Some(&operator), "").0,
        403
    );

    // Across a restart: the next act is shipped too, and nothing twice.
    server.stop("TERM");
    let server = Server::start(&sandbox, &ENV);
    let revoked = sandbox.host_env(&["tokens", "revoke", "look"], &ENV);
    assert_eq!(revoked.code, 0, "{}", revoked.stderr);
    let run = server.submit_run("/hooks/run/asks", RUN_TOKEN, params.as_bytes());
    let (status, _) = call(
        &http,
        &server,
        "POST",
        &format!("/runs/{run}/cancel"),
        Some(&operator),
        "",
    );
    assert!(status == 200 || status == 202);
    let recorded: Vec<String> = sandbox
        .host_env(&["audit", "--json"], &ENV)
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap().to_string())
        .collect();
    let deadline = Instant::now() + WAIT;
    loop {
        let mut file = shipped(&sandbox);
        if file.len() >= recorded.len() {
            let total = file.len();
            file.sort();
            file.dedup();
            assert_eq!(file.len(), total, "an event shipped twice");
            let mut want = recorded.clone();
            want.sort();
            assert_eq!(file, want);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "shipped {file:?} of {recorded:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Acts done on the store by the CLI (store access is admin) are audited like the server's:
/// proof `cli`, actor `cli:<login>`, source `cli@<host>`; a refused act is no event.
#[test]
fn store_side_cli_acts_are_audited() {
    let me = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    let me = String::from_utf8(me.stdout).unwrap().trim().to_string();
    let sandbox = Sandbox::new();
    sandbox.add_plugin("asks");
    let config = CONFIG.replace(
        r#"approval = ["group-a", "group-b"]"#,
        r#"approval = ["group-a", "group-b", "local"]"#,
    );
    sandbox.write(
        "host.toml",
        format!("{config}\n[approvers.local]\nusers = [\"{me}\"]\n"),
    );
    let server = Server::start(&sandbox, &ENV);
    let ask = || {
        let params = json!({ "group": "local", "title": "ok?", "timeout": "120" }).to_string();
        let run = server.submit_run("/hooks/run/asks", RUN_TOKEN, params.as_bytes());
        let deadline = Instant::now() + WAIT;
        while server.get(&format!("/approvals?run={run}")).json()[0]["id"].is_null() {
            assert!(Instant::now() < deadline, "run {run} asked nothing");
            std::thread::sleep(Duration::from_millis(50));
        }
        run
    };
    let actor = format!("cli:{me}");

    let answered = ask();
    let approve = sandbox.host_env(&["approve", &answered], &ENV);
    assert_eq!(approve.code, 0, "{}", approve.stderr);
    let events_of = events(&sandbox, "approval-answered", &answered);
    assert_eq!(events_of.len(), 1, "{events_of:?}");
    assert_eq!(events_of[0]["actor"], actor);
    assert_eq!(events_of[0]["proof"], "cli");
    assert_eq!(events_of[0]["detail"], "approved");
    // Answered already: refused, and no second event.
    assert_ne!(sandbox.host_env(&["approve", &answered], &ENV).code, 0);
    assert_eq!(events(&sandbox, "approval-answered", &answered).len(), 1);

    let cancelled = ask();
    let cancel = sandbox.host_env(&["runs", "cancel", &cancelled], &ENV);
    assert_eq!(cancel.code, 0, "{}", cancel.stderr);
    let events_of = events(&sandbox, "run-cancelled", &cancelled);
    assert_eq!(events_of.len(), 1, "{events_of:?}");
    assert_eq!(events_of[0]["actor"], actor);
    let unknown = sandbox.host_env(&["runs", "cancel", "r-no-such-run"], &ENV);
    assert_ne!(unknown.code, 0);
    assert!(events(&sandbox, "run-cancelled", "r-no-such-run").is_empty());

    let started = sandbox.host_env(
        &[
            "maintenance",
            "start",
            "--for",
            "1h",
            "--match",
            r#"alertname="Disk""#,
            "--reason",
            "disk swap",
            "--json",
        ],
        &ENV,
    );
    assert_eq!(started.code, 0, "{}", started.stderr);
    let window = started.json()["id"].as_str().unwrap().to_string();
    let events_of = events(&sandbox, "maintenance-started", &window);
    assert_eq!(events_of.len(), 1, "{events_of:?}");
    assert_eq!(events_of[0]["detail"], "disk swap");
    assert_eq!(
        sandbox
            .host_env(&["maintenance", "end", &window], &ENV)
            .code,
        0
    );
    assert_eq!(events(&sandbox, "maintenance-ended", &window).len(), 1);
    let source = events_of[0]["source"].as_str().unwrap();
    assert!(source.starts_with("cli@"), "{source}");
}

/// The state a process leaves when it dies between the steps of shipping an event: `planted`
/// is stored with no outbox row (died after storing it), and `pending` has a file-sink row
/// held by a lease that has run out (died after queueing it, before the append). The row's
/// message is `template` (a real audit message from the outbox) made `pending`'s.
fn plant_crash_state(sandbox: &Sandbox, actor: &str) -> (i64, Option<i64>) {
    use runbook_core::access::{AuditAct, NewAudit};
    use runbook_store::NewMessage;
    let location = runbook_store::Location::parse(&sandbox.store());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = runbook_store::open(&location, None).await.unwrap();
        let event = |who: String| NewAudit {
            act: AuditAct::Freeze,
            actor: who,
            proof: "cli".into(),
            source: "cli@crashed".into(),
            target: None,
            detail: Some("planted".into()),
        };
        let planted = store
            .audit_append(event(format!("{actor}-unqueued")))
            .await
            .unwrap();
        let rows = store.outbox_list(None, 1000).await.unwrap();
        let Some(template) = rows.iter().find(|r| r.channel == "audit-file") else {
            return (planted.id, None);
        };
        let pending = store
            .audit_append(event(format!("{actor}-pending")))
            .await
            .unwrap();
        let mut payload: Value = serde_json::from_str(&template.payload).unwrap();
        payload["dedup_key"] = json!(format!("audit-{}", pending.id));
        for pair in payload["fields"].as_array_mut().unwrap() {
            match pair[0].as_str() {
                Some("id") => pair[1] = json!(pending.id.to_string()),
                Some("actor") => pair[1] = json!(pending.actor),
                _ => {}
            }
        }
        let message = NewMessage {
            run_id: Some(String::new()),
            channel: "audit-file".into(),
            kind: "file".into(),
            payload,
            dedup_key: Some(format!("audit-{}", pending.id)),
            event_action: Some("trigger".into()),
            created_at: pending.at.clone(),
        };
        let once = format!("audit-{}-audit-file", pending.id);
        let (_, new) = store
            .enqueue_held(message, Some(once), Duration::from_millis(1))
            .await
            .unwrap();
        assert!(new);
        (planted.id, Some(pending.id))
    })
}

/// Waits until the file sink holds every id of `want`, then checks it holds each once and
/// nothing else.
fn wait_until_shipped(sandbox: &Sandbox, want: &[i64]) {
    let mut want: Vec<String> = want.iter().map(i64::to_string).collect();
    want.sort();
    let deadline = Instant::now() + WAIT;
    loop {
        let file = shipped(sandbox);
        if want.iter().all(|id| file.contains(id)) {
            let mut unique = file.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), file.len(), "an event shipped twice: {file:?}");
            assert_eq!(unique, want);
            return;
        }
        assert!(Instant::now() < deadline, "shipped {file:?}, want {want:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A process that dies between storing an event and appending it to the file sink loses no
/// event and ships none twice: `host serve` queues the events no sink had at start, and its
/// file channel's worker retries a row whose holder died, each once across restarts.
#[test]
fn an_event_whose_process_died_is_shipped_once_by_the_next_serve() {
    let sandbox = Sandbox::new();
    sandbox.write("host.toml", CONFIG);
    let frozen = sandbox.host_env(&["freeze", "--reason", "before the crash"], &ENV);
    assert_eq!(frozen.code, 0, "{}", frozen.stderr);
    let first = sandbox.host_env(&["audit", "--json"], &ENV).json()[0]["id"]
        .as_i64()
        .unwrap();
    assert_eq!(shipped(&sandbox), [first.to_string()]);

    let (unqueued, pending) = plant_crash_state(&sandbox, "cli:crash-1");
    let pending = pending.expect("the freeze's message is in the outbox");
    // Nothing delivers them without a server.
    assert_eq!(shipped(&sandbox), [first.to_string()]);

    let mut server = Server::start(&sandbox, &ENV);
    wait_until_shipped(&sandbox, &[first, unqueued, pending]);

    // Another restart, after one more process died: only that event is shipped (the sweep
    // goes oldest first, so the earlier ones were looked at again before it).
    server.stop("TERM");
    let (again, _) = plant_crash_state(&sandbox, "cli:crash-2");
    let _server = Server::start(&sandbox, &ENV);
    // plant_crash_state also planted a pending row for a fresh event (its id is in `all`).
    let all: Vec<i64> = sandbox
        .host_env(&["audit", "--json"], &ENV)
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(all.contains(&again), "{all:?}");
    assert_eq!(all.len(), 5, "{all:?}");
    wait_until_shipped(&sandbox, &all);
}
