//! `host run disk-full` end to end on a directory tree with known sizes and ages.

use std::path::Path;
use std::time::{Duration, SystemTime};

use filetime::FileTime;
use runbook_tests::{Sandbox, calls};

const MIB: usize = 1 << 20;
const DAY: u64 = 86_400;

/// data/{big 5 MiB, medium/{a,b} 1 MiB each, small 100 KiB}; backups with known ages.
fn fixture(sandbox: &Sandbox) {
    sandbox.write("tree/data/big.bin", vec![1u8; 5 * MIB]);
    sandbox.write("tree/data/medium/a.bin", vec![2u8; MIB]);
    sandbox.write("tree/data/medium/b.bin", vec![3u8; MIB]);
    sandbox.write("tree/data/small.bin", vec![4u8; 100 << 10]);
    for (name, age_days) in [
        ("old-1.tar.gz", 10),
        ("nested/old-2.tar.gz", 30),
        ("fresh.tar.gz", 1),
        ("old-notes.txt", 40),
    ] {
        let path = sandbox.write(&format!("tree/backups/{name}"), vec![5u8; 64 << 10]);
        set_age(&path, age_days);
    }
}

fn set_age(path: &Path, days: u64) {
    let when = SystemTime::now() - Duration::from_secs(days * DAY);
    filetime::set_file_mtime(path, FileTime::from_system_time(when)).unwrap();
}

