//! The trivial playbook: no parameters, no capability calls, no-action at once. What a run of it
//! costs is the host's own overhead (store, instantiate, call, teardown); `crates/runbook-runtime/build.rs` builds
//! it for the benchmarks and the pool tests run it by the thousand.

use runbook_sdk::prelude::*;

fn describe() -> Description {
    Description::new("noop", "Does nothing (benchmarks)")
}

fn run(_incident: Incident) -> Result<Outcome, Error> {
    Ok(Outcome::no_action("nothing to do"))
}

runbook_sdk::export_playbook!(describe, run);
