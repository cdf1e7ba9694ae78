//! describe() parks in a WASI sleep, out of the epoch deadline's reach: the host must give up
//! on it after describe()'s own deadline, list it as broken and keep serving everything else.

use runbook_sdk::prelude::*;

fn describe() -> Description {
    std::thread::sleep(std::time::Duration::from_secs(600));
    Description::new("describe-sleep", "Slept ten minutes in describe()")
}

fn run(_incident: Incident) -> Result<Outcome, Error> {
    Ok(Outcome::resolved(
        "ESCAPED: ran although describe() never answered",
    ))
}

runbook_sdk::export_playbook!(describe, run);
