//! Storm-safe remediation, part A: action budgets and the freeze switch, end to end against
//! real `host serve` replicas (two on one store: the sandbox's SQLite file, or with
//! `RUNBOOK_TEST_STORE=postgres` a database of its own), a real `host agent` and real
//! containers. What is counted is what Docker did: a container's StartedAt.
//!
//! - two playbooks on two replicas restart one container: the fourth restart within the hour
//!   is refused `over-budget` (with the budget's name and when it frees), also from a replica
//!   started after another was SIGKILLed mid-run; the run escalates; a 0.3.0 guest gets
//!   `denied` with the same text; bot-down's escalation names the budget and when it frees;
//! - an alert storm (200 re-fires, each its own fingerprint) against bot-down: at most the
//!   default budget's 3 restarts happen, every other run escalates;
//! - frozen from one replica: a run on the other replica and on a fleet node performs no
//!   mutating call (StartedAt unchanged) but still diagnoses and notifies, and says so.

use std::time::{Duration, Instant};

use runbook_tests::Sandbox;
use runbook_tests::agent::{Agent, StandIn};
use runbook_tests::docker::TestContainer;
use runbook_tests::server::Server;
use serde_json::{Value, json};

const TOKEN: &str = "budgets-hook-t0ken";
const NODE_TOKEN: &str = "budgets-node-token-0123456789";
const WAIT: Duration = Duration::from_secs(90);

/// The hostile playbook (`docker-restart`, `sleep`, `mutate` cases) and bot-down, both
/// granted restarts of the test containers; the `restarts` budget counts them together.
fn sandbox(extra: &str) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("hostile");
    sandbox.add_plugin("contract-v0-3");
    sandbox.write(
        "host.toml",
        format!(
            r#"plugin-dirs = ["plugins"]

[server]
lease-secs = 2
shutdown-grace-secs = 1

[webhooks.run]
auth = {{ kind = "bearer", token = {{ env = "RB_TOKEN" }} }}

[webhooks.alertmanager]
auth = {{ kind = "bearer", token = {{ env = "RB_TOKEN" }} }}

[fleet.nodes.node-a]
token = {{ env = "NODE_TOKEN" }}

[notify.ops]
kind = "file"
path = "{dir}/ops.jsonl"

[[budget]]
name = "restarts"
actions = ["docker.restart", "docker.start", "docker.stop"]
per = "container"
max = 3
within = "1h"

[plugins.hostile]
deadline-secs = 120
max-concurrent = 4

[plugins.hostile.grants]
notify = ["ops"]
http = ["http://127.0.0.1:*"]
docker = [{{ containers = ["rbt-*"], verbs = ["read", "start", "stop", "restart"] }}]

[plugins.contract-v0-3.grants]
docker = [{{ containers = ["rbt-*"], verbs = ["restart"] }}]

[plugins.bot-down]
max-concurrent = 8

[plugins.bot-down.grants]
notify = ["ops"]
http = ["http://127.0.0.1:*"]
docker = [{{ containers = ["rbt-*"], verbs = ["read", "start", "restart"] }}]
{extra}"#,
            dir = sandbox.path().display(),
        ),
    );
    sandbox
}

fn replica(sandbox: &Sandbox) -> Server {
    Server::start(sandbox, &[("RB_TOKEN", TOKEN), ("NODE_TOKEN", NODE_TOKEN)])
}

fn submit(server: &Server, playbook: &str, params: Value) -> String {
    server.submit_run(
        &format!("/hooks/run/{playbook}"),
        TOKEN,
        params.to_string().as_bytes(),
    )
}

fn restart(server: &Server, container: &str) -> Value {
    let id = submit(
        server,
        "hostile",
        json!({ "case": "docker-restart", "target": container }),
    );
    server.wait_for_run(&id, WAIT)
}

/// The stored run's capability calls of `interface.function`.
fn calls(run: &Value, interface: &str, function: &str) -> Vec<Value> {
    runbook_tests::calls(run, interface, function)
        .into_iter()
        .cloned()
        .collect()
}

/// A metric's value summed over the replicas' `/metrics` (`name` with its labels).
fn metric(servers: &[&Server], name: &str) -> u64 {
    servers
        .iter()
        .map(|server| {
            let text = server.get("/metrics").body;
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or(0)
        })
        .sum()
}

