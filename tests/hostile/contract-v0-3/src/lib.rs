//! A playbook built against `runbook:host@0.3.0` (the WIT kept in `wit/0.3.0/`), as components
//! built before 0.4.0 are: it must keep loading and running, and its error variant has no
//! `over-budget`. Given a `target` container it restarts it and returns whatever error the
//! restart got (an action budget's refusal must reach it as `denied`, with the budget's text).

wit_bindgen::generate!({
    path: "../../../wit/0.3.0",
    world: "playbook",
    generate_all,
});

use runbook::host::docker;
use runbook::host::types::{Capability, ParamSpec, Status};

struct V03;

impl Guest for V03 {
    fn describe() -> Description {
        Description {
            name: "contract-v0-3".into(),
            summary: "built against runbook:host@0.3.0".into(),
            version: "0.3.0".into(),
            params: vec![ParamSpec {
                name: "target".into(),
                description: "container to restart; empty: restart nothing".into(),
                default: Some(String::new()),
                required: false,
            }],
            capabilities: vec![Capability::Docker],
        }
    }

    fn run(incident: Incident) -> Result<Outcome, Error> {
        let target = incident
            .params
            .iter()
            .find(|(k, _)| k == "target")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let mut actions = Vec::new();
        if !target.is_empty() {
            docker::restart(&target, Some(1))?;
            actions.push(format!("restarted {target}"));
        }
        Ok(Outcome {
            status: Status::Resolved,
            summary: "0.3.0 component ran".into(),
            actions,
        })
    }
}

export!(V03);
