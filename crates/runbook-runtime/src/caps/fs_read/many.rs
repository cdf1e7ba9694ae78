//! `largest-many`: `largest` over several paths in one call, so a playbook's independent walks
//! overlap instead of queueing. Each path is resolved, grant-checked and walked exactly as
//! `largest` does it; the walks run at once on rayon's pool and count against the budgets of one
//! `largest` call (entries visited, directories held open).
//! The call never fails as a whole for one bad path: each path gets its own result.

use rayon::prelude::*;

use super::ops::{self, Cx, WalkNote};
use super::walk::Shared;
use super::work::Stop;
use crate::bindings::CapError;
use crate::bindings::runbook::host::fs_read::LargestResult;
use crate::text::echo;

/// Most paths one `largest-many` call takes.
pub const MAX_LARGEST_PATHS: usize = 32;

/// Each path's result, in order, and what the walks scanned and skipped over all of them.
pub type ManyResults = (Vec<Result<LargestResult, CapError>>, WalkNote);

pub fn largest_many(
    cx: &Cx,
    paths: &[String],
    depth: u32,
    limit: u32,
) -> Result<ManyResults, CapError> {
    if paths.len() > MAX_LARGEST_PATHS {
        return Err(CapError::Invalid(format!(
            "{} paths: at most {MAX_LARGEST_PATHS} per largest-many call",
            paths.len()
        )));
    }
    // One entry budget and one bound on directories held open, whatever the number of paths.
    let shared = Shared::default();
    let walked: Vec<_> = paths
        .par_iter()
        .map(|path| ops::largest_counted(cx, path, depth, limit, shared.clone()))
        .collect();
    // Nobody waits any more (the run's deadline): no partial answer.
    if cx.budget.check() == Err(Stop::Cancelled) {
        return Err(Stop::Cancelled.error("largest-many"));
    }
    let mut note = WalkNote {
        scanned: 0,
        truncated: None,
    };
    let mut cut = Vec::new();
    let results = walked
        .into_iter()
        .zip(paths)
        .map(|(walked, path)| {
            walked.map(|(largest, walk)| {
                note.scanned += walk.scanned;
                if let Some(why) = walk.truncated {
                    cut.push(format!("{}: {why}", echo(path)));
                }
                largest
            })
        })
        .collect();
    note.truncated = (!cut.is_empty()).then(|| cut.join("; "));
    Ok((results, note))
}

/// The timeline's line for the call: how many paths answered and, numbered from 1 in the order
/// given, why the others did not.
pub fn summary((results, note): &ManyResults) -> String {
    let answered = results.iter().filter(|r| r.is_ok()).count();
    let mut line = format!(
        "{answered} of {} paths, {} entries scanned",
        results.len(),
        note.scanned
    );
    for (n, result) in results.iter().enumerate() {
        if let Err(e) = result {
            line.push_str(&format!("; path {}: {} ({})", n + 1, e.kind(), e.detail()));
        }
    }
    if let Some(why) = &note.truncated {
        line.push_str(&format!("; truncated ({why})"));
    }
    line
}
