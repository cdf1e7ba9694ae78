//! `host run high-memory` against real containers whose memory a tmpfs fills: a steady climb
//! reads as a likely leak; a container over the critical threshold is restarted only with
//! `restart=true` and the `restart` grant, and its memory is verified after.

use std::time::{Duration, Instant};

use runbook_tests::docker::{TestContainer, docker};
use runbook_tests::{Sandbox, calls};

const MIB: u64 = 1 << 20;

fn run_json(sandbox: &Sandbox, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["run", "high-memory", "--json"];
    all.extend_from_slice(args);
    let run = sandbox.host(&all);
    (run.code, run.json())
}

/// The memory samples the run attached: (container, seconds, bytes) per row.
fn samples(run: &serde_json::Value) -> Vec<(String, String, u64)> {
    let artifacts = run["artifacts"].as_array().unwrap();
    let csv = artifacts.iter().find(|a| a["name"] == "memory-samples.csv");
    let csv = csv.unwrap_or_else(|| panic!("no memory-samples.csv: {run:#}"));
    let text = csv["text"].as_str().unwrap();
    assert!(text.starts_with("container,seconds,memory_bytes,limit_bytes,cpu_percent\n"));
    (text.lines().skip(1))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[1].to_string(), f[2].parse().unwrap())
        })
        .collect()
}

fn notification(run: &serde_json::Value) -> &serde_json::Value {
    let timeline = run["timeline"].as_array().unwrap();
    let note = timeline.iter().find(|e| e["event"] == "notification");
    note.unwrap_or_else(|| panic!("no notification: {run:#}"))
}

fn wait_for_file(path: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_steady_climb_is_reported_as_a_likely_leak_and_nothing_is_restarted() {
    // 2 MiB every 0.25 s for 20 s: a leak the whole window long.
    let leaky = TestContainer::memory_filler(80, 2, 0.25);
    let sandbox = Sandbox::new();
    let (code, run) = run_json(
        &sandbox,
        &[
            "-p",
            &format!("containers={}", leaky.name),
            "-p",
            "samples=3",
            "-p",
            "window-secs=4",
            "-p",
            "warn-mb=2000",
            "-p",
            "critical-mb=4000",
            "-p",
            "restart=true",
        ],
    );
    assert_eq!(
        (code, run["status"].as_str()),
        (3, Some("escalated")),
        "{run:#}"
    );
    let summary = run["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("Memory growing (likely leak):"),
        "{summary}"
    );
    assert!(summary.contains("growing (likely leak)"), "{summary}");

    let rows = samples(&run);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|(name, _, _)| *name == leaky.name));
    let bytes: Vec<u64> = rows.iter().map(|r| r.2).collect();
    assert!(
        bytes.windows(2).all(|w| w[1] > w[0]),
        "not rising: {bytes:?}"
    );
    // At 8 MiB/s, 4 s apart at least: well past one step.
    assert!(bytes[2] - bytes[0] >= 8 * MIB, "{bytes:?}");
    assert_eq!(notification(&run)["severity"], "warning");
    // Under the critical threshold a leak is reported, not restarted, even with restart=true.
    assert!(calls(&run, "docker", "restart").is_empty(), "{run:#}");
    assert_eq!(calls(&run, "docker", "stats").len(), 3);
}