fn budgets_json(sandbox: &Sandbox) -> Value {
    let shown = sandbox.host(&["budgets", "--json"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    shown.json()
}

#[test]
fn the_fourth_restart_within_the_hour_is_over_budget_across_playbooks_and_replicas() {
    let sandbox = sandbox("");
    let bot = TestContainer::bot();
    let (a, mut b) = (replica(&sandbox), replica(&sandbox));

    // 1 and 2: the hostile playbook on each replica.
    for server in [&a, &b] {
        let run = restart(server, &bot.name);
        assert_eq!(run["status"], "resolved", "{run:#}");
    }
    // 3: another playbook (bot-down) on a stopped bot starts it: the same budget.
    runbook_tests::docker::docker(&["stop", "-t", "1", &bot.name]);
    bot.wait_for_state("exited");
    let id = submit(
        &b,
        "bot-down",
        json!({ "container": bot.name, "health-url": bot.url("/health"), "wait-secs": "20" }),
    );
    let run = b.wait_for_run(&id, WAIT);
    assert_eq!(run["status"], "resolved", "{run:#}");
    let started = bot.started_at();

    // A replica is SIGKILLed mid-run; one started after it shares the count.
    let sleeping = submit(&b, "hostile", json!({ "case": "sleep", "target": "30" }));
    b.wait_for_status(&sleeping, "running", WAIT);
    b.stop("KILL");
    let c = replica(&sandbox);
    let mut last = Value::Null;
    let spent = "over budget restarts (3 per container within 1h): 3 used for";
    // 4 and 5: a 0.4.0 guest gets `over-budget` and returns it; the run escalates.
    for server in [&a, &c] {
        let run = restart(server, &bot.name);
        last = run.clone();
        assert_eq!(run["status"], "escalated", "{run:#}");
        let reason = run["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains(&format!("the playbook returned over-budget: {spent}"))
                && reason.contains("frees up in"),
            "{run:#}"
        );
        let refused = calls(&run, "docker", "restart");
        assert_eq!(refused.len(), 1, "{run:#}");
        assert_eq!(refused[0]["result"], "over-budget", "{refused:?}");
    }
    // A guest built against 0.3.0 (no `over-budget` in its contract) gets `denied`, same text.
    let id = submit(&c, "contract-v0-3", json!({ "target": bot.name }));
    let run = c.wait_for_run(&id, WAIT);
    assert_eq!(run["status"], "escalated", "{run:#}");
    let reason = run["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!(
            "the playbook returned denied: {spent} {}",
            bot.name
        )) && reason.contains("frees up in"),
        "{run:#}"
    );
    assert_eq!(calls(&run, "docker", "restart")[0]["result"], "over-budget");
    // bot-down reads the refusal's fields: its escalation names the budget and when it frees.
    runbook_tests::docker::docker(&["stop", "-t", "1", &bot.name]);
    bot.wait_for_state("exited");
    let id = submit(
        &a,
        "bot-down",
        json!({ "container": bot.name, "health-url": bot.url("/health"), "wait-secs": "1" }),
    );
    let run = a.wait_for_run(&id, WAIT);
    assert_eq!(run["status"], "escalated", "{run:#}");
    let summary = run["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains(&format!(
            "not restarted: action budget restarts is spent for {} and frees up in ",
            bot.name
        )),
        "{run:#}"
    );
    assert_eq!(calls(&run, "docker", "start")[0]["result"], "over-budget");
    assert_eq!(bot.started_at(), started, "an over-budget restart acted");
    // The decision is in the post-mortem and the replica's metrics.
    let report = c.get(&format!("/runs/{}/report", last["id"].as_str().unwrap()));
    assert!(
        report.body.contains("- **Safety rails:**")
            && report
                .body
                .contains("docker.restart over-budget: over budget restarts"),
        "{}",
        report.body
    );
    // On PostgreSQL any replica may have run a run: the counts are summed.
    let denials = metric(
        &[&a, &c],
        "runbook_budget_denials_total{budget=\"restarts\"}",
    );
    assert_eq!(denials, 4);

    // `host budgets` shows the count and when it frees; a dry run counts nothing.
    let shown = budgets_json(&sandbox);
    let restarts = &shown["budgets"][0];
    assert_eq!(restarts["name"], "restarts");
    assert_eq!(restarts["uses"][0]["key"], bot.name.as_str());
    assert_eq!(restarts["uses"][0]["used"], 3);
    assert!(restarts["uses"][0]["frees_in_secs"].as_u64().unwrap() > 3000);
    let dry = sandbox.host(&[
        "run",
        "hostile",
        "-p",
        "case=docker-restart",
        "-p",
        &format!("target={}", bot.name),
        "--dry-run",
        "--json",
    ]);
    assert_eq!(dry.json()["status"], "resolved", "{}", dry.stderr);
    assert_eq!(budgets_json(&sandbox)["budgets"][0]["uses"][0]["used"], 3);
}

