//! The store over TLS, with libpq's settings, against the TLS-only PostgreSQL cluster of
//! scripts/test-env.sh (plain text refused by its pg_hba.conf, so a passing test proves the
//! link was encrypted): two replicas on `sslmode=verify-full`; client certificates; and each
//! way the link can be wrong (untrusted CA, a host name the certificate does not carry, an
//! expired certificate, no TLS, a missing or foreign client certificate) refused with a
//! message naming the setting to fix.
//!
//! The tests share the cluster and one of them changes the certificate it serves: they take
//! turns. Skipped (with a message) when RUNBOOK_TEST_POSTGRES_TLS is not set.

use std::sync::Mutex;
use std::time::Duration;

use runbook_tests::Sandbox;
use runbook_tests::postgres::TlsCluster;
use runbook_tests::server::Server;
use serde_json::{Value, json};

static TURNS: Mutex<()> = Mutex::new(());
const TOKEN: &str = "tls-t0ken";

fn cluster() -> Option<TlsCluster> {
    let cluster = TlsCluster::from_env();
    if cluster.is_none() {
        eprintln!("skipped: RUNBOOK_TEST_POSTGRES_TLS not set (scripts/test.sh sets it)");
    }
    cluster
}

fn verify_full(cluster: &TlsCluster, host: &str, db: &str) -> String {
    let ca = cluster.cert("ca.pem");
    cluster.url(host, db, &format!("sslmode=verify-full&sslrootcert={ca}"))
}

/// `host check --json` against `store`: (its store entry, the whole report).
fn check(sandbox: &Sandbox, store: &str) -> (Value, Value) {
    let run = sandbox.host_env(&["check", "--json"], &[("RUNBOOK_STORE", store)]);
    let report = run.json();
    (report["store"].clone(), report)
}

fn sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("hostile");
    sandbox.write(
        "host.toml",
        r#"plugin-dirs = ["plugins"]

[server]
shutdown-grace-secs = 1

[webhooks.alertmanager]
auth = { kind = "bearer", token = { env = "RB_TOKEN" } }

[[route]]
matchers = ['alertname="Tls"']
playbook = "hostile"
params = { case = "quick" }
"#,
    );
    sandbox
}

#[test]
fn replicas_share_one_store_over_verified_tls() {
    let Some(cluster) = cluster() else { return };
    let _turn = TURNS.lock().unwrap_or_else(|e| e.into_inner());
    let db = cluster.database();
    let store = verify_full(&cluster, "127.0.0.1", &db.name);
    let sandbox = sandbox();

    let (entry, report) = check(&sandbox, &store);
    assert_eq!(entry["ok"], true, "{report:#}");
    assert_eq!(entry["encrypted"], true, "{entry:#}");
    assert_eq!(entry["verified"], true, "{entry:#}");
    assert!(
        entry["link"]
            .as_str()
            .unwrap()
            .contains("host name verified"),
        "{entry:#}"
    );

    let env = [("RB_TOKEN", TOKEN), ("RUNBOOK_STORE", store.as_str())];
    let a = Server::start(&sandbox, &env);
    let b = Server::start(&sandbox, &env);
    let alert = json!({
        "version": "4", "status": "firing", "receiver": "host",
        "groupLabels": {}, "commonLabels": {},
        "alerts": [{
            "status": "firing", "labels": { "alertname": "Tls" }, "annotations": {},
            "startsAt": "2026-12-07T01:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "tls-1"
        }]
    })
    .to_string();
    let auth = format!("Bearer {TOKEN}");
    let mut dispositions = Vec::new();
    let mut run_id = String::new();
    for server in [&a, &b] {
        let reply = server.post(
            "/hooks/alertmanager",
            &[("Authorization", &auth)],
            alert.as_bytes(),
        );
        assert_eq!(reply.status, 202, "{}", reply.body);
        let record = reply.json()["alerts"][0].clone();
        dispositions.push(record["disposition"].as_str().unwrap().to_string());
        run_id = record["run_id"].as_str().unwrap_or_default().to_string();
    }
    assert_eq!(
        dispositions,
        ["started", "deduplicated"],
        "one alert, two replicas, one run: the database decided over TLS"
    );
    let run = b.wait_for_run(&run_id, Duration::from_secs(60));
    assert_eq!(run["status"], "no-action", "{run:#}");
    assert_eq!(run["summary"], "quick case done", "{run:#}");
    let ssl_sessions = cluster.admin(
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
             WHERE datname = '{}' AND ssl",
            db.name
        ),
    );
    assert!(
        ssl_sessions.trim().parse::<u32>().unwrap() >= 2,
        "the replicas' pooled connections are TLS sessions: {ssl_sessions}"
    );
}

