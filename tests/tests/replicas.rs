//! Several `host serve` replicas on one real PostgreSQL (the throwaway cluster of
//! scripts/test-env.sh, a database per test): the same alert delivered to two replicas starts
//! one run; a replica SIGKILLed mid-run loses that run once (ops told once) while the others
//! run what it had queued, none twice; cooldowns and replay ids hold across replicas and
//! restarts; a database outage answers 503 and acknowledges nothing it did not store.
//!
//! Side effects are counted, not inferred: the hostile playbook's `notify` case writes one line
//! per execution to a file channel. Leases are 2 s, so a dead replica's run is lost quickly.
//! Skipped (with a message) when RUNBOOK_TEST_POSTGRES is not set.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use runbook_tests::postgres::{self, Database, psql};
use runbook_tests::proxy::Proxy;
use runbook_tests::server::Server;
use runbook_tests::{Sandbox, standard_webhooks_signature};
use serde_json::{Value, json};

const TOKEN: &str = "replicas-t0ken";
/// whsec_ + base64("standard-webhooks-key")
const WHSEC: &str = "whsec_c3RhbmRhcmQtd2ViaG9va3Mta2V5";
const WAIT: Duration = Duration::from_secs(60);

fn database() -> Option<Database> {
    if postgres::cluster().is_none() {
        eprintln!("skipped: RUNBOOK_TEST_POSTGRES not set (scripts/test.sh sets it)");
        return None;
    }
    Some(Database::create())
}

/// The hostile playbook, one at a time across every replica, an `effects` file channel that
/// counts executions, `ops` in a file, two Alertmanager routes (one with a cooldown).
fn sandbox(run_auth: &str) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("hostile");
    sandbox.write(
        "host.toml",
        format!(
            r#"plugin-dirs = ["plugins"]

[server]
shutdown-grace-secs = 1
lease-secs = 2

[webhooks.run]
auth = {run_auth}

[webhooks.alertmanager]
auth = {{ kind = "bearer", token = {{ env = "RB_TOKEN" }} }}

[notify.ops]
kind = "file"
path = "{dir}/ops.jsonl"

[notify.effects]
kind = "file"
path = "{dir}/effects.jsonl"

[[route]]
matchers = ['alertname="Replicas"']
playbook = "hostile"
params = {{ case = "{{{{ labels.case }}}}", target = "effects" }}

[[route]]
matchers = ['alertname="Cooldown"']
playbook = "hostile"
params = {{ case = "quick" }}
cooldown-secs = 600

[plugins.hostile]
max-concurrent = 1
deadline-secs = 300

[plugins.hostile.grants]
notify = ["effects"]
"#,
            dir = sandbox.path().display(),
        ),
    );
    sandbox
}

const BEARER: &str = r#"{ kind = "bearer", token = { env = "RB_TOKEN" } }"#;

fn replica(sandbox: &Sandbox, store: &str) -> Server {
    Server::start(
        sandbox,
        &[
            ("RB_TOKEN", TOKEN),
            ("WHSEC", WHSEC),
            ("RUNBOOK_STORE", store),
        ],
    )
}

fn alert(name: &str, case: &str, fingerprint: &str, starts_at: &str) -> Vec<u8> {
    json!({
        "version": "4", "status": "firing", "receiver": "host",
        "groupLabels": {}, "commonLabels": {},
        "alerts": [{
            "status": "firing",
            "labels": { "alertname": name, "case": case },
            "annotations": {},
            "startsAt": starts_at,
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": fingerprint
        }]
    })
    .to_string()
    .into_bytes()
}

/// The disposition record of the alert's one route.
fn fire(server: &Server, body: &[u8]) -> Value {
    let auth = format!("Bearer {TOKEN}");
    let reply = server.post("/hooks/alertmanager", &[("Authorization", &auth)], body);
    assert_eq!(reply.status, 202, "{}", reply.body);
    reply.json()["alerts"][0].clone()
}

fn submit(server: &Server, case: &str) -> String {
    let body = json!({ "case": case, "target": "effects" }).to_string();
    server.submit_run("/hooks/run/hostile", TOKEN, body.as_bytes())
}

