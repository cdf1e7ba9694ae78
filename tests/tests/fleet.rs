//! A fleet: real `host serve` and real `host agent` processes on loopback, each agent with its
//! own sandbox (host.toml, compile cache, outbox). Runs go to the node an alert names and only
//! there; the node's grants are the ceiling; an agent that vanishes loses its run once, a stale
//! one is refused; agents outlive a server restart. Leases are 3 s here (15 s across a restart).
//!
//! What is exactly once: a lost or undeliverable run's notice to ops (marked told in the store).
//! A run is never executed on a second node: a node's runs are claimed only by its agents.

use std::time::{Duration, Instant};

use runbook_tests::Sandbox;
use runbook_tests::agent::Agent;
use runbook_tests::server::Server;
use serde_json::{Value, json};

const HOOK_TOKEN: &str = "fleet-hook-t0ken";
const TOKEN_A: &str = "node-a-token-0123456789";
const TOKEN_B: &str = "node-b-token-0123456789";
const WAIT: Duration = Duration::from_secs(60);

/// The server: the hostile playbook (so it can check parameters), granted everything on the
/// server (the node's grants must still win), two nodes' tokens, a route to the node the
/// alert's `instance` names, and `ops` writing to a file.
fn server_sandbox(node_wait_secs: u64, lease_secs: u64) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("hostile");
    sandbox.write(
        "host.toml",
        format!(
            r#"plugin-dirs = ["plugins"]

[server]
lease-secs = {lease_secs}
shutdown-grace-secs = 1

[fleet]
node-wait-secs = {node_wait_secs}

[fleet.nodes.node-a]
token = {{ env = "NODE_A_TOKEN" }}

[fleet.nodes.node-b]
token = {{ env = "NODE_B_TOKEN" }}

[webhooks.run]
auth = {{ kind = "bearer", token = {{ env = "HOOK_TOKEN" }} }}

[webhooks.alertmanager]
auth = {{ kind = "bearer", token = {{ env = "HOOK_TOKEN" }} }}

[notify.ops]
kind = "file"
path = "{ops}"

[[route]]
matchers = ['alertname="NodeEvidence"']
playbook = "hostile"
node = "{{{{ labels.instance | host }}}}"
params = {{ case = "fs-read", target = "{{{{ labels.evidence }}}}" }}

[plugins.hostile.grants]
fs-read = ["/"]
"#,
            ops = sandbox.path().join("ops.jsonl").display(),
        ),
    );
    sandbox
}

fn start_server(sandbox: &Sandbox) -> Server {
    Server::start(
        sandbox,
        &[
            ("HOOK_TOKEN", HOOK_TOKEN),
            ("NODE_A_TOKEN", TOKEN_A),
            ("NODE_B_TOKEN", TOKEN_B),
        ],
    )
}

/// A node: the hostile playbook, granted to read only its own `evidence/` directory, which
/// holds a file naming the node.
struct Node {
    sandbox: Sandbox,
    name: &'static str,
}

impl Node {
    fn new(name: &'static str) -> Node {
        let sandbox = Sandbox::new();
        sandbox.add_plugin("hostile");
        sandbox.write(
            &format!("evidence/{name}.txt"),
            format!("evidence of {name}\n"),
        );
        sandbox.write(
            "host.toml",
            format!(
                r#"plugin-dirs = ["plugins"]

[plugins.hostile]
deadline-secs = 600

[plugins.hostile.grants]
fs-read = ["{evidence}"]
"#,
                evidence = sandbox.path().join("evidence").display()
            ),
        );
        Node { sandbox, name }
    }

    fn evidence(&self) -> String {
        self.sandbox
            .path()
            .join(format!("evidence/{}.txt", self.name))
            .display()
            .to_string()
    }

    fn agent(&self, server_url: &str, token: &str) -> Agent {
        Agent::start(&self.sandbox, server_url, self.name, token)
    }
}

fn submit_to(server: &Server, node: &str, params: Value) -> String {
    server.submit_run(
        &format!("/hooks/run/hostile?node={node}"),
        HOOK_TOKEN,
        params.to_string().as_bytes(),
    )
}

