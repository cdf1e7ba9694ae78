//! Components built against `runbook:host@0.1.0` keep loading and running.
//!
//! 0.1.0 lacks the trigger kind `schedule` (0.2.0) and everything 0.3.0 added, but every
//! interface of a package carries the package's version in its import name, and wasmtime's
//! linker treats 0.1 and 0.2 as incompatible. So the capability interfaces are registered a
//! second time under their 0.1.0 names with the very same host functions, and the world's
//! exports are called through bindings generated from the 0.1.0 WIT kept in `wit/0.1.0/`,
//! converting the few types that pass through them (`super::older`).

use crate::bindings::{Incident, TriggerKind};

/// The contract version these bindings speak, as import names carry it.
pub const VERSION: &str = "0.1.0";

pub mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit/0.1.0",
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

/// What a 0.1.0 component is handed: it has no `schedule` trigger, so a scheduled run reaches
/// it as `cli` (started by the host, not by an alert); the run itself records `schedule`.
pub fn incident(incident: &Incident) -> old::Incident {
    old::Incident {
        run_id: incident.run_id.clone(),
        trigger: match incident.trigger {
            TriggerKind::Cli | TriggerKind::Schedule => old::TriggerKind::Cli,
            TriggerKind::Webhook => old::TriggerKind::Webhook,
            TriggerKind::Alert => old::TriggerKind::Alert,
        },
        params: incident.params.clone(),
        alert: incident.alert.clone().map(alert),
        dry_run: incident.dry_run,
    }
}
