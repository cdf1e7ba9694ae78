//! The fleet's trust boundaries (issue 25): a node is trusted for what it ran, not for the
//! server's records (its uploads pass the caps a local run's timeline passes, artifact hashes
//! are the server's), and no class of waiting work starves another (node-bound runs wait under
//! their own bound, runs for nodes that do not exist are refused at the door). A node here is
//! either a real `host agent` or a stand-in that speaks the agent API to say what a real agent
//! never would. Each refusal has its positive control.

use std::time::{Duration, Instant};

use base64::Engine;
use runbook_tests::Sandbox;
use runbook_tests::agent::{Agent, StandIn, log_event};
use runbook_tests::server::{Reply, Server};
use serde_json::{Value, json};
use sha2::Digest;

const HOOK_TOKEN: &str = "trust-hook-t0ken";
const TOKEN_A: &str = "node-a-token-0123456789";
const TOKEN_B: &str = "node-b-token-0123456789";
const API_PASSWORD: &str = "reader-pa55word";
const WAIT: Duration = Duration::from_secs(60);
/// A local run's timeline cap (policy::Limits' default), which a node's uploads share.
const TIMELINE_CAP: usize = 4 << 20;

fn start(sandbox: &Sandbox) -> Server {
    Server::start(
        sandbox,
        &[
            ("HOOK_TOKEN", HOOK_TOKEN),
            ("NODE_A_TOKEN", TOKEN_A),
            ("NODE_B_TOKEN", TOKEN_B),
            ("API_PASSWORD", API_PASSWORD),
        ],
    )
}

const FLEET: &str = r#"
[fleet.nodes.node-a]
token = { env = "NODE_A_TOKEN" }

[fleet.nodes.node-b]
token = { env = "NODE_B_TOKEN" }

[webhooks.run]
auth = { kind = "bearer", token = { env = "HOOK_TOKEN" } }

[webhooks.alertmanager]
auth = { kind = "bearer", token = { env = "HOOK_TOKEN" } }
"#;

fn submit(server: &Server, path: &str, params: Value) -> Reply {
    server.post(
        path,
        &[("Authorization", &format!("Bearer {HOOK_TOKEN}"))],
        params.to_string().as_bytes(),
    )
}

/// A run submitted through the run hook (202 expected): its id.
fn submit_run(server: &Server, path: &str, params: Value) -> String {
    server.submit_run(path, HOOK_TOKEN, params.to_string().as_bytes())
}

/// The read API of the basic-auth server.
fn read(server: &Server, path: &str) -> Value {
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("reader:{API_PASSWORD}"));
    let reply = server.get_authorized(path, &format!("Basic {credentials}"));
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    reply.json()
}