/// Lines of a file channel about `run_id`.
fn lines_about(sandbox: &Sandbox, file: &str, run_id: &str) -> usize {
    std::fs::read_to_string(sandbox.path().join(file))
        .unwrap_or_default()
        .lines()
        .filter(|line| serde_json::from_str::<Value>(line).unwrap()["run_id"] == run_id)
        .count()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_same_alert_delivered_to_two_replicas_at_once_starts_one_run() {
    let Some(db) = database() else { return };
    let sandbox = sandbox(BEARER);
    let (a, b) = (replica(&sandbox, &db.url), replica(&sandbox, &db.url));
    let mut started = HashMap::new();
    for i in 0..20 {
        let body = alert(
            "Replicas",
            "quick",
            &format!("fp{i}"),
            "2026-11-26T01:00:00Z",
        );
        let both = std::sync::Barrier::new(2);
        let (first, second) = std::thread::scope(|s| {
            let one = s.spawn(|| {
                both.wait();
                fire(&a, &body)
            });
            let two = s.spawn(|| {
                both.wait();
                fire(&b, &body)
            });
            (one.join().unwrap(), two.join().unwrap())
        });
        let mut dispositions = [
            first["disposition"].as_str().unwrap(),
            second["disposition"].as_str().unwrap(),
        ];
        dispositions.sort();
        assert_eq!(
            dispositions,
            ["deduplicated", "started"],
            "{first:#} {second:#}"
        );
        assert_eq!(first["run_id"], second["run_id"]);
        started.insert(i, first["run_id"].as_str().unwrap().to_string());
    }
    let runs = a.get("/runs?limit=1000").json();
    assert_eq!(runs.as_array().unwrap().len(), 20, "{runs:#}");
    // Every run is executed, by one replica or the other.
    for id in started.values() {
        let run = b.wait_for_run(id, WAIT);
        assert_eq!(run["status"], "no-action", "{run:#}");
    }
}

#[test]
fn a_replica_killed_mid_run_loses_it_once_and_the_others_run_its_queue_once() {
    let Some(db) = database() else { return };
    let sandbox = sandbox(BEARER);
    let mut doomed = replica(&sandbox, &db.url);
    let parked = submit(&doomed, "sleep");
    doomed.wait_for_status(&parked, "running", WAIT);
    // max-concurrent = 1 across replicas: these wait in the store behind the parked run.
    let queued: Vec<String> = (0..3).map(|_| submit(&doomed, "notify")).collect();
    let (b, c) = (replica(&sandbox, &db.url), replica(&sandbox, &db.url));
    for id in &queued {
        assert_eq!(b.get(&format!("/runs/{id}")).json()["status"], "queued");
    }
    doomed.stop("KILL");

    wait_for("the parked run to be lost", || {
        b.get(&format!("/runs/{parked}")).json()["status"] == "lost"
    });
    for id in &queued {
        let run = c.wait_for_run(id, WAIT);
        assert_eq!(run["status"], "resolved", "{run:#}");
    }
    wait_for("ops to hear of the lost run", || {
        lines_about(&sandbox, "ops.jsonl", &parked) > 0
    });
    // Both survivors keep looking for lost runs every lease/3: give them a few looks.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lines_about(&sandbox, "ops.jsonl", &parked), 1);
    for id in &queued {
        assert_eq!(lines_about(&sandbox, "effects.jsonl", id), 1, "run {id}");
    }
    assert_eq!(lines_about(&sandbox, "effects.jsonl", &parked), 0);
}

#[test]
fn cooldowns_and_replay_ids_hold_across_replicas_and_restarts() {
    let Some(db) = database() else { return };
    let sandbox = sandbox(r#"{ kind = "standard-webhooks", secret = { env = "WHSEC" } }"#);
    let mut a = replica(&sandbox, &db.url);
    let b = replica(&sandbox, &db.url);

    // The same alert firing again (a new startsAt, so not a duplicate) within the cooldown.
    let first = fire(
        &a,
        &alert("Cooldown", "quick", "cool", "2026-11-26T01:00:00Z"),
    );
    assert_eq!(first["disposition"], "started", "{first:#}");
    let again = fire(
        &b,
        &alert("Cooldown", "quick", "cool", "2026-11-26T01:05:00Z"),
    );
    assert_eq!(again["disposition"], "cooldown", "{again:#}");

    let body = br#"{"case": "quick"}"#;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signature = standard_webhooks_signature(WHSEC, "msg_replicas", now, body);
    let send = |server: &Server| {
        let ts = now.to_string();
        server
            .post(
                "/hooks/run/hostile",
                &[
                    ("webhook-id", "msg_replicas"),
                    ("webhook-timestamp", &ts),
                    ("webhook-signature", &signature),
                ],
                body,
            )
            .status
    };
    assert_eq!(send(&a), 202);
    assert_eq!(send(&b), 401, "replayed to the other replica");

    a.stop("KILL");
    let a = replica(&sandbox, &db.url);
    assert_eq!(send(&a), 401, "replayed after a restart");
    let later = fire(
        &a,
        &alert("Cooldown", "quick", "cool", "2026-11-26T01:10:00Z"),
    );
    assert_eq!(later["disposition"], "cooldown", "{later:#}");
}

#[test]
fn a_database_outage_answers_503_acknowledges_nothing_unstored_and_recovers() {
    let Some(db) = database() else { return };
    // The host reaches the database through a proxy the test can cut.
    let (authority, name) = {
        let after_at = db.url.split_once('@').unwrap().1;
        let (authority, name) = after_at.split_once('/').unwrap();
        (authority.to_string(), name.to_string())
    };
    let proxy = Proxy::start(authority.parse().unwrap());
    let user = db
        .url
        .split_once("://")
        .unwrap()
        .1
        .split_once('@')
        .unwrap()
        .0;
    let through_proxy = format!("postgres://{user}@127.0.0.1:{}/{name}", proxy.port);
    let sandbox = sandbox(BEARER);
    let server = replica(&sandbox, &through_proxy);

    let auth = format!("Bearer {TOKEN}");
    let mut sent = 0;
    let mut fire_one = || {
        sent += 1;
        let body = alert(
            "Replicas",
            "quick",
            &format!("outage{sent}"),
            "2026-11-26T02:00:00Z",
        );
        let reply = server.post("/hooks/alertmanager", &[("Authorization", &auth)], &body);
        (reply.status, reply)
    };
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for _ in 0..5 {
        let (status, reply) = fire_one();
        assert_eq!(status, 202, "{}", reply.body);
        acknowledged.push(
            reply.json()["alerts"][0]["run_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }

    proxy.cut();
    let deadline = Instant::now() + WAIT;
    while refused < 5 {
        assert!(Instant::now() < deadline, "the outage was never noticed");
        let (status, reply) = fire_one();
        match status {
            202 => acknowledged.push(
                reply.json()["alerts"][0]["run_id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            ),
            503 => {
                refused += 1;
                assert_names_no_database(&reply.body, user);
            }
            other => panic!("during the outage: {other} {}", reply.body),
        }
    }
    assert_eq!(server.get_anonymous("/healthz").status, 503);
    // Reads fail the same documented way: 503 with Retry-After, the cause only in the log.
    let one_run = format!("/runs/{}", acknowledged[0]);
    for path in ["/runs", "/alerts", "/approvals", "/nodes", &one_run] {
        let reply = server.get(path);
        assert_eq!(
            reply.status, 503,
            "GET {path} during the outage: {}",
            reply.body
        );
        assert!(reply.retry_after.is_some(), "GET {path}: no Retry-After");
        assert_names_no_database(&reply.body, user);
    }

    proxy.restore();
    wait_for("the host to take webhooks again", || {
        let (status, reply) = fire_one();
        if status == 202 {
            acknowledged.push(
                reply.json()["alerts"][0]["run_id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        status == 202
    });
    assert_eq!(server.get_anonymous("/healthz").status, 200);
    // Everything acknowledged is in the database (read directly, not through the host).
    let ids: Vec<String> = acknowledged.iter().map(|id| format!("'{id}'")).collect();
    let stored = psql(
        &db.url,
        &format!("SELECT count(*) FROM runs WHERE id IN ({})", ids.join(",")),
    );
    assert_eq!(stored.trim(), acknowledged.len().to_string());
}

/// PostgreSQL's `text` refuses NUL, which SQLite keeps: a NUL anywhere in a webhook's JSON
/// strings is stored as `\u{0}` (as on SQLite), never a 503 that Alertmanager would retry for
/// ever.
#[test]
fn nul_bytes_in_webhook_bodies_are_stored_not_refused() {
    let Some(db) = database() else { return };
    let sandbox = sandbox(BEARER);
    let server = replica(&sandbox, &db.url);
    let body = json!({
        "version": "4", "status": "firing", "receiver": "host\u{0}",
        "groupLabels": {}, "commonLabels": { "team": "a\u{0}b" },
        "alerts": [{
            "status": "firing",
            "labels": { "alertname": "Replicas", "case": "quick", "instance": "web\u{0}01" },
            "annotations": { "summary\u{0}": "disk\u{0}full" },
            "startsAt": "2026-11-26T03:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "nul\u{0}fp"
        }]
    });
    let alert = fire(&server, body.to_string().as_bytes());
    assert_eq!(alert["disposition"], "started", "{alert:#}");
    let params = json!({ "case": "quick", "target": "effects", "name": "x\u{0}y" });
    let run = server.submit_run("/hooks/run/hostile", TOKEN, params.to_string().as_bytes());
    assert!(!run.is_empty());
    let alerts = server.get("/alerts");
    assert_eq!(alerts.status, 200, "{}", alerts.body);
    let stored = alerts
        .json()
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|a| a["fingerprint"] == "nul\\u{0}fp")
                .cloned()
        })
        .unwrap_or_else(|| panic!("the alert with a NUL is not listed: {}", alerts.body));
    assert_eq!(stored["labels"]["instance"], "web\\u{0}01", "{stored:#}");
}

/// A store error's text names the database (`postgres user@host:port/db`): callers get none of it.
fn assert_names_no_database(body: &str, user: &str) {
    assert!(
        !body.contains("postgres") && !body.contains(&format!("{user}@")),
        "a refusal names the database: {body}"
    );
}

#[test]
fn the_outbox_delivers_once_and_a_resolve_reaches_pagerduty_once_across_replicas() {
    use runbook_tests::sinks::{Api, Receiver};
    let Some(db) = database() else { return };
    let pd = Receiver::start(Api::PagerDuty);
    let sandbox = Sandbox::new();
    sandbox.write(
        "host.toml",
        format!(
            "[notify.ops]\nkind = \"pagerduty\"\nrouting-key = {{ env = \"PD_KEY\" }}\nbase-url = \"{}\"\n\
             [notify.ops.delivery]\nretry-base-ms = 50\nmin-interval-ms = 0\n\
             [webhooks.alertmanager]\nauth = {{ kind = \"none\" }}\n\
             [[route]]\nmatchers = ['alertname=\"DiskFull\"']\nplaybook = \"disk-full\"\n\
             params = {{ paths = \"\", backups = \"\", mounts = \"/\", warn-percent = \"1\", critical-percent = \"100\" }}\n",
            pd.url("")
        ),
    );
    let env = [
        ("PD_KEY", "R0UTINGKEY0000000000000000000000"),
        ("RUNBOOK_STORE", &db.url),
    ];
    let (a, b) = (Server::start(&sandbox, &env), Server::start(&sandbox, &env));
    let alert = |status: &str| {
        json!({
            "version": "4", "status": status, "receiver": "runbook",
            "alerts": [{
                "status": status,
                "labels": {"alertname": "DiskFull", "instance": "web-1"},
                "annotations": {},
                "startsAt": "2026-11-26T10:00:00Z",
                "fingerprint": "f00dfeed87654321"
            }]
        })
        .to_string()
    };
    let json = [("content-type", "application/json")];
    assert_eq!(
        a.post("/hooks/alertmanager", &json, alert("firing").as_bytes())
            .status,
        202
    );
    pd.wait_accepted(1, WAIT);
    let resolved = alert("resolved");
    std::thread::scope(|s| {
        for server in [&a, &b] {
            s.spawn(|| {
                let reply = server.post("/hooks/alertmanager", &json, resolved.as_bytes());
                assert_eq!(reply.status, 202, "{}", reply.body);
            });
        }
    });
    let accepted = pd.wait_accepted(2, WAIT);
    assert_eq!(accepted[0].json()["event_action"], "trigger");
    assert_eq!(accepted[1].json()["event_action"], "resolve");
    // Both replicas' delivery workers watch the channel: give them time to send a duplicate.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(pd.requests().len(), 2, "nothing sent twice");
}
