//! A real Alertmanager delivering to `host serve`: the routed playbook runs once per alert with
//! the alert's labels, Alertmanager's re-sends are deduplicated, resolves and unrouted alerts are
//! recorded without runs.

use std::time::{Duration, Instant};

use runbook_tests::Sandbox;
use runbook_tests::alertmanager::{Alertmanager, now_rfc3339};
use runbook_tests::server::Server;

const TOKEN: &str = "am-bearer-token";

fn dispositions(server: &Server) -> Vec<(String, String)> {
    server
        .get("/alerts?limit=1000")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["alertname"].as_str().unwrap().to_string(),
                a["disposition"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn alertmanager_alerts_run_once_and_resolves_are_recorded() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "host.toml",
        "[webhooks.alertmanager]\nauth = { kind = \"bearer\", token = { env = \"AM_TOKEN\" } }\n\
         [[route]]\nmatchers = ['alertname=\"DiskFull\"']\nplaybook = \"disk-full\"\n\
         params = { mounts = \"{{ labels.mountpoint }}\", paths = \"\", backups = \"\", warn-percent = \"99\", critical-percent = \"100\" }\n",
    );
    let server = Server::start(&sandbox, &[("AM_TOKEN", TOKEN)]);
    let am = Alertmanager::start(&server.url("/hooks/alertmanager"), TOKEN);

    let starts_at = now_rfc3339();
    let labels = [
        ("alertname", "DiskFull"),
        ("mountpoint", "/"),
        ("instance", "node-1"),
    ];
    am.fire(&labels, &[("summary", "disk almost full")], &starts_at);
    am.fire(
        &[("alertname", "CpuHigh"), ("instance", "node-1")],
        &[],
        &starts_at,
    );

    wait_until("the routed run", Duration::from_secs(15), || {
        server
            .get("/runs")
            .json()
            .as_array()
            .is_some_and(|r| !r.is_empty())
    });
    let runs = server.get("/runs").json();
    let id = runs[0]["id"].as_str().unwrap().to_string();
    let run = server.wait_for_run(&id, Duration::from_secs(30));
    assert_eq!(run["playbook"], "disk-full");
    assert_eq!(run["trigger"], "alert");
    assert_eq!(run["params"]["mounts"], "/");
    assert_eq!(run["alert"]["labels"]["instance"], "node-1");
    assert_eq!(run["alert"]["annotations"]["summary"], "disk almost full");

    // Alertmanager re-sends the firing alert every repeat_interval: the host dedups them.
    wait_until(
        "a re-send from Alertmanager",
        Duration::from_secs(15),
        || dispositions(&server).contains(&("DiskFull".into(), "deduplicated".into())),
    );
    assert!(
        dispositions(&server).contains(&("CpuHigh".into(), "unrouted".into())),
        "{:?}",
        dispositions(&server)
    );

    am.resolve(&labels, &starts_at);
    wait_until("the resolved delivery", Duration::from_secs(15), || {
        dispositions(&server).contains(&("DiskFull".into(), "resolved".into()))
    });
    let runs = server.get("/runs").json();
    assert_eq!(
        runs.as_array().unwrap().len(),
        1,
        "exactly one run for one alert: {runs:#}"
    );
}