/// Alertmanager's batch of `n` firing alerts, each its own fingerprint (a flapping alert).
fn storm(n: usize, bot: &TestContainer) -> Vec<u8> {
    let alerts: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "status": "firing",
                "labels": { "alertname": "BotDown", "container": bot.name },
                "annotations": {},
                "startsAt": format!("2026-12-07T04:{:02}:{:02}Z", i / 60, i % 60),
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": format!("flap-{i}")
            })
        })
        .collect();
    json!({ "version": "4", "status": "firing", "receiver": "host", "groupLabels": {},
            "commonLabels": {}, "alerts": alerts })
    .to_string()
    .into_bytes()
}

#[test]
fn an_alert_storm_against_bot_down_restarts_at_most_the_budget() {
    // bot-down's default budget (no [[budget]] restarts of our own would also do: the sandbox
    // declares the same 3 per container per hour).
    let sandbox = sandbox(
        r#"
[[route]]
matchers = ['alertname="BotDown"']
playbook = "bot-down"
params = { container = "{{ labels.container }}", wait-secs = "1" }
"#,
    );
    let bot = TestContainer::bot();
    // The bot will not come up: every run finds it down and wants to start it.
    std::fs::write(bot.control_file("crash-on-start"), "").unwrap();
    std::fs::write(bot.control_file("crash"), "").unwrap();
    bot.wait_for_state("exited");
    let server = replica(&sandbox);
    let reply = server.post(
        "/hooks/alertmanager",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        &storm(200, &bot),
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    let runs: Vec<String> = reply.json()["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["run_id"].as_str().map(String::from))
        .collect();
    assert_eq!(runs.len(), 200, "{}", reply.body);
    let (mut acted, mut refused) = (0, 0);
    for id in &runs {
        let run = server.wait_for_run(id, WAIT);
        // A run that looked while another's start had the bot up for a moment finds it
        // healthy (no-action); every other run wanted a restart and escalated.
        let status = run["status"].as_str().unwrap();
        assert!(matches!(status, "escalated" | "no-action"), "{run:#}");
        for call in calls(&run, "docker", "start") {
            match call["result"].as_str() {
                Some("ok") => acted += 1,
                Some("over-budget") => {
                    assert_eq!(status, "escalated", "{run:#}");
                    refused += 1;
                }
                other => panic!("start ended {other:?}: {call}"),
            }
        }
    }
    assert!((1..=3).contains(&acted), "{acted} starts reached Docker");
    assert!(refused >= 100, "only {refused} starts refused over budget");
    let shown = budgets_json(&sandbox);
    assert_eq!(shown["budgets"][0]["uses"][0]["used"], acted);
}

/// Both rails against one storm, as it arrives (Alertmanager re-sends in groups): the budget
/// lets at most 3 restarts reach Docker, the runs it refuses escalate, and after 3 runs ended
/// escalated bot-down's circuit breaker opens: the rest of the storm is recorded `held`, never
/// executed, and ops hears of the breaker once.
#[test]
fn an_alert_storm_spends_the_budget_then_opens_the_breaker() {
    let sandbox = sandbox(
        r#"
[[route]]
matchers = ['alertname="BotDown"']
playbook = "bot-down"
params = { container = "{{ labels.container }}", wait-secs = "1" }
"#,
    );
    let config = std::fs::read_to_string(sandbox.path().join("host.toml")).unwrap();
    sandbox.write(
        "host.toml",
        config.replace(
            "[plugins.bot-down]\nmax-concurrent = 8",
            "[plugins.bot-down]\nmax-concurrent = 8\n\
             breaker = { failures = 3, within = \"15m\", cool-down = \"30m\" }",
        ),
    );
    let bot = TestContainer::bot();
    std::fs::write(bot.control_file("crash-on-start"), "").unwrap();
    std::fs::write(bot.control_file("crash"), "").unwrap();
    bot.wait_for_state("exited");
    let server = replica(&sandbox);
    let storm: Value = serde_json::from_slice(&storm(200, &bot)).unwrap();
    let alerts = storm["alerts"].as_array().unwrap();
    let mut runs = Vec::new();
    for group in alerts.chunks(10) {
        let mut body = storm.clone();
        body["alerts"] = Value::Array(group.to_vec());
        let reply = server.post(
            "/hooks/alertmanager",
            &[("Authorization", &format!("Bearer {TOKEN}"))],
            body.to_string().as_bytes(),
        );
        assert_eq!(reply.status, 202, "{}", reply.body);
        let ids: Vec<String> = reply.json()["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["run_id"].as_str().map(String::from))
            .collect();
        // The group's runs end before the next group comes (as Alertmanager's group interval).
        for id in &ids {
            server.wait_for_run(id, WAIT);
        }
        runs.extend(ids);
    }
    assert_eq!(runs.len(), 200);
    let (mut acted, mut escalated, mut held) = (0, 0, 0);
    for id in &runs {
        let run = server.get(&format!("/runs/{id}")).json();
        match run["status"].as_str().unwrap() {
            "held" => {
                held += 1;
                assert!(calls(&run, "docker", "start").is_empty(), "{run:#}");
            }
            "escalated" => escalated += 1,
            "no-action" => {}
            other => panic!("{other}: {run:#}"),
        }
        acted += calls(&run, "docker", "start")
            .iter()
            .filter(|c| c["result"] == "ok")
            .count();
    }
    assert!((1..=3).contains(&acted), "{acted} starts reached Docker");
    assert!(escalated >= 3, "only {escalated} runs escalated");
    assert!(held >= 150, "only {held} of the storm's runs were held");
    let ops = || std::fs::read_to_string(sandbox.path().join("ops.jsonl")).unwrap_or_default();
    let notices = || {
        ops()
            .lines()
            .filter(|l| l.contains("Circuit breaker open: bot-down"))
            .count()
    };
    // The notice goes through the outbox: wait for it, then make sure it came once.
    let deadline = std::time::Instant::now() + WAIT;
    while notices() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let notices = notices();
    let ops = ops();
    assert_eq!(notices, 1, "ops hears of the breaker once:\n{ops}");
}

#[test]
fn a_freeze_stops_every_mutating_call_on_every_replica_and_node_but_not_diagnosis() {
    let sandbox = sandbox("");
    let bot = TestContainer::bot();
    let (a, b) = (replica(&sandbox), replica(&sandbox));
    let frozen = sandbox.host(&["freeze", "--reason", "failover in progress"]);
    assert_eq!(frozen.code, 0, "{}", frozen.stderr);
    assert!(frozen.stdout.contains("frozen since"), "{}", frozen.stdout);
    let status = sandbox.host(&["freeze", "--status"]);
    assert_eq!(status.code, 0, "{}", status.stdout);
    let started = bot.started_at();

    // The other replica: every mutating call a "frozen" record, the notification sent.
    let id = submit(
        &b,
        "hostile",
        json!({ "case": "mutate", "target": bot.name, "url": a.url("/healthz") }),
    );
    let run = b.wait_for_run(&id, WAIT);
    assert_eq!(run["status"], "mitigated", "{run:#}");
    assert!(
        run["summary"]
            .as_str()
            .unwrap()
            .contains("[frozen: 3 mutating calls were not made (failover in progress)]"),
        "{run:#}"
    );
    for function in ["restart", "stop"] {
        let made = calls(&run, "docker", function);
        assert_eq!(made[0]["result"], "frozen", "{made:?}");
    }
    assert_eq!(calls(&run, "http", "send")[0]["result"], "frozen");
    assert_eq!(calls(&run, "notify", "send")[0]["result"], "ok");

    // A fleet node asks the server before each mutating call: frozen there too.
    let node = Sandbox::new();
    node.add_plugin("hostile");
    node.write(
        "host.toml",
        "plugin-dirs = [\"plugins\"]\n[plugins.hostile.grants]\nnotify = [\"ops\"]\n\
         docker = [{ containers = [\"rbt-*\"], verbs = [\"read\", \"restart\", \"stop\"] }]\n\
         [notify.ops]\nkind = \"stderr\"\n",
    );
    let mut agent = Agent::start(&node, &a.url(""), "node-a", NODE_TOKEN);
    let id = a.submit_run(
        "/hooks/run/hostile?node=node-a",
        TOKEN,
        json!({ "case": "docker-restart", "target": bot.name })
            .to_string()
            .as_bytes(),
    );
    let run = a.wait_for_run(&id, WAIT);
    assert_eq!(run["status"], "resolved", "{run:#}");
    assert_eq!(calls(&run, "docker", "restart")[0]["result"], "frozen");
    assert_eq!(bot.started_at(), started, "a frozen call acted");
    assert_eq!(bot.state(), "running");
    assert_eq!(metric(&[&b], "runbook_frozen"), 1);
    // The node's call was decided (and counted) by the server it asked.
    assert_eq!(metric(&[&a, &b], "runbook_frozen_calls_total"), 4);
    let console = a.get("/ui/safety");
    assert_eq!(console.status, 200, "{}", console.body);
    assert!(
        console.body.contains("Frozen") && console.body.contains("failover in progress"),
        "{}",
        console.body
    );

    // Unfrozen: the next restart acts, and counts.
    assert_eq!(sandbox.host(&["unfreeze"]).code, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    let run = loop {
        let run = restart(&b, &bot.name);
        let made = calls(&run, "docker", "restart");
        if made[0]["result"] == "ok" {
            break run;
        }
        // Each process trusts its read of the switch for up to a second.
        assert!(Instant::now() < deadline, "still frozen: {run:#}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(run["status"], "resolved");
    assert_ne!(bot.started_at(), started);
    assert_eq!(sandbox.host(&["freeze", "--status"]).code, 1);
    agent.stop("TERM");
}

/// A node asking before a mutating call names a playbook; the server charges the playbook the
/// run was stored with: naming another neither spends that playbook's budget nor dodges its own.
#[test]
fn a_node_naming_another_playbook_is_charged_for_its_own_run() {
    let sandbox = sandbox(
        r#"
[[budget]]
name = "hostile-restarts"
actions = ["docker.restart"]
playbooks = ["hostile"]
per = "playbook"
max = 1
within = "1h"
"#,
    );
    let server = replica(&sandbox);
    let node = StandIn::new(&server, "node-a", NODE_TOKEN);
    let id = server.submit_run(
        "/hooks/run/hostile?node=node-a",
        TOKEN,
        json!({ "case": "sleep", "target": "1" })
            .to_string()
            .as_bytes(),
    );
    assert_eq!(node.take_run(WAIT), id);
    let ask = |playbook: &str, container: &str| {
        let action = json!({ "run_id": id, "playbook": playbook,
                             "action": "docker.restart", "container": container });
        let reply = node.act(&id, action);
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    };
    // Named "bot-down" (no budget of its own but `restarts`): charged to hostile all the same.
    assert_eq!(ask("bot-down", "rbt-one")["decision"], "go");
    let refused = ask("bot-down", "rbt-two");
    assert_eq!(refused["decision"], "over-budget", "{refused}");
    assert_eq!(refused["budget"], "hostile-restarts", "{refused}");
    assert_eq!(refused["key"], "hostile", "{refused}");
    assert!(
        refused["frees_in_secs"].as_u64().unwrap() > 3000,
        "{refused}"
    );
    let shown = budgets_json(&sandbox);
    let uses = |name: &str| {
        shown["budgets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .map(|b| b["uses"].clone())
            .unwrap()
    };
    assert_eq!(uses("hostile-restarts")[0]["key"], "hostile");
    assert_eq!(uses("hostile-restarts")[0]["used"], 1);
}

#[test]
fn bad_budgets_and_reasons_are_refused_with_what_to_fix() {
    let sandbox = sandbox(
        "\n[[budget]]\nname = \"stops\"\nactions = [\"docker.inspect\"]\nper = \"node\"\nmax = 1\nwithin = \"1h\"\n",
    );
    let check = sandbox.host(&["budgets"]);
    assert_eq!(check.code, 2, "{}\n{}", check.stdout, check.stderr);
    assert!(
        check
            .stderr
            .contains("[[budget]] #2: action \"docker.inspect\" is not a mutating"),
        "{}",
        check.stderr
    );
    let sandbox = sandbox_ok();
    let long = "x".repeat(501);
    let refused = sandbox.host(&["freeze", "--reason", &long]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("at most 500"), "{}", refused.stderr);
    // Nothing was frozen by the refused command.
    assert_eq!(sandbox.host(&["freeze", "--status"]).code, 1);
}

fn sandbox_ok() -> Sandbox {
    sandbox("")
}
