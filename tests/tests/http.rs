//! The http capability through web-down against scripted peers: failure kinds, grants by
//! origin, and redirects re-checked at every hop.

use runbook_tests::docker::free_port;
use runbook_tests::http::Peer;
use runbook_tests::{Sandbox, calls};

fn web_down(sandbox: &Sandbox, url: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let url = format!("url={url}");
    let mut args = vec![
        "run",
        "web-down",
        "--json",
        "-p",
        &url,
        "-p",
        "timeout-ms=500",
    ];
    args.extend_from_slice(extra);
    let run = sandbox.host(&args);
    (run.code, run.json())
}

fn probe_detail(run: &serde_json::Value) -> String {
    calls(run, "http", "probe")[0]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_failed_probe_names_its_kind() {
    let sandbox = Sandbox::new();
    let closed = format!("http://127.0.0.1:{}/", free_port());
    let silent = Peer::silent();
    let failing = Peer::status(503);
    let healthy = Peer::status(200);

    let (code, run) = web_down(&sandbox, &closed, &[]);
    assert_eq!(
        (code, run["status"].as_str().unwrap()),
        (3, "escalated"),
        "{run:#}"
    );
    assert!(
        probe_detail(&run).starts_with("down: refused"),
        "{}",
        probe_detail(&run)
    );

    let (_, run) = web_down(&sandbox, &silent.url("/"), &[]);
    assert!(
        probe_detail(&run).starts_with("down: timeout"),
        "{}",
        probe_detail(&run)
    );

    let (_, run) = web_down(&sandbox, &failing.url("/"), &[]);
    assert!(
        probe_detail(&run).starts_with("down: http-status"),
        "{}",
        probe_detail(&run)
    );

    let (code, run) = web_down(&sandbox, &healthy.url("/"), &[]);
    assert_eq!(
        (code, run["status"].as_str().unwrap()),
        (0, "no-action"),
        "{run:#}"
    );
    assert!(probe_detail(&run).starts_with("healthy, HTTP 200"));
}

#[test]
fn ungranted_origins_and_redirects_off_the_grants_are_denied() {
    let sandbox = Sandbox::new();
    let target = Peer::status(200);
    let redirect = Peer::redirecting_to(&target.url("/"));
    sandbox.write(
        "host.toml",
        format!(
            "[plugins.web-down.grants]\nnotify = [\"ops\"]\nhttp = [\"{}\"]\n",
            redirect.url("").trim_end_matches('/')
        ),
    );

    let (code, run) = web_down(&sandbox, &target.url("/"), &[]);
    assert_eq!(code, 1, "{run:#}");
    let probe = &calls(&run, "http", "probe")[0];
    assert_eq!(probe["result"], "denied");
    assert!(
        probe["detail"].as_str().unwrap().contains("is not granted"),
        "{probe:#}"
    );

    let (code, run) = web_down(&sandbox, &redirect.url("/"), &[]);
    assert_eq!(code, 1, "{run:#}");
    let probe = &calls(&run, "http", "probe")[0];
    assert_eq!(probe["result"], "denied", "{probe:#}");
    assert!(
        probe["detail"]
            .as_str()
            .unwrap()
            .contains("leaves the granted origins"),
        "{probe:#}"
    );

    // Granting the target too lets the redirect through.
    sandbox.write(
        "host.toml",
        format!(
            "[plugins.web-down.grants]\nnotify = [\"ops\"]\nhttp = [\"http://127.0.0.1:{}\", \"http://127.0.0.1:{}\"]\n",
            redirect.port, target.port
        ),
    );
    let (code, run) = web_down(&sandbox, &redirect.url("/"), &[]);
    assert_eq!(
        (code, run["status"].as_str().unwrap()),
        (0, "no-action"),
        "{run:#}"
    );
}
