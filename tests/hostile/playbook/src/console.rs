//! Cases for the console tests: a run whose steps come one by one (to watch them appear live),
//! with an artifact and a notification to `ops`.

use runbook_sdk::prelude::*;
use runbook_sdk::report::{self, StepStatus};

pub fn run(case: &str, incident: &Incident) -> Option<Result<Outcome, Error>> {
    match case {
        "console-steps" => Some(steps(incident)),
        _ => None,
    }
}

/// Three steps `target` milliseconds apart (default 1500), an artifact, a message to `ops`,
/// then resolved.
fn steps(incident: &Incident) -> Result<Outcome, Error> {
    let ms: u64 = incident
        .param("target")
        .unwrap_or("1500")
        .parse()
        .map_err(|_| Error::Invalid("console-steps: target is milliseconds".into()))?;
    for name in ["look", "act", "verify"] {
        report::step(name, StepStatus::Started, "");
        std::thread::sleep(std::time::Duration::from_millis(ms));
        report::step(name, StepStatus::Ok, &format!("{name} done"));
    }
    report::attach("evidence.txt", "text/plain", b"<b>not bold</b>\nall good\n")?;
    notify::send("ops", &Message::new("console steps done"))?;
    Ok(Outcome::resolved("three steps done").action("looked, acted, verified"))
}
