//! Cases for the fleet tests: a run that takes a while and says so in its timeline (to be
//! caught mid-run on a node, or to outlive a server restart).

use runbook_sdk::prelude::*;

pub fn run(case: &str, incident: &Incident) -> Option<Result<Outcome, Error>> {
    match case {
        "nap" => Some(nap(incident)),
        _ => None,
    }
}

/// Logs, sleeps `target` milliseconds (in WASI, like `sleep`), logs again, and ends.
fn nap(incident: &Incident) -> Result<Outcome, Error> {
    let ms: u64 = incident
        .param("target")
        .unwrap_or("1000")
        .parse()
        .map_err(|_| Error::Invalid("nap: target is milliseconds".into()))?;
    info!("napping {ms} ms");
    std::thread::sleep(std::time::Duration::from_millis(ms));
    info!("awake");
    Ok(Outcome::no_action(format!("napped {ms} ms")))
}