fn wait_until_up(server: &Server, nodes: &[&str]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let listed = server.get("/nodes").json();
        let up = |name: &str| {
            listed
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["name"] == name && n["up"] == true)
        };
        if nodes.iter().all(|n| up(n)) {
            return;
        }
        assert!(Instant::now() < deadline, "nodes never up: {listed}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for_status(server: &Server, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let run = server.get(&format!("/runs/{id}")).json();
        if run["status"] == status {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "run {id} never became {status}: {run}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ops_notices(sandbox: &Sandbox, run_id: &str) -> Vec<Value> {
    std::fs::read_to_string(sandbox.path().join("ops.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|n| n["run_id"] == run_id)
        .collect()
}

fn wait_for_notices(sandbox: &Sandbox, run_id: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let notices = ops_notices(sandbox, run_id);
        if notices.len() >= n {
            return notices;
        }
        assert!(Instant::now() < deadline, "no notice about run {run_id}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn alert(instance: &str, evidence: &str) -> Vec<u8> {
    json!({
        "version": "4", "status": "firing", "receiver": "host",
        "groupLabels": {}, "commonLabels": {},
        "alerts": [{
            "status": "firing",
            "labels": { "alertname": "NodeEvidence", "instance": instance, "evidence": evidence },
            "annotations": {},
            "startsAt": "2026-11-26T03:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": format!("fp-{instance}")
        }]
    })
    .to_string()
    .into_bytes()
}

fn call_results(run: &Value, function: &str) -> Vec<String> {
    run["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "call" && e["function"] == function)
        .map(|e| e["result"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn runs_go_to_the_node_the_alert_names_and_the_nodes_grants_win() {
    let server_box = server_sandbox(300, 3);
    let server = start_server(&server_box);
    let (a, b) = (Node::new("node-a"), Node::new("node-b"));
    let _agent_a = a.agent(&server.url(""), TOKEN_A);
    let _agent_b = b.agent(&server.url(""), TOKEN_B);
    wait_until_up(&server, &["node-a", "node-b"]);

    // An Alertmanager alert about node-a:9100 reads node-a's evidence, on node-a.
    let reply = server.post(
        "/hooks/alertmanager",
        &[("Authorization", &format!("Bearer {HOOK_TOKEN}"))],
        &alert("node-a:9100", &a.evidence()),
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    let id = reply.json()["runs"][0].as_str().unwrap().to_string();
    let run = server.wait_for_run(&id, WAIT);
    assert_eq!(run["node"], "node-a", "{run}");
    assert_eq!(run["status"], "no-action", "{run}");
    let expected = format!("read {} bytes", "evidence of node-a\n".len());
    assert!(
        run["summary"].as_str().unwrap().contains(&expected),
        "{run}"
    );
    assert_eq!(call_results(&run, "read"), ["ok"], "{run}");
    assert!(_agent_a.log().contains(&id) && !_agent_b.log().contains(&id));

    // The server grants fs-read of "/", node-b grants only its own evidence: asked to read
    // node-a's file on node-b, the call is denied there.
    let id = submit_to(
        &server,
        "node-b",
        json!({ "case": "fs-read", "target": a.evidence() }),
    );
    let run = server.wait_for_run(&id, WAIT);
    assert_eq!(run["node"], "node-b");
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(call_results(&run, "read"), ["denied"], "{run}");
    assert!(_agent_b.log().contains(&id) && !_agent_a.log().contains(&id));

    // A label that is no node name is rejected, not run anywhere.
    let reply = server.post(
        "/hooks/alertmanager",
        &[("Authorization", &format!("Bearer {HOOK_TOKEN}"))],
        &alert("../../etc:9100", &a.evidence()),
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    let record = &reply.json()["alerts"][0];
    assert_eq!(record["disposition"], "rejected", "{record}");
    assert!(record["detail"].as_str().unwrap().contains("node name"));

    // `host run --node` submits and follows the run live.
    let followed = server_box.host_env(
        &[
            "run",
            "hostile",
            "-p",
            "case=nap",
            "-p",
            "target=300",
            "--node",
            "node-a",
            "--server",
            &server.url(""),
        ],
        &[
            ("RUNBOOK_RUN_TOKEN", HOOK_TOKEN),
            ("RUNBOOK_API_TOKEN", runbook_tests::server::API_TOKEN),
        ],
    );
    assert_eq!(followed.code, 0, "{}\n{}", followed.stdout, followed.stderr);
    assert!(
        followed.stdout.contains("on node node-a"),
        "{}",
        followed.stdout
    );
    assert!(
        followed.stdout.contains("napping 300 ms"),
        "{}",
        followed.stdout
    );
    assert!(
        followed.stdout.contains("napped 300 ms"),
        "{}",
        followed.stdout
    );

    // The nodes as the API, the CLI and the metrics show them.
    let nodes = server.get("/nodes").json();
    let node_a = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "node-a")
        .unwrap();
    assert_eq!(node_a["up"], true);
    assert_eq!(node_a["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(node_a["in_flight"], 0);
    let listed = server_box.host(&["nodes"]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(listed.stdout.contains("node-a") && listed.stdout.contains("node-b"));
    let metrics = server.get("/metrics").body;
    assert!(
        metrics.contains(r#"runbook_node_up{node="node-a"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"runbook_node_runs_in_flight{node="node-b"} 0"#));
}

#[test]
fn a_node_token_is_its_nodes_only_and_an_unreached_node_is_told_undeliverable() {
    let server_box = server_sandbox(1, 3);
    let server = start_server(&server_box);
    let agent = |node: &str| json!({ "node": node, "session": "0123456789abcdef0123456789abcdef", "version": "t" });
    let poll = |token: &str, node: &str| {
        let body = json!({ "agent": agent(node), "room": 1, "wait_ms": 0 }).to_string();
        server.post(
            "/agent/v1/poll",
            &[("Authorization", &format!("Bearer {token}"))],
            body.as_bytes(),
        )
    };
    let queued = submit_to(&server, "node-a", json!({ "case": "quick" }));
    // node-b's token cannot take node-a's runs; no token, or a wrong one, gets nothing.
    let refused = poll(TOKEN_B, "node-a");
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(poll("not-a-token-at-all-0000", "node-a").status, 401);
    let bad_session = server.post(
        "/agent/v1/poll",
        &[("Authorization", &format!("Bearer {TOKEN_A}"))],
        json!({ "agent": { "node": "node-a", "session": "../x", "version": "t" }, "room": 1, "wait_ms": 0 })
            .to_string()
            .as_bytes(),
    );
    assert_eq!(bad_session.status, 400, "{}", bad_session.body);
    // node-b's own poll finds nothing: the run is node-a's.
    let mine = poll(TOKEN_B, "node-b");
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert_eq!(mine.json()["runs"], json!([]));
    // An outcome from a session that does not hold the run is refused, nothing written.
    let forged = server.post(
        &format!("/agent/v1/runs/{queued}/finish"),
        &[("Authorization", &format!("Bearer {TOKEN_A}"))],
        json!({
            "agent": agent("node-a"), "status": "resolved", "summary": "forged",
            "actions": [], "reason": null, "ended_at": "2026-11-26T03:00:00Z",
            "timings": {}, "grants": {}, "events": [], "artifacts": []
        })
        .to_string()
        .as_bytes(),
    );
    assert_eq!(forged.status, 409, "{}", forged.body);
    // No agent of node-a comes within the second: undeliverable, ops told once.
    let run = wait_for_status(&server, &queued, "undeliverable");
    assert_eq!(run["node"], "node-a");
    assert!(run["reason"].as_str().unwrap().contains("node-a"), "{run}");
    let notices = wait_for_notices(&server_box, &queued, 1);
    assert!(
        notices[0]["title"]
            .as_str()
            .unwrap()
            .contains("not delivered to node node-a")
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(ops_notices(&server_box, &queued).len(), 1, "told once");
    // A node name that is not one is refused at the door.
    let reply = server.post(
        "/hooks/run/hostile?node=a%2Fb",
        &[("Authorization", &format!("Bearer {HOOK_TOKEN}"))],
        br#"{"case":"quick"}"#,
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
}

#[test]
fn a_vanished_agent_loses_its_run_once_and_a_stale_agent_is_refused() {
    let server_box = server_sandbox(300, 3);
    let server = start_server(&server_box);
    let (a, b) = (Node::new("node-a"), Node::new("node-b"));
    let mut agent_a = a.agent(&server.url(""), TOKEN_A);
    let _agent_b = b.agent(&server.url(""), TOKEN_B);
    wait_until_up(&server, &["node-a", "node-b"]);

    // SIGKILL mid-run: lost within the lease, ops told once, node-b never runs it.
    let id = submit_to(
        &server,
        "node-a",
        json!({ "case": "nap", "target": "600000" }),
    );
    agent_a.wait_for_log(&format!("run {id}"), WAIT);
    wait_for_status(&server, &id, "running");
    agent_a.stop("KILL");
    let run = wait_for_status(&server, &id, "lost");
    assert_eq!(run["node"], "node-a");
    wait_for_notices(&server_box, &id, 1);
    // A restarted agent is a new identity: it cannot take over or finish the old run.
    let restarted = a.agent(&server.url(""), TOKEN_A);
    let quick = submit_to(&server, "node-a", json!({ "case": "quick" }));
    assert_eq!(server.wait_for_run(&quick, WAIT)["status"], "no-action");
    assert_eq!(server.get(&format!("/runs/{id}")).json()["status"], "lost");
    assert_eq!(ops_notices(&server_box, &id).len(), 1, "told once");
    assert!(!_agent_b.log().contains(&id));
    drop(restarted);

    // A node cut off for longer than the lease: its run is lost, and when it is back its
    // heartbeat is told so; it stops the run and writes nothing more.
    let proxy = runbook_tests::proxy::Proxy::start(([127, 0, 0, 1], server.port).into());
    let cut_off = a.agent(&format!("http://127.0.0.1:{}", proxy.port), TOKEN_A);
    let id = submit_to(
        &server,
        "node-a",
        json!({ "case": "nap", "target": "600000" }),
    );
    cut_off.wait_for_log(&format!("run {id}"), WAIT);
    wait_for_status(&server, &id, "running");
    proxy.cut();
    let lost = wait_for_status(&server, &id, "lost");
    let events_when_lost = lost["timeline"].as_array().unwrap().len();
    proxy.restore();
    cut_off.wait_for_log("no longer counts it as this agent's", WAIT);
    std::thread::sleep(Duration::from_secs(1));
    let after = server.get(&format!("/runs/{id}")).json();
    assert_eq!(after["status"], "lost");
    assert_eq!(
        after["timeline"].as_array().unwrap().len(),
        events_when_lost
    );
    assert!(
        !cut_off.log().contains("stored by the server"),
        "{}",
        cut_off.log()
    );
}

#[test]
fn agents_reconnect_to_a_restarted_server_and_their_runs_are_stored() {
    // A lease far longer than the restart: the run must outlive it, not be lost.
    let server_box = server_sandbox(300, 15);
    let mut server = start_server(&server_box);
    let port = server.port;
    let a = Node::new("node-a");
    let agent_a = a.agent(&server.url(""), TOKEN_A);
    wait_until_up(&server, &["node-a"]);
    let id = submit_to(
        &server,
        "node-a",
        json!({ "case": "nap", "target": "2500" }),
    );
    agent_a.wait_for_log(&format!("run {id}"), WAIT);
    server.stop("KILL");
    let server = Server::start_on(
        &server_box,
        &[
            ("HOOK_TOKEN", HOOK_TOKEN),
            ("NODE_A_TOKEN", TOKEN_A),
            ("NODE_B_TOKEN", TOKEN_B),
        ],
        port,
    );
    let run = server.wait_for_run(&id, WAIT);
    assert_eq!(run["status"], "no-action", "{run}");
    assert_eq!(run["summary"], "napped 2500 ms");
    let logs: Vec<&str> = run["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert_eq!(logs, ["napping 2500 ms", "awake"], "{run}");
}