#[test]
fn over_critical_a_restart_needs_both_restart_true_and_the_grant() {
    // 40 MiB at once, then steady: over a 30 MiB critical threshold, and not growing.
    let fat = TestContainer::memory_filler(1, 40, 0.0);
    wait_for_file(&fat.control_file("full"));
    let started = fat.started_at();
    let sandbox = Sandbox::new();
    let common = [
        "-p",
        "samples=2",
        "-p",
        "window-secs=1",
        "-p",
        "warn-mb=20",
        "-p",
        "critical-mb=30",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = common.iter().map(|s| s.to_string()).collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run_json(&sandbox, &refs)
    };

    // 1. From an alert (cAdvisor's `name` label), without restart=true: escalated, critical.
    let alert = sandbox.write(
        "alert.json",
        format!(
            r#"{{"status":"firing","alerts":[{{"status":"firing","labels":{{"alertname":"ContainerMemoryHigh","name":"{}"}},
               "annotations":{{}},"startsAt":"2026-11-26T03:00:00Z","fingerprint":"f1"}}]}}"#,
            fat.name
        ),
    );
    let (code, json) = run(with(&["--alert-file", alert.to_str().unwrap()]));
    assert_eq!(
        (code, json["status"].as_str()),
        (3, Some("escalated")),
        "{json:#}"
    );
    assert_eq!(json["trigger"], "alert");
    let summary = json["summary"].as_str().unwrap();
    assert!(
        summary.starts_with(&format!("Memory critical: {}: ", fat.name)),
        "{summary}"
    );
    assert!(
        !summary.contains(&format!("{0}: {0}:", fat.name)),
        "the container is named once: {summary}"
    );
    assert!(
        summary.contains("stable") && summary.contains("(restart=true would restart it)"),
        "{summary}"
    );
    assert!(
        samples(&json).iter().all(|r| r.2 >= 40 * MIB),
        "{:?}",
        samples(&json)
    );
    assert_eq!(notification(&json)["severity"], "critical");
    assert!(calls(&json, "docker", "restart").is_empty());

    // 2. restart=true with the built-in grants (read only): refused, said so, not restarted.
    let name = format!("containers={}", fat.name);
    let (code, json) = run(with(&["-p", &name, "-p", "restart=true"]));
    assert_eq!(code, 3, "{json:#}");
    let restarts = calls(&json, "docker", "restart");
    assert_eq!(restarts.len(), 1);
    assert_eq!(restarts[0]["result"], "denied", "{json:#}");
    let not_granted = format!(
        "restart of {} not granted (grant docker verb `restart` for it)",
        fat.name
    );
    assert_eq!(json["actions"][0], not_granted.as_str(), "{json:#}");
    assert_eq!(fat.started_at(), started);

    // 3. Granted, but a dry run: would restart, does not.
    sandbox.write(
        "host.toml",
        format!(
            "[plugins.high-memory.grants]\nnotify = [\"ops\"]\n\
             docker = [{{ containers = [{:?}], verbs = [\"read\", \"restart\"] }}]\n",
            fat.name
        ),
    );
    let (code, json) = run(with(&["-p", &name, "-p", "restart=true", "--dry-run"]));
    assert_eq!(code, 3, "{json:#}");
    assert_eq!(
        json["actions"][0],
        format!("would restart {}", fat.name).as_str(),
        "{json:#}"
    );
    assert_eq!(fat.started_at(), started);

    // 4. Granted and asked: restarted, memory verified back under the threshold.
    let (code, json) = run(with(&["-p", &name, "-p", "restart=true"]));
    assert_eq!(
        (code, json["status"].as_str()),
        (0, Some("mitigated")),
        "{json:#}"
    );
    assert_eq!(
        json["actions"][0],
        format!("restarted {}", fat.name).as_str()
    );
    assert_ne!(fat.started_at(), started, "not restarted");
    let rows = samples(&json);
    let after = rows
        .iter()
        .find(|r| r.1 == "after-restart")
        .expect("after-restart row");
    assert!(after.2 < 30 * MIB, "memory after the restart: {}", after.2);
    let summary = json["summary"].as_str().unwrap();
    assert!(summary.contains("; after restart "), "{summary}");
    // The engine agrees: the tmpfs (the "leak") went with the restart.
    let left = docker(&["exec", &fat.name, "sh", "-c", "ls /fill | wc -l"]);
    assert_eq!(left, "0");
}

#[test]
fn no_match_no_selector_and_no_stats_grant_are_clear() {
    let sandbox = Sandbox::new();
    let nobody = format!("containers=rbt-nobody-{}", std::process::id());
    let (code, run) = run_json(&sandbox, &["-p", &nobody]);
    assert_eq!(
        (code, run["status"].as_str()),
        (3, Some("escalated")),
        "{run:#}"
    );
    assert!(
        run["summary"]
            .as_str()
            .unwrap()
            .starts_with("High memory: no running container matches rbt-nobody-"),
        "{run:#}"
    );

    let (code, run) = run_json(&sandbox, &[]);
    assert_eq!(code, 1, "{run:#}");
    assert!(
        run["reason"]
            .as_str()
            .unwrap()
            .contains("neither containers nor label is given")
    );

    let (code, run) = run_json(&sandbox, &["-p", &nobody, "-p", "samples=1"]);
    assert_eq!(code, 1, "{run:#}");
    assert!(
        run["reason"]
            .as_str()
            .unwrap()
            .contains("samples must be 2-30")
    );

    // No docker grant: the listing is refused, and the run says so rather than guess.
    sandbox.write(
        "host.toml",
        "[plugins.high-memory.grants]\nnotify = [\"ops\"]\n",
    );
    let (code, run) = run_json(&sandbox, &["-p", &nobody]);
    assert_eq!(
        (code, run["status"].as_str()),
        (1, Some("failed")),
        "{run:#}"
    );
    assert!(
        run["reason"].as_str().unwrap().contains("denied"),
        "{run:#}"
    );
}
