//! Does nothing and returns at once: the benchmarks of intake and memory use it so that what
//! they measure is the host's own cost per run, not a playbook's work.

use runbook_sdk::prelude::*;

fn describe() -> Description {
    Description::new("noop", "Does nothing (benchmarks)")
}

fn run(_incident: Incident) -> Result<Outcome, Error> {
    Ok(Outcome::no_action("nothing to do"))
}

runbook_sdk::export_playbook!(describe, run);
