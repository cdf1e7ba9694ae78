//! Cases for the schedule tests: `trigger` says which trigger kind the run was handed (a 0.2.0
//! component sees `schedule` for a scheduled run).

use runbook_sdk::prelude::*;

pub fn run(case: &str, incident: &Incident) -> Option<Result<Outcome, Error>> {
    match case {
        "trigger" => {
            let kind = match incident.trigger {
                TriggerKind::Cli => "cli",
                TriggerKind::Webhook => "webhook",
                TriggerKind::Alert => "alert",
                TriggerKind::Schedule => "schedule",
            };
            Some(Ok(Outcome::no_action(format!("trigger {kind}"))))
        }
        _ => None,
    }
}
