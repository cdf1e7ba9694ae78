//! Components built against `runbook:host@0.2.0` keep loading and running: the same scheme
//! as `v0_1` (old interface names bound to the current host functions, the world's types
//! converted). 0.2.0 lacks the `approval` interface and capability of 0.3.0.

use crate::bindings::{Incident, TriggerKind};

pub const VERSION: &str = "0.2.0";

pub mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit/0.2.0",
        world: "playbook",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

use generated::runbook::host::types as old;
pub use generated::{Playbook, PlaybookPre};

super::older::older_contract!(
    ["docker", "http", "fs-read", "notify", "report"],
    [Docker, Http, FsRead, Notify]
);

pub fn incident(incident: &Incident) -> old::Incident {
    old::Incident {
        run_id: incident.run_id.clone(),
        trigger: match incident.trigger {
            TriggerKind::Cli => old::TriggerKind::Cli,
            TriggerKind::Webhook => old::TriggerKind::Webhook,
            TriggerKind::Alert => old::TriggerKind::Alert,
            TriggerKind::Schedule => old::TriggerKind::Schedule,
        },
        params: incident.params.clone(),
        alert: incident.alert.clone().map(alert),
        dry_run: incident.dry_run,
    }
}
