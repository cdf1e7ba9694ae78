//! A host that crashes, is killed or is stopped never loses a run or swallows an alert, and a
//! panic inside the host ends one run, not the host. Real `host serve` processes on one SQLite
//! store, killed with SIGKILL or stopped with SIGTERM, and the hostile playbook parked in a
//! WASI sleep (`sleep`) to be caught mid-run.
//!
//! What is exactly once here: the `lost` notice for a run is written to the outbox once per
//! run, whatever the number of restarts (the run is marked notified in the store).
//!
//! Leases are 2 s here: a run is lost once its process stopped renewing it for that long.

use std::time::{Duration, Instant};

use runbook_tests::server::Server;
use runbook_tests::{Sandbox, host_bin};
use serde_json::{Value, json};

const TOKEN: &str = "crash-recovery-t0ken";
const WAIT: Duration = Duration::from_secs(60);

/// The hostile playbook in a plugin dir, one run at a time, `ops` writing to a file, and an
/// Alertmanager route whose `case` label picks the hostile case.
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
auth = {{ kind = "bearer", token = {{ env = "CR_TOKEN" }} }}

[webhooks.alertmanager]
auth = {{ kind = "bearer", token = {{ env = "CR_TOKEN" }} }}

[notify.ops]
kind = "file"
path = "{ops}"

[[route]]
matchers = ['alertname="CrashRecovery"']
playbook = "hostile"
params = {{ case = "{{{{ labels.case }}}}" }}

[plugins.hostile]
max-concurrent = 1
deadline-secs = 300

[plugins.hostile.grants]
docker = [{{ containers = ["crash-recovery-nothing"], verbs = ["read"] }}]
"#,
            ops = ops_file(&sandbox).display(),
        ),
    );
    sandbox
}

fn ops_file(sandbox: &Sandbox) -> std::path::PathBuf {
    sandbox.path().join("ops.jsonl")
}

fn start(sandbox: &Sandbox) -> Server {
    Server::start(sandbox, &[("CR_TOKEN", TOKEN)])
}

fn submit(server: &Server, case: &str) -> String {
    let body = json!({ "case": case }).to_string();
    server.submit_run("/hooks/run/hostile", TOKEN, body.as_bytes())
}

