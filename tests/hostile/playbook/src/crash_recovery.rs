//! Cases for the crash-recovery tests: a host-side panic a playbook can reach, and a run that
//! ends at once (to show queued runs are started by the next host).

use runbook_sdk::docker::ListFilter;
use runbook_sdk::prelude::*;

pub fn run(case: &str, _incident: &Incident) -> Option<Result<Outcome, Error>> {
    match case {
        "huge-glob" => Some(huge_glob()),
        "quick" => Some(Ok(Outcome::no_action("quick case done"))),
        _ => None,
    }
}

/// A 1 MiB name glob: the host once panicked compiling it (regex size limit). Whether the host
/// refuses it (`invalid`) or fails the call, the run must end and the host must live on.
fn huge_glob() -> Result<Outcome, Error> {
    let filter = ListFilter {
        all: true,
        name: Some("*a".repeat(512 * 1024)),
        labels: Vec::new(),
    };
    let found = docker::list_containers(&filter)?;
    Ok(Outcome::no_action(format!(
        "listed {} containers with a 1 MiB glob",
        found.len()
    )))
}
