//! `host run health-check` against real containers (running, unhealthy, stopped, filling
//! memory), real HTTP servers on 127.0.0.1 (fast, failing, slow) and a real mount.

use std::time::Duration;

use runbook_tests::docker::{TestContainer, docker};
use runbook_tests::http::Peer;
use runbook_tests::{Sandbox, calls};

fn run_json(sandbox: &Sandbox, args: &[String]) -> (i32, serde_json::Value) {
    let mut all: Vec<&str> = vec!["run", "health-check", "--json"];
    all.extend(args.iter().map(String::as_str));
    let run = sandbox.host(&all);
    (run.code, run.json())
}

fn params(pairs: &[(&str, String)]) -> Vec<String> {
    (pairs.iter())
        .flat_map(|(k, v)| ["-p".to_string(), format!("{k}={v}")])
        .collect()
}

fn report(run: &serde_json::Value) -> String {
    let artifacts = run["artifacts"].as_array().unwrap();
    let report = artifacts.iter().find(|a| a["name"] == "health-report.txt");
    let report = report.unwrap_or_else(|| panic!("no health-report.txt: {run:#}"));
    report["text"].as_str().unwrap().to_string()
}

/// The report line about `subject` (e.g. "container rbt-…:"), with its level word.
fn line<'a>(report: &'a str, subject: &str) -> &'a str {
    (report.lines())
        .find(|l| l.contains(subject))
        .unwrap_or_else(|| panic!("no line about {subject:?} in:\n{report}"))
}

fn notifications(run: &serde_json::Value) -> Vec<&serde_json::Value> {
    let timeline = run["timeline"].as_array().unwrap();
    timeline
        .iter()
        .filter(|e| e["event"] == "notification")
        .collect()
}

#[test]
fn all_green_is_one_info_summary_after_a_delivered_test_message() {
    let web = TestContainer::with_health_check(&[]);
    web.wait_for_health("healthy");
    let peer = Peer::status(200);
    let sandbox = Sandbox::new();
    let (code, run) = run_json(
        &sandbox,
        &params(&[
            ("containers", web.name.clone()),
            (
                "urls",
                format!("{},{}", peer.url("/health"), web.url("/health")),
            ),
            ("mounts", sandbox.path().display().to_string()),
            ("disk-warn-percent", "99.5".into()),
            ("disk-critical-percent", "100".into()),
            ("memory-mb", "256".into()),
        ]),
    );
    assert_eq!(
        (code, run["status"].as_str()),
        (0, Some("no-action")),
        "{run:#}"
    );
    assert_eq!(
        run["summary"], "Health check: all 6 checks green",
        "{run:#}"
    );
    let report = report(&run);
    for subject in [
        format!("container {}: running, healthy", web.name),
        format!("stats of {}: memory", web.name),
        format!("url {}: HTTP 200 in", peer.url("/health")),
        format!("url {}: HTTP 200 in", web.url("/health")),
        format!("disk {}:", sandbox.path().display()),
        "test message to ops: sent".into(),
    ] {
        assert!(line(&report, &subject).starts_with("ok "), "{report}");
    }
    assert_eq!(peer.hits(), 1);

    // The test message goes first, then one summary, info.
    let sent = notifications(&run);
    assert_eq!(sent.len(), 2, "{run:#}");
    assert_eq!(sent[0]["title"], "Health check: test message");
    assert_eq!(sent[1]["severity"], "info");
    assert!(sent.iter().all(|n| n["state"] == "delivered"), "{run:#}");
}

