//! fs-read cases for tests/tests/fs_escapes.rs: reach for the host's own state, stall host
//! work, and walk trees built to hurt. A refused call is the run's error, so the run's reason
//! carries the host's own words.

use runbook_sdk::fs::{FindOptions, GrepOptions};
use runbook_sdk::prelude::*;

/// `None`: not an fs-escapes case.
pub fn run(case: &str, incident: &Incident) -> Option<Result<Outcome, Error>> {
    let target = incident.param("target").unwrap_or_default();
    let done = match case {
        // One line per call, `OP PATH`; each answer on a line of the summary, in order.
        "fs-probe" => Ok(target.lines().map(probe).collect::<Vec<_>>().join("\n")),
        "fs-tail" => fs::tail(target, 10).map(|l| format!("{} lines", l.len())),
        // `PATH|REGEX`
        "fs-grep" => {
            let (path, pattern) = target.split_once('|').unwrap_or((target, "x"));
            let options = GrepOptions {
                case_insensitive: false,
                max_matches: 1,
                last_lines: None,
            };
            fs::grep(path, pattern, options)
                .map(|g| format!("{} matches in {} lines", g.count, g.lines_scanned))
        }
        "fs-find" => {
            let options = FindOptions {
                name_glob: None,
                min_age_secs: None,
                max_depth: None,
                limit: Some(10_000),
                files_only: Some(false),
            };
            fs::find_entries(target, &options).map(|found| {
                let paths: Vec<String> = found.entries.into_iter().map(|e| e.path).collect();
                format!(
                    "truncated={} found={}\n{}",
                    found.truncated,
                    paths.len(),
                    paths.join("\n")
                )
            })
        }
        "fs-largest" => fs::largest(target, 1, 1000).map(|l| {
            let paths: Vec<&str> = l.entries.iter().map(|e| e.path.as_str()).collect();
            format!(
                "truncated={} scanned={}\n{}",
                l.truncated,
                l.entries_scanned,
                paths.join("\n")
            )
        }),
        _ => return None,
    };
    // The whole answer can be longer than a summary may be: it travels as an artifact, the
    // summary keeps its first line.
    Some(done.map(|text| {
        let _ = report::attach("answer.txt", "text/plain", text.as_bytes());
        Outcome::no_action(text.lines().next().unwrap_or_default())
    }))
}

/// `read|tail|grep|stat|list PATH` → `PATH ok` or `PATH <error kind>: <detail>`.
fn probe(line: &str) -> String {
    let (op, path) = line.split_once(' ').unwrap_or(("read", line));
    let answer = match op {
        "read" => fs::read(path, 0, 64).map(drop),
        "tail" => fs::tail(path, 1).map(drop),
        "grep" => fs::grep(
            path,
            "x",
            GrepOptions {
                case_insensitive: false,
                max_matches: 0,
                last_lines: None,
            },
        )
        .map(drop),
        "stat" => fs::stat(path).map(drop),
        "list" => fs::list_dir(path).map(drop),
        other => Err(Error::Invalid(format!("unknown probe op {other}"))),
    };
    match answer {
        Ok(()) => format!("{op} {path} ok"),
        Err(e) => format!("{op} {path} {}: {}", e.kind(), e.detail()),
    }
}
