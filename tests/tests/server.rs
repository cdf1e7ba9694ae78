//! `host serve` over real HTTP: every auth mode, the status codes monitoring relies on, dedup,
//! a burst with nothing lost, and a host killed mid-run.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use runbook_tests::Sandbox;
use runbook_tests::http::Peer;
use runbook_tests::server::Server;
use sha2::Sha256;

const TOKEN: &str = "t0ken-for-tests";
/// whsec_ + base64("standard-webhooks-key")
const WHSEC: &str = "whsec_c3RhbmRhcmQtd2ViaG9va3Mta2V5";

/// A config with one auth mode per endpoint and a quick disk-full route.
fn config(sandbox: &Sandbox, run_auth: &str, server: &str) {
    sandbox.write(
        "host.toml",
        format!(
            "[server]\n{server}\n\
             [webhooks.alertmanager]\nauth = {{ kind = \"bearer\", token = {{ env = \"AM_TOKEN\" }} }}\n\
             [webhooks.run]\nauth = {run_auth}\n\
             [[route]]\nmatchers = ['alertname=\"DiskFull\"', 'severity=~\"warning|critical\"']\n\
             playbook = \"disk-full\"\n\
             params = {{ paths = \"\", backups = \"\", mounts = \"{{{{ labels.mountpoint }}}}\", warn-percent = \"99\", critical-percent = \"100\" }}\n"
        ),
    );
}

fn env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AM_TOKEN", TOKEN),
        ("RUN_SECRET", "hmac-secret"),
        ("RUN_PASSWORD", "pa55"),
        ("WHSEC", WHSEC),
    ]
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