fn wait_ended(id: &str, get: impl Fn(&str) -> Value) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let run = get(&format!("/runs/{id}"));
        if !matches!(run["status"].as_str(), Some("queued" | "running")) {
            return run;
        }
        assert!(Instant::now() < deadline, "run {id} did not end: {run}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a run's timeline takes in the store: its events' JSON.
fn timeline_bytes(run: &Value) -> usize {
    run["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.to_string().len())
        .sum()
}

fn step_event(i: usize, detail: &str) -> Value {
    json!({
        "at": "2026-12-06T21:00:00.000Z", "offset_ms": i as f64,
        "event": "step", "name": format!("step {i}"), "status": "ok", "detail": detail
    })
}

/// A server whose read API takes basic auth only, with the hostile playbook.
fn basic_auth_server() -> (Sandbox, Server) {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("hostile");
    sandbox.write(
        "host.toml",
        format!(
            r#"plugin-dirs = ["plugins"]
{FLEET}
[webhooks.api]
auth = {{ kind = "basic", username = "reader", password = {{ env = "API_PASSWORD" }} }}
"#
        ),
    );
    let server = start(&sandbox);
    (sandbox, server)
}

#[test]
fn a_node_is_trusted_for_what_it_ran_not_for_the_servers_records() {
    let (_sandbox, server) = basic_auth_server();
    let get = |path: &str| read(&server, path);
    // The baseline: a local run that floods its timeline with 8 KiB steps.
    let local = submit_run(
        &server,
        "/hooks/run/hostile",
        json!({ "case": "timeline-flood" }),
    );
    let local = wait_ended(&local, get);
    assert_eq!(local["status"], "failed", "{}", local["reason"]);
    let limit = format!("limit exceeded: more than {TIMELINE_CAP} bytes of timeline");
    assert!(
        local["reason"].as_str().unwrap().contains(&limit),
        "{}",
        local["reason"]
    );

    // A node's run: a 9 MiB event is cut as a local run's would be, not stored whole.
    let node = StandIn::new(&server, "node-a", TOKEN_A);
    let flooded = submit_run(
        &server,
        "/hooks/run/hostile?node=node-a",
        json!({ "case": "quick" }),
    );
    assert_eq!(node.take_run(WAIT), flooded);
    let huge = "x".repeat(9 << 20);
    let reply = node.events(&flooded, 0, vec![log_event(&huge)]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let run = get(&format!("/runs/{flooded}"));
    let kept = run["timeline"][0]["message"].as_str().unwrap();
    assert!(kept.len() < (8 << 10) + 64, "{} bytes kept", kept.len());
    assert!(
        kept.ends_with(&format!("…[{} bytes in all]", 9 << 20)),
        "{}",
        &kept[kept.len() - 40..]
    );
    // Then the same flood of steps as the local run, in uploads of 200: the run's timeline
    // stops at the cap over all uploads, and the run ends failed naming the limit.
    let detail = "d".repeat(8 << 10);
    let mut from = 1;
    let refusal = loop {
        let batch: Vec<Value> = (from..from + 200).map(|i| step_event(i, &detail)).collect();
        let reply = node.events(&flooded, from, batch);
        if reply.status != 200 {
            break reply;
        }
        from += 200;
        assert!(from < 5_000, "the node's timeline was never capped");
    };
    assert_eq!(refusal.status, 409, "{}", refusal.body);
    assert!(refusal.body.contains(&limit), "{}", refusal.body);
    let run = get(&format!("/runs/{flooded}"));
    assert_eq!(run["status"], "failed");
    let reason = run["reason"].as_str().unwrap();
    assert!(
        reason.contains(&limit) && reason.contains("reported by node node-a"),
        "{reason}"
    );
    // Both stopped at the cap, one event past it at most.
    let (node_bytes, local_bytes) = (timeline_bytes(&run), timeline_bytes(&local));
    for bytes in [node_bytes, local_bytes] {
        assert!(
            (TIMELINE_CAP..TIMELINE_CAP + (10 << 10)).contains(&bytes),
            "{bytes} bytes of timeline (node {node_bytes}, local {local_bytes})"
        );
    }
    // Nothing more is taken for it.
    assert_eq!(
        node.events(&flooded, from, vec![log_event("late")]).status,
        409
    );
    assert_eq!(node.finish(&flooded, json!({})).status, 409);

    // A forged hash: the server's own is stored and shown; the node's grants and timings are
    // kept as its report. The outcome itself (a NUL in the summary too) is stored: the
    // positive control.
    let forged = submit_run(
        &server,
        "/hooks/run/hostile?node=node-a",
        json!({ "case": "quick" }),
    );
    assert_eq!(node.take_run(WAIT), forged);
    let evidence = "real evidence\n";
    let reply = node.finish(
        &forged,
        json!({
            "summary": "fixed\u{0}it",
            "grants": { "fs-read": ["/"] },
            "events": [{
                "at": "2026-12-06T21:00:00.000Z", "offset_ms": 2.0, "event": "artifact",
                "name": "evidence.txt", "content_type": "text/plain",
                "bytes": 1, "sha256": "0".repeat(64)
            }],
            "artifacts": [{
                "name": "evidence.txt", "content_type": "text/plain",
                "sha256": "0".repeat(64), "bytes": 1, "text": evidence
            }]
        }),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let run = get(&format!("/runs/{forged}"));
    let hash = hex::encode(sha2::Sha256::digest(evidence.as_bytes()));
    assert_eq!(run["status"], "resolved");
    assert_eq!(run["summary"], "fixed\\u{0}it");
    assert_eq!(run["artifacts"][0]["sha256"], hash);
    assert_eq!(run["artifacts"][0]["bytes"], evidence.len());
    assert_eq!(run["timeline"][0]["sha256"], hash, "{}", run["timeline"]);
    assert_eq!(run["timeline"][0]["bytes"], evidence.len());
    assert_eq!(run["grants"]["reported_by_node"], "node-a");
    assert_eq!(run["grants"]["fs-read"], json!(["/"]));
    assert_eq!(run["timings"]["reported_by_node"], "node-a");
    // node-b's token cannot write node-a's runs (kept from the fleet suite's rule).
    let other = StandIn::new(&server, "node-a", TOKEN_B);
    assert_eq!(other.finish(&forged, json!({})).status, 403);
}

#[test]
fn host_run_on_a_node_follows_the_run_with_basic_auth() {
    let (_sandbox, server) = basic_auth_server();
    let node = Sandbox::new();
    node.add_plugin("hostile");
    node.write("host.toml", "plugin-dirs = [\"plugins\"]\n");
    let _agent = Agent::start(&node, &server.url(""), "node-b", TOKEN_B);
    let cli = Sandbox::new();
    let run = |server_url: &str, env: &[(&str, &str)]| {
        let mut env = env.to_vec();
        env.push(("RUNBOOK_RUN_TOKEN", HOOK_TOKEN));
        cli.host_env(
            &[
                "run",
                "hostile",
                "-p",
                "case=quick",
                "--node",
                "node-b",
                "--server",
                server_url,
            ],
            &env,
        )
    };
    let url = server.url("");
    let followed = run(
        &url,
        &[
            ("RUNBOOK_API_USER", "reader"),
            ("RUNBOOK_API_PASSWORD", API_PASSWORD),
        ],
    );
    assert_eq!(followed.code, 0, "{}\n{}", followed.stdout, followed.stderr);
    assert!(
        followed.stdout.contains("quick case done"),
        "{}",
        followed.stdout
    );
    // Credentials in the URL do too.
    let with_userinfo = format!("http://reader:{API_PASSWORD}@127.0.0.1:{}", server.port);
    let followed = run(&with_userinfo, &[]);
    assert_eq!(followed.code, 0, "{}\n{}", followed.stdout, followed.stderr);
    assert!(
        followed.stdout.contains("quick case done"),
        "{}",
        followed.stdout
    );
    // Without them the read API says no, and the error says what to set.
    let refused = run(&url, &[]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("RUNBOOK_API_USER"),
        "{}",
        refused.stderr
    );
}

/// A server whose own queue holds 2 runs and whose nodes' hold 2 each and 3 together.
fn bounded_server() -> (Sandbox, Server) {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("hostile");
    sandbox.write(
        "host.toml",
        format!(
            r#"plugin-dirs = ["plugins"]

[server]
queue-limit = 2

[fleet]
queue-limit = 3
queue-limit-per-node = 2
{FLEET}
[notify.ops]
kind = "file"
path = "{ops}"

[[route]]
matchers = ['alertname="NodeEvidence"']
playbook = "hostile"
node = "{{{{ labels.instance | host }}}}"
params = {{ case = "quick" }}

[[route]]
matchers = ['alertname="OddLabel"']
playbook = "hostile"
params = {{ case = "quick" }}
"#,
            ops = sandbox.path().join("ops.jsonl").display(),
        ),
    );
    let server = start(&sandbox);
    (sandbox, server)
}

fn alert_batch(alerts: &[(&str, &str, &str)]) -> Vec<u8> {
    let alerts: Vec<Value> = alerts
        .iter()
        .map(|(name, instance, note)| {
            json!({
                "status": "firing",
                "labels": { "alertname": name, "instance": instance, "note": note },
                "annotations": {},
                "startsAt": "2026-12-06T21:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": format!("fp-{name}-{instance}")
            })
        })
        .collect();
    json!({ "version": "4", "status": "firing", "receiver": "host", "groupLabels": {},
            "commonLabels": {}, "alerts": alerts })
    .to_string()
    .into_bytes()
}

fn post_alerts(server: &Server, body: &[u8]) -> Reply {
    server.post(
        "/hooks/alertmanager",
        &[("Authorization", &format!("Bearer {HOOK_TOKEN}"))],
        body,
    )
}

#[test]
fn node_bound_runs_wait_apart_and_runs_for_unknown_nodes_are_refused() {
    let (sandbox, server) = bounded_server();
    let to = |node: &str| format!("/hooks/run/hostile?node={node}");
    // node-a (no agent) takes two, then its own bound says no; node-b then fills the fleet's.
    for _ in 0..2 {
        submit_run(&server, &to("node-a"), json!({ "case": "quick" }));
    }
    let full = submit(&server, &to("node-a"), json!({ "case": "quick" }));
    assert_eq!(full.status, 503, "{}", full.body);
    assert!(full.body.contains("queue-limit-per-node"), "{}", full.body);
    submit_run(&server, &to("node-b"), json!({ "case": "quick" }));
    let full = submit(&server, &to("node-b"), json!({ "case": "quick" }));
    assert_eq!(full.status, 503, "{}", full.body);
    assert!(
        full.body.contains("[fleet] queue-limit = 3"),
        "{}",
        full.body
    );
    // Three runs wait for nodes, more than this server's queue-limit: local runs still go.
    for _ in 0..3 {
        let id = submit_run(&server, "/hooks/run/hostile", json!({ "case": "quick" }));
        assert_eq!(server.wait_for_run(&id, WAIT)["status"], "no-action");
    }

    // A node that is not configured: refused at the door, recorded, nobody told.
    let ghost = submit(&server, &to("ghost"), json!({ "case": "quick" }));
    assert_eq!(ghost.status, 404, "{}", ghost.body);
    assert!(
        ghost
            .body
            .contains("node ghost is not one of this server's fleet nodes"),
        "{}",
        ghost.body
    );
    // The same through a route whose node template names it; the batch's other alert runs.
    let batch = post_alerts(
        &server,
        &alert_batch(&[
            ("NodeEvidence", "ghost:9100", ""),
            ("OddLabel", "web", "fine"),
        ]),
    );
    assert_eq!(batch.status, 202, "{}", batch.body);
    let outcomes = batch.json()["alerts"].clone();
    assert_eq!(outcomes[0]["disposition"], "rejected", "{outcomes}");
    assert!(
        outcomes[0]["detail"]
            .as_str()
            .unwrap()
            .contains("node ghost"),
        "{outcomes}"
    );
    assert_eq!(outcomes[1]["disposition"], "started", "{outcomes}");
    // And from the CLI.
    let cli = Sandbox::new().host_env(
        &[
            "run",
            "hostile",
            "--node",
            "ghost",
            "--server",
            &server.url(""),
        ],
        &[("RUNBOOK_RUN_TOKEN", HOOK_TOKEN)],
    );
    assert_ne!(cli.code, 0);
    assert!(
        cli.stderr.contains("not one of this server's fleet nodes"),
        "{}",
        cli.stderr
    );
    let alerts = server.get("/alerts").json();
    let refused: Vec<&Value> = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["disposition"] == "rejected")
        .collect();
    assert_eq!(refused.len(), 3, "{alerts}");
    assert!(
        refused
            .iter()
            .any(|a| a["source"] == "webhook" && a["labels"]["node"] == "ghost")
    );
    let runs = server.get("/runs").json();
    assert!(!runs.to_string().contains("ghost"), "{runs}");
    // Queued node runs are no notice to ops either (they wait for their node).
    let ops = std::fs::read_to_string(sandbox.path().join("ops.jsonl")).unwrap_or_default();
    assert!(!ops.contains("ghost"), "{ops}");
}

#[test]
fn an_alert_with_a_nul_label_is_taken_on_either_store() {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("hostile");
    sandbox.write(
        "host.toml",
        format!(
            r#"plugin-dirs = ["plugins"]
{FLEET}
[[route]]
matchers = ['alertname="OddLabel"']
playbook = "hostile"
params = {{ case = "quick" }}
"#
        ),
    );
    let server = start(&sandbox);
    let batch = post_alerts(
        &server,
        &alert_batch(&[
            ("OddLabel", "web-1", "a\u{0}b"),
            ("OddLabel", "web-2", "plain"),
        ]),
    );
    assert_eq!(batch.status, 202, "{}", batch.body);
    let outcomes = batch.json()["alerts"].clone();
    for outcome in outcomes.as_array().unwrap() {
        assert_eq!(outcome["disposition"], "started", "{outcomes}");
        let id = outcome["run_id"].as_str().unwrap();
        assert_eq!(server.wait_for_run(id, WAIT)["status"], "no-action");
    }
    let alerts = server.get("/alerts").json();
    let notes: Vec<&str> = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["labels"]["note"].as_str())
        .collect();
    assert!(notes.contains(&"a\\u{0}b"), "{alerts}");
    assert!(notes.contains(&"plain"), "{alerts}");
    // Alertmanager's retry of the same batch is deduplicated, not a new failure.
    let again = post_alerts(
        &server,
        &alert_batch(&[
            ("OddLabel", "web-1", "a\u{0}b"),
            ("OddLabel", "web-2", "plain"),
        ]),
    );
    assert_eq!(again.status, 202, "{}", again.body);
    assert_eq!(
        again.json()["alerts"][0]["disposition"],
        "deduplicated",
        "{}",
        again.body
    );
}