#[test]
fn client_certificates_prove_who_connects() {
    let Some(cluster) = cluster() else { return };
    let _turn = TURNS.lock().unwrap_or_else(|e| e.into_inner());
    let sandbox = Sandbox::new();
    let base = verify_full(&cluster, "127.0.0.1", "runbook_certs");
    let with = |name: &str| {
        format!(
            "{base}&sslcert={}&sslkey={}",
            cluster.cert(&format!("client-{name}.pem")),
            cluster.cert(&format!("client-{name}.key"))
        )
    };

    let (entry, report) = check(&sandbox, &with("runbook"));
    assert_eq!(entry["ok"], true, "{report:#}");
    assert!(
        entry["link"]
            .as_str()
            .unwrap()
            .contains("client certificate"),
        "{entry:#}"
    );

    let (entry, _) = check(&sandbox, &base);
    assert_eq!(entry["ok"], false);
    assert!(
        entry["detail"]
            .as_str()
            .unwrap()
            .contains("set sslcert and sslkey"),
        "{entry:#}"
    );

    // A certificate from the same CA for someone else: PostgreSQL maps CN to the user.
    let (entry, _) = check(&sandbox, &with("intruder"));
    assert_eq!(entry["ok"], false);
    assert!(
        entry["detail"]
            .as_str()
            .unwrap()
            .contains("certificate authentication failed"),
        "{entry:#}"
    );

    let half = format!("{base}&sslcert={}", cluster.cert("client-runbook.pem"));
    let run = sandbox.host_env(&["runs"], &[("RUNBOOK_STORE", half.as_str())]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("without sslkey"), "{}", run.stderr);
}

#[test]
fn wrong_links_are_refused_with_the_setting_to_fix() {
    let Some(cluster) = cluster() else { return };
    let _turn = TURNS.lock().unwrap_or_else(|e| e.into_inner());
    let sandbox = Sandbox::new();
    // A database the test's user owns (PostgreSQL 15 keeps others' `public` schema closed).
    let db = cluster.database();
    let db = db.name.as_str();
    let refused = |store: &str, needle: &str| {
        let (entry, report) = check(&sandbox, store);
        assert_eq!(entry["ok"], false, "{store}: {report:#}");
        let detail = entry["detail"].as_str().unwrap();
        assert!(detail.contains(needle), "{store}: {detail}");
        assert!(!detail.contains("db error"), "{detail}");
    };

    let other_ca = cluster.cert("other-ca.pem");
    refused(
        &cluster.url(
            "127.0.0.1",
            db,
            &format!("sslmode=verify-full&sslrootcert={other_ca}"),
        ),
        "not signed by the CA in sslrootcert=",
    );
    // The certificate names 127.0.0.1, pg.test and host.test, not "localhost".
    refused(
        &verify_full(&cluster, "localhost", db),
        "does not name the host \"localhost\"",
    );
    let ca = cluster.cert("ca.pem");
    let (entry, report) = check(
        &sandbox,
        &cluster.url(
            "localhost",
            db,
            &format!("sslmode=verify-ca&sslrootcert={ca}"),
        ),
    );
    assert_eq!(
        entry["ok"], true,
        "verify-ca checks the CA only: {report:#}"
    );
    assert!(
        entry["link"]
            .as_str()
            .unwrap()
            .contains("host name not checked"),
        "{entry:#}"
    );
    refused(
        &cluster.url("127.0.0.1", db, "sslmode=disable"),
        "accepts only TLS",
    );
    refused(
        &cluster.url(
            "127.0.0.1",
            db,
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        ),
        "sslrootcert=/nonexistent/ca.pem",
    );
    let run = sandbox.host_env(
        &["runs"],
        &[(
            "RUNBOOK_STORE",
            &cluster.url("127.0.0.1", db, "sslmode=verify"),
        )],
    );
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("verify-full"), "{}", run.stderr);

    // `require` encrypts without checking: even an expired certificate connects, and
    // `host check` says the certificate is not verified (on loopback: no warning).
    cluster.serve_certificate("expired");
    let expired = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        refused(&verify_full(&cluster, "127.0.0.1", db), "has expired");
        let (entry, _) = check(&sandbox, &cluster.url("127.0.0.1", db, "sslmode=require"));
        assert_eq!(entry["ok"], true, "{entry:#}");
        assert!(
            entry["link"].as_str().unwrap().contains("NOT verified"),
            "{entry:#}"
        );
    }));
    cluster.serve_certificate("server");
    if let Err(panic) = expired {
        std::panic::resume_unwind(panic);
    }
}
