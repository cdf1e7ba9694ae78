//! describe() answers with an 8 MiB summary: the host must list it as broken, naming the limit,
//! instead of printing or storing it.

use runbook_sdk::prelude::*;

fn describe() -> Description {
    Description::new("describe-huge", "x".repeat(8 << 20))
}

fn run(_incident: Incident) -> Result<Outcome, Error> {
    Ok(Outcome::resolved("ESCAPED: ran with an 8 MiB description"))
}

runbook_sdk::export_playbook!(describe, run);
