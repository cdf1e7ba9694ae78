//! A playbook built against `runbook:host@0.2.0` (the WIT kept in `wit/0.2.0/`), as components
//! built before 0.3.0 are: it must keep loading, calling capabilities and running. It says
//! which trigger it was handed (0.2.0 has no `approval`) and calls `report` under its 0.2.0 name.

wit_bindgen::generate!({
    path: "../../../wit/0.2.0",
    world: "playbook",
    generate_all,
});

use runbook::host::report::{self, StepStatus};
use runbook::host::types::{ParamSpec, Status, TriggerKind};

struct V02;

impl Guest for V02 {
    fn describe() -> Description {
        Description {
            name: "contract-v0-2".into(),
            summary: "built against runbook:host@0.2.0".into(),
            version: "0.2.0".into(),
            params: vec![ParamSpec {
                name: "target".into(),
                description: "echoed back".into(),
                default: Some("none".into()),
                required: false,
            }],
            capabilities: Vec::new(),
        }
    }

    fn run(incident: Incident) -> Result<Outcome, Error> {
        let trigger = match incident.trigger {
            TriggerKind::Cli => "cli",
            TriggerKind::Webhook => "webhook",
            TriggerKind::Alert => "alert",
            TriggerKind::Schedule => "schedule",
        };
        report::step("contract", StepStatus::Ok, "0.2.0");
        Ok(Outcome {
            status: Status::Resolved,
            summary: format!("0.2.0 component ran, trigger {trigger}"),
            actions: Vec::new(),
        })
    }
}

export!(V02);
