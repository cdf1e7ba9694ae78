//! {{name}}: how full is the filesystem holding a path? Tells ops when it is over a threshold.
//! Build: cargo build --release --target wasm32-wasip2

use runbook_sdk::prelude::*;
use runbook_sdk::report::StepStatus;

fn describe() -> Description {
    Description::new("{{name}}", "Checks how full the filesystem holding a path is")
        .param("path", "A path on the filesystem to check", Some("/tmp"))
        .param("warn-percent", "Notify ops above this use", Some("90"))
        .wants(Capability::FsRead)
        .wants(Capability::Notify)
}

fn run(incident: Incident) -> Result<Outcome, Error> {
    let path = incident.param("path").unwrap_or("/tmp");
    let warn: f64 = incident.param_as("warn-percent")?.unwrap_or(90.0);
    report::step("usage", StepStatus::Started, path);
    let usage = match fs::usage(path) {
        Ok(usage) => usage,
        // Branch on the error kind: a missing grant is the operator's call, not a failure.
        Err(Error::Denied(why)) => {
            report::step("usage", StepStatus::Skipped, &why);
            return Ok(Outcome::no_action(format!(
                "fs-read of {path} is not granted; grant it in host.toml"
            )));
        }
        Err(e) => return Err(e),
    };
    let used = usage.used_percent;
    report::step("usage", StepStatus::Ok, &format!("{used:.0}% used"));
    if used < warn {
        return Ok(Outcome::no_action(format!("{path} is {used:.0}% full")));
    }
    let message = Message::new(format!("{path} is {used:.0}% full"))
        .severity(Severity::Warning)
        .field("run", &incident.run_id);
    notify::send("ops", &message)?;
    Ok(Outcome::escalated(format!("{path} is {used:.0}% full (over {warn}%)")).action("notified ops"))
}

runbook_sdk::export_playbook!(describe, run);
