//! The run store through the CLI: every `host run` is kept with its timeline and artifacts.

use runbook_tests::Sandbox;
use sha2::{Digest, Sha256};

#[test]
fn cli_runs_are_stored_with_their_timeline_and_artifacts() {
    let sandbox = Sandbox::new();
    let first = sandbox
        .host(&[
            "run",
            "disk-full",
            "--json",
            "-p",
            "paths=/var/log",
            "-p",
            "warn-percent=99",
            "-p",
            "critical-percent=100",
        ])
        .json();
    let second = sandbox
        .host(&[
            "run",
            "disk-full",
            "--json",
            "--dry-run",
            "-p",
            "paths=",
            "-p",
            "warn-percent=99",
            "-p",
            "critical-percent=100",
        ])
        .json();

    let list = sandbox.host(&["runs", "--json"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    let runs = list.json();
    let ids: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            second["run_id"].as_str().unwrap(),
            first["run_id"].as_str().unwrap()
        ],
        "newest first"
    );
    assert_eq!(runs[0]["dry_run"], true);
    assert_eq!(runs[1]["status"], "no-action");

    let shown = sandbox
        .host(&["runs", "show", first["run_id"].as_str().unwrap(), "--json"])
        .json();
    assert_eq!(shown["status"], first["status"]);
    assert_eq!(shown["params"]["paths"], "/var/log");
    // The same events, in the same order, as the run printed.
    assert_eq!(shown["timeline"], first["timeline"]);
    let artifact = &shown["artifacts"][0];
    assert_eq!(artifact["name"], "disk-report.txt");
    let digest = hex::encode(Sha256::digest(
        artifact["text"].as_str().unwrap().as_bytes(),
    ));
    assert_eq!(artifact["sha256"], digest.as_str());

    let text = sandbox.host(&["runs", "show", first["run_id"].as_str().unwrap()]);
    assert!(
        text.stdout.contains("call   fs-read.usage"),
        "{}",
        text.stdout
    );

    let missing = sandbox.host(&["runs", "show", "r-nope"]);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("no run \"r-nope\""),
        "{}",
        missing.stderr
    );
}
