//! The container image from scripts/image.sh, run the way an operator runs it: read-only root,
//! no capabilities, a host.toml mounted, the port published. An Alertmanager alert sent to the
//! published port becomes a run stored on /data, read back through the API; the image's own
//! HEALTHCHECK (`host health`) turns the container healthy.
//!
//! The host under test is packed by scripts/test.sh (`scripts/image.sh`); this test packs it
//! again (`--no-build`, skipped when the image already holds this binary) and fails, never
//! skips, when it cannot.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use runbook_tests::docker::docker;
use runbook_tests::{Sandbox, host_bin};

const TAG: &str = "runbook-test/host:latest";
const ALERTMANAGER_TOKEN: &str = "am-image-test-token";
const API_TOKEN: &str = "api-image-test-token";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// target/ of the host under test: scripts/image.sh packs target/release/host.
fn target_dir() -> PathBuf {
    let bin = host_bin();
    bin.parent().and_then(Path::parent).unwrap().to_path_buf()
}

fn build_image() {
    let out = Command::new(repo().join("scripts/image.sh"))
        .args(["--no-build", TAG])
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("running scripts/image.sh");
    assert!(
        out.status.success(),
        "scripts/image.sh could not build {TAG}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Removes the container (and its /data volume) however the test ends.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-fv", &self.0]).output();
    }
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn image_serves_an_alert_into_a_stored_run() {
    build_image();

    let config = docker(&["image", "inspect", "-f", "{{json .Config}}", TAG]);
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["User"], "10001:10001", "{config}");
    assert!(config["ExposedPorts"]["9095/tcp"].is_object(), "{config}");
    assert_eq!(
        config["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "/usr/local/bin/host", "health", "--timeout", "4"])
    );
    let size: u64 = docker(&["image", "inspect", "-f", "{{.Size}}", TAG])
        .trim()
        .parse()
        .unwrap();
    eprintln!("{TAG}: {:.1} MiB", size as f64 / (1 << 20) as f64);

    let sandbox = Sandbox::new();
    let host_toml = sandbox.write(
        "host.toml",
        r#"[webhooks.alertmanager]
auth = { kind = "bearer", token = { env = "AM_TOKEN" } }
[webhooks.api]
auth = { kind = "bearer", token = { env = "API_TOKEN" } }
[[route]]
matchers = ['alertname="DiskFull"']
playbook = "disk-full"
params = { mounts = "{{ labels.mountpoint }}" }
dry-run = true
"#,
    );
    let name = format!("runbook-test-image-{}", std::process::id());
    let mount = format!("{}:/etc/runbook/host.toml:ro", host_toml.display());
    let am_token = format!("AM_TOKEN={ALERTMANAGER_TOKEN}");
    let api_token = format!("API_TOKEN={API_TOKEN}");
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "runbook-test=1",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "-p",
        "127.0.0.1::9095",
        "-v",
        &mount,
        "-e",
        "RUNBOOK_CONFIG=/etc/runbook/host.toml",
        "-e",
        &am_token,
        "-e",
        &api_token,
        // The image's HEALTHCHECK command, probed every second instead of every 30.
        "--health-interval",
        "1s",
        TAG,
    ]);
    let container = Container(name);
    let port = docker(&["port", &container.0, "9095/tcp"]);
    let base = format!("http://{}", port.lines().next().unwrap().trim());

    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    wait_for(
        "the container's /healthz answers",
        Duration::from_secs(30),
        || {
            agent
                .get(format!("{base}/healthz"))
                .call()
                .is_ok_and(|r| r.status() == 200)
        },
    );
    wait_for(
        "docker reports the container healthy (HEALTHCHECK via host health)",
        Duration::from_secs(30),
        || docker(&["inspect", "-f", "{{.State.Health.Status}}", &container.0]).trim() == "healthy",
    );

    let alert = r#"{"version":"4","status":"firing","receiver":"host","groupKey":"{}:{alertname=\"DiskFull\"}",
        "groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://alertmanager:9093","truncatedAlerts":0,
        "alerts":[{"status":"firing","labels":{"alertname":"DiskFull","mountpoint":"/"},"annotations":{},
        "startsAt":"2026-01-01T00:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"c0ffee0000000001"}]}"#;
    let mut reply = agent
        .post(format!("{base}/hooks/alertmanager"))
        .header("authorization", &format!("Bearer {ALERTMANAGER_TOKEN}"))
        .header("content-type", "application/json")
        .send(alert)
        .unwrap();
    let status = reply.status().as_u16();
    let body = reply.body_mut().read_to_string().unwrap();
    assert_eq!(status, 202, "{body}");
    let accepted: serde_json::Value = serde_json::from_str(&body).unwrap();
    let run_id = accepted["runs"][0].as_str().expect(&body).to_string();

    let mut run = serde_json::Value::Null;
    wait_for("the run ends", Duration::from_secs(60), || {
        let mut reply = agent
            .get(format!("{base}/runs/{run_id}"))
            .header("authorization", &format!("Bearer {API_TOKEN}"))
            .call()
            .unwrap();
        if reply.status() != 200 {
            return false;
        }
        run = serde_json::from_str(&reply.body_mut().read_to_string().unwrap()).unwrap();
        !matches!(run["status"].as_str(), Some("queued" | "running"))
    });
    assert_eq!(run["playbook"], "disk-full", "{run}");
    assert_eq!(run["trigger"], "alert", "{run}");
    assert_eq!(run["dry_run"], true, "{run}");
    assert_ne!(run["status"], "failed", "{run}");

    // The run is in the store on /data, as `host` in the same container sees it.
    let stored = docker(&["exec", &container.0, "host", "runs", "--json"]);
    assert!(stored.contains(&run_id), "{stored}");
    let check = docker(&["exec", &container.0, "host", "check", "--json"]);
    assert!(check.contains("/data/runs.sqlite3"), "{check}");

    // As PID 1, host still stops on docker's SIGTERM, cleanly and before the SIGKILL.
    let stopping = Instant::now();
    docker(&["stop", "-t", "20", &container.0]);
    assert!(
        stopping.elapsed() < Duration::from_secs(15),
        "{:?}",
        stopping.elapsed()
    );
    let exit = docker(&["inspect", "-f", "{{.State.ExitCode}}", &container.0]);
    assert_eq!(exit.trim(), "0", "exit code after SIGTERM");
}