#[test]
fn every_failure_is_named_and_the_worst_decides_the_severity() {
    let label = format!("runbook-health-check={}", std::process::id());
    let healthy = TestContainer::with_health_check(&[&label]);
    let sick = TestContainer::with_health_check(&[&label]);
    std::fs::write(sick.control_file("unhealthy"), "").unwrap();
    let stopped = TestContainer::with_health_check(&[&label]);
    docker(&["stop", "-t", "5", &stopped.name]);
    // 24 MiB in a tmpfs, charged to the container: over a 16 MiB ceiling.
    let filler = TestContainer::memory_filler(1, 24, 0.0);
    wait_for_file(&filler.control_file("full"));
    healthy.wait_for_health("healthy");
    sick.wait_for_health("unhealthy");
    stopped.wait_for_state("exited");

    let failing = Peer::status(500);
    let slow = Peer::delayed(Duration::from_millis(700));
    let good = Peer::status(200);
    let ungranted = "http://10.255.255.1:9/health";
    let missing = format!("rbt-missing-{}", std::process::id());
    let sandbox = Sandbox::new();
    let (code, run) = run_json(
        &sandbox,
        &params(&[
            ("containers", format!("{missing},{}", filler.name)),
            ("label", label.clone()),
            (
                "urls",
                format!(
                    "{},{},{},{ungranted}",
                    failing.url("/"),
                    slow.url("/"),
                    good.url("/")
                ),
            ),
            ("latency-ms", "500".into()),
            ("mounts", sandbox.path().display().to_string()),
            ("disk-warn-percent", "0".into()),
            ("disk-critical-percent", "100".into()),
            ("memory-mb", "16".into()),
            ("test-channel", "pager".into()),
        ]),
    );
    assert_eq!(
        (code, run["status"].as_str()),
        (3, Some("escalated")),
        "{run:#}"
    );
    let report = report(&run);
    let expect = |level: &str, subject: &str, then: &str| {
        let found = line(&report, subject);
        assert!(
            found.starts_with(level),
            "{found:?} is not {level}:\n{report}"
        );
        assert!(found.contains(then), "{found:?} lacks {then:?}");
    };
    expect("CRITICAL", &format!("container {missing}:"), "not found");
    expect(
        "CRITICAL",
        &format!("container {}:", sick.name),
        "running but unhealthy",
    );
    expect(
        "CRITICAL",
        &format!("container {}:", stopped.name),
        "exited",
    );
    expect(
        "ok",
        &format!("container {}:", healthy.name),
        "running, healthy",
    );
    expect(
        "ok",
        &format!("container {}:", filler.name),
        "running (no health check)",
    );
    expect(
        "WARNING",
        &format!("stats of {}:", filler.name),
        "memory above 16 MiB",
    );
    expect("ok", &format!("stats of {}:", healthy.name), "memory");
    expect(
        "CRITICAL",
        &format!("url {}:", failing.url("/")),
        "HTTP 500",
    );
    expect(
        "WARNING",
        &format!("url {}:", slow.url("/")),
        "slower than 500 ms",
    );
    expect("ok", &format!("url {}:", good.url("/")), "HTTP 200");
    // The grant is checked before anything is sent: no connection to 10.255.255.1 is tried.
    expect(
        "CRITICAL",
        &format!("url {ungranted}:"),
        "not probed (denied",
    );
    expect(
        "WARNING",
        &format!("disk {}:", sandbox.path().display()),
        "used",
    );
    expect("CRITICAL", "test message to pager:", "failed (denied");
    // A stopped container has no stats to read.
    assert!(
        !report.contains(&format!("stats of {}", stopped.name)),
        "{report}"
    );

    let summary = run["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("Health check: 9 of 14 checks not green: "),
        "{summary}"
    );
    assert!(
        summary.contains(&missing) && summary.contains("HTTP 500"),
        "{summary}"
    );
    let sent = notifications(&run);
    assert_eq!(
        sent.len(),
        1,
        "the test message to pager is refused: {run:#}"
    );
    assert_eq!(sent[0]["severity"], "critical");
    let denied = calls(&run, "notify", "send");
    assert_eq!(denied[0]["result"], "denied", "{run:#}");
}

#[test]
fn dry_run_sends_nothing_and_bad_parameters_are_refused() {
    let peer = Peer::status(204);
    let sandbox = Sandbox::new();
    let (code, run) = run_json(
        &sandbox,
        &[
            vec!["--dry-run".to_string()],
            params(&[("urls", peer.url("/")), ("mounts", String::new())]),
        ]
        .concat(),
    );
    assert_eq!(
        (code, run["status"].as_str()),
        (0, Some("no-action")),
        "{run:#}"
    );
    let sends = calls(&run, "notify", "send");
    assert_eq!(sends.len(), 2);
    assert!(sends.iter().all(|s| s["result"] == "would"), "{run:#}");
    assert_eq!(run["actions"][0], "would send a test message to ops");
    assert_eq!(run["actions"][1], "would notify ops");
    assert!(
        notifications(&run)
            .iter()
            .all(|n| n["state"] != "delivered")
    );

    let (code, run) = run_json(&sandbox, &params(&[("mounts", String::new())]));
    assert_eq!(
        (code, run["status"].as_str()),
        (1, Some("failed")),
        "{run:#}"
    );
    assert!(
        run["reason"].as_str().unwrap().contains("nothing to check"),
        "{run:#}"
    );

    let (code, run) = run_json(
        &sandbox,
        &params(&[
            ("disk-warn-percent", "95".into()),
            ("disk-critical-percent", "90".into()),
        ]),
    );
    assert_eq!(code, 1, "{run:#}");
    assert!(
        run["reason"]
            .as_str()
            .unwrap()
            .contains("disk-warn-percent (95) is above"),
        "{run:#}"
    );
}

fn wait_for_file(path: &std::path::Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
