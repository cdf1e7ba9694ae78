//! fs-read cases for tests/tests/fsperf.rs: grep as the security playbook calls it.

use runbook_sdk::fs::GrepOptions;
use runbook_sdk::prelude::*;

/// `None`: not an fsperf case.
pub fn run(case: &str, incident: &Incident) -> Option<Result<Outcome, Error>> {
    if case != "fsperf-grep" {
        return None;
    }
    // `PATH|REGEX`, case-insensitive like `grep -ciE`: answers `COUNT LINES FIRST-LINE-NUMBER`.
    let target = incident.param("target").unwrap_or_default();
    let (path, pattern) = target.split_once('|').unwrap_or((target, "x"));
    let options = GrepOptions {
        case_insensitive: true,
        max_matches: 1,
        last_lines: None,
    };
    Some(fs::grep(path, pattern, options).map(|g| {
        let first = g.matches.first().map_or(0, |m| m.line_number);
        Outcome::no_action(format!("{} {} {first}", g.count, g.lines_scanned))
    }))
}
