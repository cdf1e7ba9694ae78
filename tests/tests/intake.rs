//! Webhook intake through the store's group commit (`host serve` over real HTTP, the no-op
//! playbook): identical deliveries at once start exactly one run, a route's cooldown holds
//! across a restart, and runs leave nothing behind in the server's memory.

use std::time::{Duration, Instant};

use runbook_tests::Sandbox;
use runbook_tests::server::Server;

const TOKEN: &str = "rb-intake-token";

fn sandbox(route: &str) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("noop");
    sandbox.write(
        "host.toml",
        format!(
            "plugin-dirs = [\"plugins\"]\n\
             [server]\nqueue-limit = 100000\nmax-concurrent-runs = 4\n\
             [plugins.noop]\nmax-concurrent = 4\n\
             [webhooks.alertmanager]\nauth = {{ kind = \"bearer\", token = {{ env = \"RB_INTAKE_TOKEN\" }} }}\n\
             [webhooks.run]\nauth = {{ kind = \"bearer\", token = {{ env = \"RB_INTAKE_TOKEN\" }} }}\n\
             [[route]]\nmatchers = ['alertname=\"Noop\"']\nplaybook = \"noop\"\n{route}\n"
        ),
    );
    sandbox
}

fn start(sandbox: &Sandbox) -> Server {
    Server::start(sandbox, &[("RB_INTAKE_TOKEN", TOKEN)])
}

fn alert(fingerprint: &str, starts_at: &str) -> String {
    format!(
        r#"{{"version":"4","status":"firing","alerts":[{{"status":"firing","labels":{{"alertname":"Noop"}},
            "annotations":{{}},"startsAt":"{starts_at}","fingerprint":"{fingerprint}"}}]}}"#
    )
}

/// The disposition and run id of a one-alert Alertmanager delivery.
fn deliver(server: &Server, body: &str) -> (String, Option<String>) {
    let auth = format!("Bearer {TOKEN}");
    let reply = server.post(
        "/hooks/alertmanager",
        &[("Authorization", &auth)],
        body.as_bytes(),
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    let entry = &reply.json()["alerts"][0];
    (
        entry["disposition"].as_str().unwrap().to_string(),
        entry["run_id"].as_str().map(String::from),
    )
}

#[test]
fn identical_deliveries_at_once_start_exactly_one_run() {
    let sandbox = sandbox("");
    let server = start(&sandbox);
    let body = alert("same", "2026-11-25T10:00:00Z");
    let outcomes: Vec<(String, Option<String>)> = std::thread::scope(|s| {
        let senders: Vec<_> = (0..50)
            .map(|_| s.spawn(|| deliver(&server, &body)))
            .collect();
        senders.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let started: Vec<_> = outcomes.iter().filter(|(d, _)| d == "started").collect();
    let deduplicated: Vec<_> = outcomes
        .iter()
        .filter(|(d, _)| d == "deduplicated")
        .collect();
    assert_eq!((started.len(), deduplicated.len()), (1, 49), "{outcomes:?}");
    let id = started[0].1.clone().unwrap();
    assert!(
        deduplicated
            .iter()
            .all(|(_, run)| run.as_deref() == Some(&id))
    );
    assert_eq!(
        server.wait_for_run(&id, Duration::from_secs(30))["status"],
        "no-action"
    );
    // Every delivery is in the alert log with what became of it.
    let alerts = server.get("/alerts").json();
    let logged = alerts.as_array().unwrap();
    assert_eq!(logged.len(), 50);
    assert_eq!(
        logged
            .iter()
            .filter(|a| a["disposition"] == "started")
            .count(),
        1
    );
    assert!(logged.iter().all(|a| a["run_id"] == id.as_str()));
}

#[test]
fn a_route_cooldown_holds_across_a_restart_and_only_for_its_alert() {
    let sandbox = sandbox("cooldown-secs = 3600");
    let mut server = start(&sandbox);
    let (first, id) = deliver(&server, &alert("fp-a", "2026-11-25T10:00:00Z"));
    assert_eq!(first, "started");
    server.wait_for_run(&id.unwrap(), Duration::from_secs(30));
    // Fired again (a new startsAt, so not a re-send): within the cooldown, nothing runs.
    let again = deliver(&server, &alert("fp-a", "2026-11-25T10:05:00Z"));
    assert_eq!(again, ("cooldown".to_string(), None));
    assert_eq!(
        deliver(&server, &alert("fp-b", "2026-11-25T10:05:00Z")).0,
        "started",
        "another alert on the same route is not held by fp-a's cooldown"
    );
    // The cooldown lives in the store, not in a server's memory.
    server.stop("TERM");
    let server = start(&sandbox);
    let after_restart = deliver(&server, &alert("fp-a", "2026-11-25T10:10:00Z"));
    assert_eq!(after_restart, ("cooldown".to_string(), None));
}

/// A gauge or counter from /metrics (0 when absent).
fn metric(server: &Server, name: &str) -> f64 {
    let text = server.get("/metrics").body;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Sends `runs` no-op runs from 8 clients, waits until none is queued or running, and returns
/// the resident size once it stops moving (the server trims freed memory when it goes idle).
fn burst_then_settle(server: &Server, runs: usize) -> u64 {
    let auth = format!("Bearer {TOKEN}");
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..runs / 8 {
                    let reply = server.post("/hooks/run/noop", &[("Authorization", &auth)], b"{}");
                    assert_eq!(reply.status, 202, "{}", reply.body);
                }
            });
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    while metric(server, "runbook_queue_depth") + metric(server, "runbook_running_runs") > 0.0 {
        assert!(Instant::now() < deadline, "the queue did not drain");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut last = rss_kib(server.pid());
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(250));
        let now = rss_kib(server.pid());
        if now == last {
            break;
        }
        last = now;
    }
    last
}

#[test]
fn runs_leave_nothing_behind_in_the_server() {
    let sandbox = sandbox("");
    let server = start(&sandbox);
    let warm = burst_then_settle(&server, 1600);
    let after = burst_then_settle(&server, 4800);
    let runs = metric(
        &server,
        "runbook_runs_total{playbook=\"noop\",status=\"no-action\"}",
    );
    assert_eq!(runs, 6400.0, "every run ran");
    // 4800 more runs: anything kept per run (a task, a map entry, a few KB) shows here; the
    // leak this guards against was ~4.5 KB a run (≈21 MiB).
    let growth_mib = (after as f64 - warm as f64) / 1024.0;
    assert!(
        growth_mib < 6.0,
        "resident size grew by {growth_mib:.1} MiB over 4800 runs ({warm} KiB -> {after} KiB)"
    );
}