fn alert_payload(status: &str, fingerprint: &str, labels: &str) -> String {
    format!(
        r#"{{"version":"4","status":"{status}","receiver":"host","groupLabels":{{}},"commonLabels":{{}},
            "alerts":[{{"status":"{status}","labels":{labels},"annotations":{{"summary":"disk"}},
            "startsAt":"2026-11-25T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"{fingerprint}"}}]}}"#
    )
}

#[test]
fn bearer_basic_and_hmac_accept_good_requests_and_refuse_the_rest() {
    let body = br#"{"paths": "", "backups": "", "warn-percent": "99", "critical-percent": "100"}"#;

    let sandbox = Sandbox::new();
    config(
        &sandbox,
        r#"{ kind = "bearer", token = { env = "AM_TOKEN" } }"#,
        "",
    );
    let server = Server::start(&sandbox, &env());
    let auth = bearer();
    assert_eq!(
        server
            .post("/hooks/run/disk-full", &[("Authorization", &auth)], body)
            .status,
        202
    );
    assert_eq!(
        server
            .post(
                "/hooks/run/disk-full",
                &[("Authorization", "Bearer wrong")],
                body
            )
            .status,
        401
    );
    assert_eq!(server.post("/hooks/run/disk-full", &[], body).status, 401);
    drop(server);

    let sandbox = Sandbox::new();
    config(
        &sandbox,
        r#"{ kind = "basic", username = "am", password = { env = "RUN_PASSWORD" } }"#,
        "",
    );
    let server = Server::start(&sandbox, &env());
    let good = format!("Basic {}", BASE64.encode("am:pa55"));
    let bad = format!("Basic {}", BASE64.encode("am:nope"));
    assert_eq!(
        server
            .post("/hooks/run/disk-full", &[("Authorization", &good)], body)
            .status,
        202
    );
    assert_eq!(
        server
            .post("/hooks/run/disk-full", &[("Authorization", &bad)], body)
            .status,
        401
    );
    assert_eq!(server.post("/hooks/run/disk-full", &[], body).status, 401);
    drop(server);

    let sandbox = Sandbox::new();
    config(
        &sandbox,
        r#"{ kind = "hmac-sha256", secret = { env = "RUN_SECRET" } }"#,
        "",
    );
    let server = Server::start(&sandbox, &env());
    let mut mac = Hmac::<Sha256>::new_from_slice(b"hmac-secret").unwrap();
    mac.update(body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        server
            .post(
                "/hooks/run/disk-full",
                &[("X-Hub-Signature-256", &signature)],
                body
            )
            .status,
        202
    );
    // The same signature over a different body is refused.
    assert_eq!(
        server
            .post(
                "/hooks/run/disk-full",
                &[("X-Hub-Signature-256", &signature)],
                b"{}"
            )
            .status,
        401
    );
    assert_eq!(server.post("/hooks/run/disk-full", &[], body).status, 401);
}

fn standard_signature(id: &str, timestamp: u64, body: &[u8]) -> String {
    runbook_tests::standard_webhooks_signature(WHSEC, id, timestamp, body)
}

#[test]
fn standard_webhooks_refuse_bad_stale_and_replayed_deliveries() {
    let sandbox = Sandbox::new();
    config(
        &sandbox,
        r#"{ kind = "standard-webhooks", secret = { env = "WHSEC" } }"#,
        "",
    );
    let server = Server::start(&sandbox, &env());
    let body = br#"{"paths": "", "backups": "", "warn-percent": "99", "critical-percent": "100"}"#;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let send = |id: &str, ts: u64, sig: &str| {
        let ts = ts.to_string();
        server
            .post(
                "/hooks/run/disk-full",
                &[
                    ("webhook-id", id),
                    ("webhook-timestamp", &ts),
                    ("webhook-signature", sig),
                ],
                body,
            )
            .status
    };
    assert_eq!(
        send("msg_1", now, &standard_signature("msg_1", now, body)),
        202
    );
    assert_eq!(
        send("msg_1", now, &standard_signature("msg_1", now, body)),
        401,
        "replayed id"
    );
    assert_eq!(
        send("msg_2", now, &standard_signature("msg_other", now, body)),
        401,
        "signature of another id"
    );
    assert_eq!(
        send(
            "msg_3",
            now - 600,
            &standard_signature("msg_3", now - 600, body)
        ),
        401,
        "stale timestamp"
    );
    let several = format!("v1,bm9wZQ== {}", standard_signature("msg_4", now, body));
    assert_eq!(
        send("msg_4", now, &several),
        202,
        "one valid signature among several"
    );
}

#[test]
fn status_codes_say_whether_retrying_can_help() {
    let sandbox = Sandbox::new();
    config(
        &sandbox,
        r#"{ kind = "bearer", token = { env = "AM_TOKEN" } }"#,
        "max-body-bytes = 2048",
    );
    let server = Server::start(&sandbox, &env());
    let auth = bearer();
    let h = [("Authorization", auth.as_str())];
    assert_eq!(
        server.post("/hooks/alertmanager", &h, b"{not json").status,
        400
    );
    assert_eq!(
        server.post("/hooks/run/disk-full", &h, b"[1, 2]").status,
        400
    );
    let unknown_param = server.post("/hooks/run/disk-full", &h, br#"{"mount": "/"}"#);
    assert_eq!(unknown_param.status, 400);
    assert!(
        unknown_param
            .body
            .contains("has no parameter \\\"mount\\\""),
        "{}",
        unknown_param.body
    );
    assert_eq!(
        server.post("/hooks/run/no-such-playbook", &h, b"{}").status,
        404
    );
    let big = vec![b' '; 4096];
    assert_eq!(server.post("/hooks/run/disk-full", &h, &big).status, 413);
    assert_eq!(server.get("/runs/r-nope").status, 404);
    drop(server);

    // A full queue is "try again later": 503 with Retry-After, and nothing stored.
    let sandbox = Sandbox::new();
    config(
        &sandbox,
        r#"{ kind = "bearer", token = { env = "AM_TOKEN" } }"#,
        "queue-limit = 0",
    );
    let server = Server::start(&sandbox, &env());
    let busy = server.post("/hooks/run/disk-full", &h, b"{}");
    assert_eq!(busy.status, 503);
    assert_eq!(busy.retry_after.as_deref(), Some("5"));
    assert_eq!(server.get("/runs").json().as_array().unwrap().len(), 0);
}

#[test]
fn alerts_are_routed_deduplicated_and_resolved_ones_recorded() {
    let sandbox = Sandbox::new();
    config(
        &sandbox,
        r#"{ kind = "bearer", token = { env = "AM_TOKEN" } }"#,
        "",
    );
    let server = Server::start(&sandbox, &env());
    let auth = bearer();
    let h = [("Authorization", auth.as_str())];
    let labels = r#"{"alertname":"DiskFull","severity":"critical","mountpoint":"/"}"#;

    let first = server.post(
        "/hooks/alertmanager",
        &h,
        alert_payload("firing", "fp1", labels).as_bytes(),
    );
    assert_eq!(first.status, 202, "{}", first.body);
    let first = first.json();
    let id = first["runs"][0].as_str().unwrap().to_string();
    let run = server.wait_for_run(&id, Duration::from_secs(30));
    assert_eq!(run["trigger"], "alert");
    assert_eq!(
        run["params"]["mounts"], "/",
        "templated from the alert's labels"
    );
    assert_eq!(run["alert"]["labels"]["severity"], "critical");

    let again = server
        .post(
            "/hooks/alertmanager",
            &h,
            alert_payload("firing", "fp1", labels).as_bytes(),
        )
        .json();
    assert_eq!(again["runs"][0], id.as_str());
    assert_eq!(again["alerts"][0]["disposition"], "deduplicated");

    let resolved = server.post(
        "/hooks/alertmanager",
        &h,
        alert_payload("resolved", "fp1", labels).as_bytes(),
    );
    assert_eq!(resolved.status, 202);
    assert_eq!(resolved.json()["alerts"][0]["disposition"], "resolved");
    assert!(resolved.json()["runs"].as_array().unwrap().is_empty());

    let unrouted = server.post(
        "/hooks/alertmanager",
        &h,
        alert_payload("firing", "fp2", r#"{"alertname":"CpuHigh"}"#).as_bytes(),
    );
    assert_eq!(unrouted.status, 202);
    assert_eq!(unrouted.json()["alerts"][0]["disposition"], "unrouted");

    let runs = server.get("/runs").json();
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs:#}");
    let alerts = server.get("/alerts").json();
    let dispositions: Vec<&str> = alerts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["disposition"].as_str().unwrap())
        .collect();
    assert_eq!(
        dispositions,
        ["unrouted", "resolved", "deduplicated", "started"]
    );

    let metrics = server.get("/metrics").body;
    assert!(
        metrics.contains(r#"runbook_runs_total{playbook="disk-full",status="no-action"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"runbook_webhook_requests_total{endpoint="alertmanager",status="202"} 4"#),
        "{metrics}"
    );
}

#[test]
fn a_burst_of_webhooks_is_all_stored_and_run() {
    let sandbox = Sandbox::new();
    config(
        &sandbox,
        r#"{ kind = "bearer", token = { env = "AM_TOKEN" } }"#,
        "max-concurrent-runs = 4",
    );
    sandbox.write_append("host.toml", "[plugins.disk-full]\nmax-concurrent = 4\n");
    let server = Server::start(&sandbox, &env());
    let body = br#"{"paths": "", "backups": "", "warn-percent": "99", "critical-percent": "100"}"#;
    let ids: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    (0..10)
                        .map(|_| server.submit_run("/hooks/run/disk-full", TOKEN, body))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(ids.len(), 80);
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 80);
    for id in &ids {
        assert_eq!(
            server.wait_for_run(id, Duration::from_secs(60))["status"],
            "no-action"
        );
    }
    let stored = server.get("/runs?limit=1000").json();
    assert_eq!(stored.as_array().unwrap().len(), 80);
}

#[test]
fn a_host_killed_mid_run_has_its_run_marked_lost_once_the_lease_ends() {
    let sandbox = Sandbox::new();
    config(
        &sandbox,
        r#"{ kind = "bearer", token = { env = "AM_TOKEN" } }"#,
        "lease-secs = 1",
    );
    let silent = Peer::silent();
    let port = runbook_tests::docker::free_port();
    let mut server = Server::start_on(&sandbox, &env(), port);
    let body = format!(r#"{{"url": "{}", "timeout-ms": "30000"}}"#, silent.url("/"));
    let id = server.submit_run("/hooks/run/web-down", TOKEN, body.as_bytes());
    server.wait_for_status(&id, "running", Duration::from_secs(20));

    server.stop("KILL");
    let server = Server::start_on(&sandbox, &env(), port);
    // Cut off mid-run: lost once its lease ran out, never re-run (crash_recovery.rs covers
    // the rest).
    server.wait_for_status(&id, "lost", Duration::from_secs(20));
    let run = server.get(&format!("/runs/{id}")).json();
    assert!(run["reason"].as_str().unwrap().contains("not re-run"));
}

#[test]
fn sigterm_lets_short_runs_finish_and_marks_the_rest_interrupted() {
    let sandbox = Sandbox::new();
    config(
        &sandbox,
        r#"{ kind = "bearer", token = { env = "AM_TOKEN" } }"#,
        "shutdown-grace-secs = 2",
    );
    let silent = Peer::silent();
    let mut server = Server::start(&sandbox, &env());
    let slow = format!(r#"{{"url": "{}", "timeout-ms": "30000"}}"#, silent.url("/"));
    let stuck = server.submit_run("/hooks/run/web-down", TOKEN, slow.as_bytes());
    server.wait_for_status(&stuck, "running", Duration::from_secs(20));

    let started = std::time::Instant::now();
    server.stop("TERM");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "shutdown took {:?}",
        started.elapsed()
    );

    let shown = sandbox.host(&["runs", "show", &stuck, "--json"]).json();
    assert_eq!(shown["status"], "interrupted", "{shown:#}");
}