/// One Alertmanager delivery of the same alert each time (same fingerprint and startsAt).
fn fire(server: &Server, case: &str) -> Value {
    let auth = format!("Bearer {TOKEN}");
    let body = json!({
        "version": "4", "status": "firing", "receiver": "host",
        "groupLabels": {}, "commonLabels": {},
        "alerts": [{
            "status": "firing",
            "labels": { "alertname": "CrashRecovery", "case": case },
            "annotations": {},
            "startsAt": "2026-11-25T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "cr0ss0ver"
        }]
    })
    .to_string();
    let reply = server.post(
        "/hooks/alertmanager",
        &[("Authorization", &auth)],
        body.as_bytes(),
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    reply.json()["alerts"][0].clone()
}

fn status(server: &Server, id: &str) -> Value {
    let run = server.get(&format!("/runs/{id}"));
    assert_eq!(run.status, 200, "{}", run.body);
    run.json()
}

/// The notices the `ops` file channel has received about `run_id`.
fn ops_notices(sandbox: &Sandbox, run_id: &str) -> Vec<Value> {
    std::fs::read_to_string(ops_file(sandbox))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|n| n["run_id"] == run_id)
        .collect()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `runbook_<name> <value>` from /metrics.
fn gauge(server: &Server, name: &str) -> i64 {
    let text = server.get("/metrics").body;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("runbook_{name} ")))
        .unwrap_or_else(|| panic!("no runbook_{name} in /metrics:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_run_cut_off_by_sigkill_is_lost_ops_are_told_once_and_the_alert_runs_again() {
    let sandbox = sandbox();
    let mut first = start(&sandbox);
    let fired = fire(&first, "sleep");
    assert_eq!(fired["disposition"], "started", "{fired:#}");
    let cut = fired["run_id"].as_str().unwrap().to_string();
    first.wait_for_status(&cut, "running", WAIT);
    first.stop("KILL");

    let mut second = start(&sandbox);
    wait_for("the cut run to be lost once its lease ran out", || {
        status(&second, &cut)["status"] == "lost"
    });
    let run = status(&second, &cut);
    assert!(
        run["reason"].as_str().unwrap().contains("not re-run"),
        "{run:#}"
    );
    wait_for("the lost notice on ops", || {
        !ops_notices(&sandbox, &cut).is_empty()
    });
    let notice = &ops_notices(&sandbox, &cut)[0];
    assert!(
        notice["title"].as_str().unwrap().contains("lost"),
        "{notice:#}"
    );

    // Alertmanager's next re-send of the same alert starts a new run: a lost run does not
    // count for dedup.
    let again = fire(&second, "sleep");
    assert_eq!(again["disposition"], "started", "{again:#}");
    let second_run = again["run_id"].as_str().unwrap().to_string();
    assert_ne!(second_run, cut);
    second.wait_for_status(&second_run, "running", WAIT);
    // Graceful: the run cut at the grace is interrupted, not lost.
    second.stop("TERM");

    let third = start(&sandbox);
    assert_eq!(status(&third, &cut)["status"], "lost");
    let interrupted = status(&third, &second_run);
    assert_eq!(interrupted["status"], "interrupted", "{interrupted:#}");
    // An interrupted run does not swallow the alert either.
    let third_fire = fire(&third, "quick");
    assert_eq!(third_fire["disposition"], "started", "{third_fire:#}");
    let done = third.wait_for_run(third_fire["run_id"].as_str().unwrap(), WAIT);
    assert_eq!(done["status"], "no-action", "{done:#}");
    // Two restarts later, ops were told about the lost run exactly once, and never about the
    // interrupted one.
    assert_eq!(ops_notices(&sandbox, &cut).len(), 1);
    assert!(ops_notices(&sandbox, &second_run).is_empty());
}

#[test]
fn runs_queued_at_sigkill_are_run_by_the_next_host() {
    let sandbox = sandbox();
    let mut first = start(&sandbox);
    let parked = submit(&first, "sleep");
    first.wait_for_status(&parked, "running", WAIT);
    // max-concurrent = 1: these wait behind the parked run.
    let queued = [submit(&first, "quick"), submit(&first, "quick")];
    for id in &queued {
        assert_eq!(status(&first, id)["status"], "queued");
    }
    first.stop("KILL");

    let second = start(&sandbox);
    for id in &queued {
        let run = second.wait_for_run(id, WAIT);
        assert_eq!(run["status"], "no-action", "{run:#}");
    }
    wait_for("the parked run to be lost", || {
        status(&second, &parked)["status"] == "lost"
    });
}

#[test]
fn sigterm_leaves_queued_runs_for_the_next_host() {
    let sandbox = sandbox();
    let mut first = start(&sandbox);
    let parked = submit(&first, "sleep");
    first.wait_for_status(&parked, "running", WAIT);
    let queued = [submit(&first, "quick"), submit(&first, "quick")];
    first.stop("TERM");

    for id in &queued {
        let shown = sandbox.host(&["runs", "show", id, "--json"]).json();
        assert_eq!(shown["status"], "queued", "{shown:#}");
    }
    let shown = sandbox.host(&["runs", "show", &parked, "--json"]).json();
    assert_eq!(shown["status"], "interrupted", "{shown:#}");

    let second = start(&sandbox);
    for id in &queued {
        let run = second.wait_for_run(id, WAIT);
        assert_eq!(run["status"], "no-action", "{run:#}");
    }
    assert_eq!(status(&second, &parked)["status"], "interrupted");
}

/// A `host run` killed when the test ends, however it ends.
struct Cli(std::process::Child);

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The one run in the sandbox's store once it is `running`.
fn running_run(sandbox: &Sandbox) -> String {
    let mut id = None;
    wait_for("the CLI's run to be running", || {
        let runs = sandbox.host(&["runs", "--json"]).json();
        id = runs[0]["id"].as_str().map(String::from);
        runs[0]["status"] == "running"
    });
    id.unwrap()
}

#[test]
fn a_live_host_run_keeps_its_run_when_a_server_starts_on_the_same_store() {
    let sandbox = sandbox();
    let mut cli = Cli(std::process::Command::new(host_bin())
        .args(["run", "hostile", "-p", "case=sleep"])
        .current_dir(sandbox.path())
        .env("RUNBOOK_CACHE_DIR", sandbox.cache_dir())
        .env("RUNBOOK_STORE", sandbox.store())
        .env_remove("RUNBOOK_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap());
    let id = running_run(&sandbox);

    let mut server = start(&sandbox);
    assert_eq!(status(&server, &id)["status"], "running");
    server.stop("TERM");
    assert!(ops_notices(&sandbox, &id).is_empty());

    // Once that process is gone, its run is lost like any other.
    cli.0.kill().unwrap();
    cli.0.wait().unwrap();
    let server = start(&sandbox);
    wait_for("the dead CLI's run to be lost", || {
        status(&server, &id)["status"] == "lost"
    });
    wait_for("ops to be told", || ops_notices(&sandbox, &id).len() == 1);
}

/// A panic inside the host during a capability call (a 1 MiB docker name glob once did it)
/// ends that run as failed; the gauges come back and the server serves on. Once the glob is
/// refused up front the call is `invalid` and the run fails the same way.
#[test]
fn a_panic_in_the_host_fails_the_run_and_the_server_lives() {
    let sandbox = sandbox();
    let server = start(&sandbox);
    let id = submit(&server, "huge-glob");
    let run = server.wait_for_run(&id, WAIT);
    assert_eq!(run["status"], "failed", "{run:#}");
    let reason = run["reason"].as_str().unwrap();
    assert!(
        reason.contains("host error") || reason.contains("invalid"),
        "{reason}"
    );
    wait_for("the gauges to come back to 0", || {
        gauge(&server, "running_runs") == 0 && gauge(&server, "queue_depth") == 0
    });
    assert_eq!(server.get("/healthz").status, 200);
    let after = submit(&server, "quick");
    assert_eq!(server.wait_for_run(&after, WAIT)["status"], "no-action");
}

#[test]
fn host_run_stores_a_panicking_run_as_failed_and_exits_1() {
    let sandbox = sandbox();
    let run = sandbox.host(&["run", "hostile", "-p", "case=huge-glob", "--json"]);
    assert_eq!(
        run.code, 1,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let listed = sandbox.host(&["runs", "--json"]).json();
    let stored = &listed[0];
    assert_eq!(stored["playbook"], "hostile");
    assert_eq!(stored["status"], "failed", "{listed:#}");
}
