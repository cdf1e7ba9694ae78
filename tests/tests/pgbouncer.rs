//! `host serve` replicas whose store URL goes through PgBouncer in transaction mode (Debian's
//! pgbouncer that scripts/test-env.sh starts in front of the plain cluster, with
//! `pgbouncer=true`): the same alert to two replicas starts one run, and a replica SIGKILLed
//! mid-run loses that run once while the survivor runs its queue once — with no LISTEN (the
//! pooler cannot carry it), so the survivor finds queued runs by polling. Without the opt-in
//! the store refuses to start and says which setting to add.
//!
//! Skipped (with a message) when RUNBOOK_TEST_POSTGRES or RUNBOOK_TEST_PGBOUNCER is not set.

use std::time::{Duration, Instant};

use runbook_tests::Sandbox;
use runbook_tests::postgres::{self, Database};
use runbook_tests::server::Server;
use serde_json::{Value, json};

const TOKEN: &str = "pgbouncer-t0ken";
const WAIT: Duration = Duration::from_secs(60);

/// A fresh database, and its URL through the pooler (the database's name kept: the pooler's
/// `*` entry forwards any name to the cluster).
fn database() -> Option<(Database, String)> {
    let pooler = std::env::var("RUNBOOK_TEST_PGBOUNCER").ok();
    let (Some(_), Some(pooler)) = (postgres::cluster(), pooler) else {
        eprintln!(
            "skipped: RUNBOOK_TEST_POSTGRES or RUNBOOK_TEST_PGBOUNCER not set (scripts/test.sh sets them)"
        );
        return None;
    };
    let db = Database::create();
    let server = pooler.rsplit_once('/').expect("a database part").0;
    let url = format!("{server}/{}", db.name);
    Some((db, url))
}

/// The hostile playbook one at a time across replicas, an `effects` file channel that counts
/// executions, `ops` in a file, alerts routed by their `case` label.
fn sandbox() -> Sandbox {
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
auth = {{ kind = "bearer", token = {{ env = "RB_TOKEN" }} }}

[webhooks.alertmanager]
auth = {{ kind = "bearer", token = {{ env = "RB_TOKEN" }} }}

[notify.ops]
kind = "file"
path = "{dir}/ops.jsonl"

[notify.effects]
kind = "file"
path = "{dir}/effects.jsonl"

[[route]]
matchers = ['alertname="Pooled"']
playbook = "hostile"
params = {{ case = "{{{{ labels.case }}}}", target = "effects" }}

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

fn replica(sandbox: &Sandbox, store: &str) -> Server {
    Server::start(sandbox, &[("RB_TOKEN", TOKEN), ("RUNBOOK_STORE", store)])
}

fn fire(server: &Server, fingerprint: &str) -> Value {
    let body = json!({
        "version": "4", "status": "firing", "receiver": "host",
        "groupLabels": {}, "commonLabels": {},
        "alerts": [{
            "status": "firing",
            "labels": { "alertname": "Pooled", "case": "notify" },
            "annotations": {},
            "startsAt": "2026-12-07T01:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": fingerprint
        }]
    });
    let auth = format!("Bearer {TOKEN}");
    let reply = server.post(
        "/hooks/alertmanager",
        &[("Authorization", &auth)],
        body.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    reply.json()["alerts"][0].clone()
}

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
fn replicas_through_the_pooler_start_one_run_per_alert_and_recover_a_killed_replica() {
    let Some((_db, pooled)) = database() else {
        return;
    };
    let store = format!("{pooled}?pgbouncer=true");
    let sandbox = sandbox();
    let mut doomed = replica(&sandbox, &store);
    let survivor = replica(&sandbox, &store);

    let body = json!({ "case": "sleep", "target": "effects" }).to_string();
    let parked = doomed.submit_run("/hooks/run/hostile", TOKEN, body.as_bytes());
    doomed.wait_for_status(&parked, "running", WAIT);

    // The same alert to both replicas at once, a few times: one run each time, queued behind
    // the parked run (max-concurrent = 1 across replicas).
    let mut queued = Vec::new();
    for i in 0..5 {
        let fingerprint = format!("fp{i}");
        let both = std::sync::Barrier::new(2);
        let (first, second) = std::thread::scope(|s| {
            let one = s.spawn(|| {
                both.wait();
                fire(&doomed, &fingerprint)
            });
            let two = s.spawn(|| {
                both.wait();
                fire(&survivor, &fingerprint)
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
        queued.push(first["run_id"].as_str().unwrap().to_string());
    }
    for id in &queued {
        assert_eq!(
            survivor.get(&format!("/runs/{id}")).json()["status"],
            "queued"
        );
    }

    doomed.stop("KILL");
    wait_for("the parked run to be lost", || {
        survivor.get(&format!("/runs/{parked}")).json()["status"] == "lost"
    });
    for id in &queued {
        let run = survivor.wait_for_run(id, WAIT);
        assert_eq!(run["status"], "resolved", "{run:#}");
    }
    wait_for("ops to hear of the lost run", || {
        lines_about(&sandbox, "ops.jsonl", &parked) > 0
    });
    // The survivor keeps looking for lost runs every lease/3: give it a few looks.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lines_about(&sandbox, "ops.jsonl", &parked), 1);
    for id in &queued {
        assert_eq!(lines_about(&sandbox, "effects.jsonl", id), 1, "run {id}");
    }
    assert_eq!(lines_about(&sandbox, "effects.jsonl", &parked), 0);
    let runs = survivor.get("/runs?limit=100").json();
    assert_eq!(runs.as_array().unwrap().len(), 6, "{runs:#}");
}

#[test]
fn through_the_pooler_without_the_opt_in_the_error_names_the_setting() {
    let Some((db, pooled)) = database() else {
        return;
    };
    let sandbox = Sandbox::new();
    let run = sandbox.host_env(&["runs"], &[("RUNBOOK_STORE", pooled.as_str())]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(run.stderr.contains("pgbouncer=true"), "{}", run.stderr);
    // Refused before anything was written: the database has no tables of ours.
    let tables = postgres::psql(
        &db.url,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
    );
    assert_eq!(tables.trim(), "0");
}