fn tree_args(sandbox: &Sandbox, extra: &[&str]) -> Vec<String> {
    let root = sandbox.path().join("tree");
    let mut args: Vec<String> = vec!["run".into(), "disk-full".into(), "--json".into()];
    // Defaults pointing at the fixture, unless the test gives its own.
    for (key, value) in [
        ("paths", root.join("data")),
        ("backups", root.join("backups")),
    ] {
        if !extra.iter().any(|a| a.starts_with(&format!("{key}="))) {
            args.extend(["-p".to_string(), format!("{key}={}", value.display())]);
        }
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn run_json(sandbox: &Sandbox, extra: &[&str]) -> (i32, serde_json::Value) {
    let args = tree_args(sandbox, extra);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = sandbox.host(&refs);
    (run.code, run.json())
}

fn report_text(run: &serde_json::Value) -> String {
    run["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "disk-report.txt")
        .expect("disk-report.txt artifact")["text"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn largest_entries_and_old_backups_match_the_tree() {
    let sandbox = Sandbox::new();
    fixture(&sandbox);
    let (code, run) = run_json(
        &sandbox,
        &["-p", "warn-percent=99", "-p", "critical-percent=100"],
    );
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(run["status"], "no-action");

    let report = report_text(&run);
    let data = sandbox.path().join("tree/data").canonicalize().unwrap();
    let listed: Vec<(String, String)> = report
        .lines()
        .skip_while(|l| {
            !l.starts_with(&format!(
                "Largest under {}",
                sandbox.path().join("tree/data").display()
            ))
        })
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| {
            let (size, path) = l.trim().split_once("  ").unwrap();
            (size.trim().to_string(), path.trim().to_string())
        })
        .collect();
    let expected = [
        ("5.0 MiB", data.join("big.bin")),
        ("2.0 MiB", data.join("medium")),
        ("100.0 KiB", data.join("small.bin")),
    ];
    assert_eq!(listed.len(), 3, "report:\n{report}");
    for ((size, path), (want_size, want_path)) in listed.iter().zip(expected.iter()) {
        assert_eq!(path, &want_path.display().to_string(), "report:\n{report}");
        assert_eq!(size, want_size, "report:\n{report}");
    }

    let backups = sandbox.path().join("tree/backups").canonicalize().unwrap();
    let candidates: Vec<&str> = report.lines().filter(|l| l.contains("days old")).collect();
    assert_eq!(candidates.len(), 2, "report:\n{report}");
    assert!(candidates[0].contains(&backups.join("nested/old-2.tar.gz").display().to_string()));
    assert!(candidates[0].contains("(30 days old)"));
    assert!(candidates[1].contains(&backups.join("old-1.tar.gz").display().to_string()));
    assert!(!report.contains("fresh.tar.gz") && !report.contains("old-notes.txt"));
    assert!(report.contains("Docker disk usage:"), "report:\n{report}");
}

/// Without a Docker engine the report says so in one line and the rest still works.
#[test]
fn no_docker_engine_is_one_clear_line_not_a_failure() {
    let sandbox = Sandbox::new();
    fixture(&sandbox);
    let dead = format!("unix://{}/dead.sock", sandbox.path().display());
    let args = tree_args(
        &sandbox,
        &["-p", "warn-percent=99", "-p", "critical-percent=100"],
    );
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = sandbox.host_env(&refs, &[("DOCKER_HOST", &dead)]);
    let run = out.json();
    assert_eq!(
        (out.code, run["status"].as_str().unwrap()),
        (0, "no-action"),
        "{run:#}"
    );
    let report = report_text(&run);
    let line = report
        .lines()
        .find(|l| l.starts_with("docker: unavailable"))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(line.contains("dead.sock"), "{line}");
}

/// The figure disk-full reports for `/` is the one statvfs gives (df's Use%), within a point.
#[test]
fn root_usage_matches_statvfs() {
    let sandbox = Sandbox::new();
    fixture(&sandbox);
    let (_, run) = run_json(&sandbox, &[]);
    let summary = run["summary"].as_str().unwrap();
    let reported: f64 = summary
        .split(" at ")
        .nth(1)
        .and_then(|s| s.split('%').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no percentage in {summary:?}"));

    let stats = rustix::fs::statvfs("/").unwrap();
    let used = (stats.f_blocks - stats.f_bfree) as f64;
    let expected = used * 100.0 / (used + stats.f_bavail as f64);
    assert!(
        (reported - expected).abs() <= 1.0,
        "reported {reported}%, statvfs says {expected:.1}%"
    );
}

#[test]
fn thresholds_decide_the_outcome_and_exit_code() {
    let sandbox = Sandbox::new();
    fixture(&sandbox);
    // Any real root filesystem is above 0.01% used.
    let (code, run) = run_json(
        &sandbox,
        &["-p", "warn-percent=0.001", "-p", "critical-percent=0.01"],
    );
    assert_eq!(run["status"], "escalated", "{run:#}");
    assert_eq!(code, 3);
    assert!(
        run["summary"]
            .as_str()
            .unwrap()
            .starts_with("Disk almost full")
    );
    let note = &run["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "notification")
        .unwrap();
    assert_eq!(note["severity"], "critical");

    let (code, run) = run_json(
        &sandbox,
        &["-p", "warn-percent=90", "-p", "critical-percent=80"],
    );
    assert_eq!(code, 1, "{run:#}");
    assert_eq!(run["status"], "failed");
    assert!(
        run["reason"]
            .as_str()
            .unwrap()
            .contains("warn-percent (90) is above critical-percent (80)")
    );
}

#[test]
fn dry_run_sends_nothing_and_touches_nothing() {
    let sandbox = Sandbox::new();
    fixture(&sandbox);
    let backups = sandbox.path().join("tree/backups");
    let before = std::fs::metadata(backups.join("old-1.tar.gz"))
        .unwrap()
        .modified()
        .unwrap();

    let args = tree_args(&sandbox, &["--dry-run"]);
    let live: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--json")
        .collect();
    let run = sandbox.host(&live);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        !run.stdout.contains("── notify ops") && !run.stderr.contains("── notify ops"),
        "dry run printed a notification:\n{}{}",
        run.stdout,
        run.stderr
    );
    assert!(run.stdout.contains("would-send"), "{}", run.stdout);

    let (_, json) = run_json(&sandbox, &["--dry-run"]);
    assert_eq!(json["dry_run"], true);
    let sends = calls(&json, "notify", "send");
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0]["result"], "would");
    assert_eq!(json["actions"][0], "would notify ops");

    // And without --dry-run the same run does deliver.
    let live: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--json" && *a != "--dry-run")
        .collect();
    let run = sandbox.host(&live);
    // The default ops channel prints on stderr: stdout is the run's own output.
    assert!(
        run.stderr.contains("── notify ops [P3 info]"),
        "{}",
        run.stderr
    );

    assert!(backups.join("old-1.tar.gz").exists() && backups.join("nested/old-2.tar.gz").exists());
    let after = std::fs::metadata(backups.join("old-1.tar.gz"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
}

#[test]
fn second_run_loads_from_the_compile_cache() {
    let sandbox = Sandbox::new();
    fixture(&sandbox);
    let (_, first) = run_json(&sandbox, &[]);
    assert_eq!(
        first["timings"]["load"]["cache"], "miss",
        "{:#}",
        first["timings"]
    );
    assert!(first["timings"]["load"]["compile_ms"].as_f64().unwrap() > 0.0);
    let file = first["timings"]["load"]["cache_file"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(Path::new(&file).is_file());

    let (_, second) = run_json(&sandbox, &[]);
    assert_eq!(
        second["timings"]["load"]["cache"], "hit",
        "{:#}",
        second["timings"]
    );
    assert_eq!(second["timings"]["load"]["compile_ms"], 0.0);
    assert_eq!(second["timings"]["load"]["cache_file"], file.as_str());

    // A corrupt cache entry is recompiled, not trusted.
    std::fs::write(&file, b"garbage").unwrap();
    let (code, third) = run_json(&sandbox, &[]);
    assert_eq!(third["timings"]["load"]["cache"], "miss");
    assert_eq!(code, 0, "{third:#}");
}

/// Grants narrowed in host.toml: paths outside them are `denied`, recorded, and the run goes on.
#[test]
fn paths_outside_the_grants_are_denied_and_recorded() {
    let sandbox = Sandbox::new();
    fixture(&sandbox);
    let tree = sandbox.path().join("tree");
    std::os::unix::fs::symlink("/etc", tree.join("data/etc-link")).unwrap();
    sandbox.write(
        "host.toml",
        format!(
            "[plugins.disk-full.grants]\nfs-read = [{:?}]\nnotify = [\"ops\"]\n",
            tree.display().to_string()
        ),
    );
    let data = tree.join("data");
    let (code, run) = run_json(
        &sandbox,
        &[
            "-p",
            &format!("mounts={}", data.display()),
            "-p",
            &format!(
                "paths={},/etc,{}/../../etc,{}",
                data.display(),
                data.display(),
                data.join("etc-link").display()
            ),
        ],
    );
    assert_eq!(code, 0, "{run:#}");
    // One call walks every path; each is checked on its own and the refused ones are named.
    let many = calls(&run, "fs-read", "largest-many");
    assert_eq!(many.len(), 1, "{run:#}");
    assert_eq!(many[0]["result"], "ok");
    assert_eq!(many[0]["args"]["paths"][1], "/etc");
    let detail = many[0]["detail"].as_str().unwrap();
    assert!(detail.starts_with("1 of 4 paths"), "{detail}");
    assert!(
        detail.contains("path 2: denied (/etc is outside the granted fs-read roots"),
        "{detail}"
    );
    assert!(detail.contains("path 3: denied"), "`..` escape: {detail}");
    assert!(
        detail.contains("path 4: denied"),
        "symlink escape: {detail}"
    );
    let report = report_text(&run);
    assert!(
        report.contains("Largest under /etc: denied: /etc is outside the granted fs-read roots"),
        "{report}"
    );

    // Nothing readable at all: the run fails and says why.
    let (code, run) = run_json(&sandbox, &["-p", "mounts=/"]);
    assert_eq!(code, 1);
    assert_eq!(run["status"], "failed");
    let reason = run["reason"].as_str().unwrap();
    assert!(
        reason.contains("denied") && reason.contains("outside the granted fs-read roots"),
        "{reason}"
    );
}

#[test]
fn an_ungranted_channel_is_denied_and_the_run_says_so() {
    let sandbox = Sandbox::new();
    fixture(&sandbox);
    sandbox.write(
        "host.toml",
        "[plugins.disk-full.grants]\nfs-read = [\"/\"]\nnotify = []\n",
    );
    let (code, run) = run_json(
        &sandbox,
        &["-p", "warn-percent=99", "-p", "critical-percent=100"],
    );
    assert_eq!(code, 0);
    let sends = calls(&run, "notify", "send");
    assert_eq!(sends[0]["result"], "denied");
    assert!(
        run["actions"][0]
            .as_str()
            .unwrap()
            .starts_with("notification to ops failed (denied")
    );
}
