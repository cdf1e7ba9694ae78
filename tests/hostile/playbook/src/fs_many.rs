//! fs-read `largest-many` cases for tests/tests/fs_many.rs: several paths in one call, each
//! checked on its own; the raw WIT call (not the SDK's chunking helper), so the host's own
//! limits are what is tested.

use runbook_sdk::prelude::*;

/// `None`: not an fs-many case.
pub fn run(case: &str, incident: &Incident) -> Option<Result<Outcome, Error>> {
    let target = incident.param("target").unwrap_or_default();
    let paths: Vec<String> = match case {
        // Newline-separated paths.
        "fs-many" => target.lines().map(str::to_string).collect(),
        // `COUNT|PATH`: the same path COUNT times.
        "fs-many-repeat" => {
            let (count, path) = target.split_once('|').unwrap_or(("0", target));
            vec![path.to_string(); count.parse().unwrap_or(0)]
        }
        _ => return None,
    };
    // One line per path, in order: `ok TOTAL-BYTES SCANNED truncated=B ENTRY...` or
    // `KIND: DETAIL`. A refused call is the run's error.
    Some(fs::largest_many(&paths, 1, 100).map(|results| {
        let text = results
            .iter()
            .map(|result| match result {
                Ok(l) => {
                    let entries: Vec<&str> = l.entries.iter().map(|e| e.path.as_str()).collect();
                    format!(
                        "ok {} {} truncated={} {}",
                        l.total_bytes,
                        l.entries_scanned,
                        l.truncated,
                        entries.join(" ")
                    )
                }
                Err(e) => format!("{}: {}", e.kind(), e.detail()),
            })
            .collect::<Vec<_>>()
            .join("\n");
        let _ = report::attach("answer.txt", "text/plain", text.as_bytes());
        Outcome::no_action(format!("{} results", results.len()))
    }))
}
