//! Components built against `runbook:host@0.1.0` keep loading and running.
//!
//! 0.1.0 and 0.2.0 differ only in `types.trigger-kind` (0.2.0 added `schedule`), but every
//! interface of a package carries the package's version in its import name, and wasmtime's
//! linker treats 0.1 and 0.2 as incompatible. So the capability interfaces are registered a
//! second time under their 0.1.0 names with the very same host functions (the component
//! model checks types structurally: the records are identical), and the world's exports are
//! called through bindings generated from the 0.1.0 WIT kept in `wit/0.1.0/`, converting the
//! few types that pass through them.

use anyhow::Result;
use wasmtime::component::{HasSelf, Linker};

use crate::bindings::runbook::host as current;
use crate::bindings::{CapError, Description, Incident, Outcome, TriggerKind};
use crate::state::RunState;

/// The contract version these bindings speak, as import names carry it.
pub const VERSION: &str = "0.1.0";

pub mod generated {
    wasmtime::component::bindgen!({
        path: "../wit/0.1.0",
        world: "playbook",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

use generated::runbook::host::types as old;
pub use generated::{Playbook, PlaybookPre};

/// The 0.1.0 names of the capability interfaces, bound to the current host functions.
pub fn add_to_linker(linker: &mut Linker<RunState>) -> Result<()> {
    fn named<'a>(
        linker: &'a mut Linker<RunState>,
        interface: &str,
    ) -> Result<wasmtime::component::LinkerInstance<'a, RunState>> {
        Ok(linker.instance(&format!("runbook:host/{interface}@{VERSION}"))?)
    }
    // `types` holds only types; the instance must still exist for the import to resolve.
    named(linker, "types")?;
    current::docker::add_to_linker_instance::<_, HasSelf<_>>(&mut named(linker, "docker")?, |s| s)?;
    current::http::add_to_linker_instance::<_, HasSelf<_>>(&mut named(linker, "http")?, |s| s)?;
    current::fs_read::add_to_linker_instance::<_, HasSelf<_>>(
        &mut named(linker, "fs-read")?,
        |s| s,
    )?;
    current::notify::add_to_linker_instance::<_, HasSelf<_>>(&mut named(linker, "notify")?, |s| s)?;
    current::report::add_to_linker_instance::<_, HasSelf<_>>(&mut named(linker, "report")?, |s| s)?;
    Ok(())
}

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
        alert: incident.alert.clone().map(|a| old::Alert {
            name: a.name,
            status: a.status,
            labels: a.labels,
            annotations: a.annotations,
            fingerprint: a.fingerprint,
            starts_at: a.starts_at,
        }),
        dry_run: incident.dry_run,
    }
}

pub fn description(d: old::Description) -> Description {
    use crate::bindings::{Capability, ParamSpec};
    Description {
        name: d.name,
        summary: d.summary,
        version: d.version,
        params: d
            .params
            .into_iter()
            .map(|p| ParamSpec {
                name: p.name,
                description: p.description,
                default: p.default,
                required: p.required,
            })
            .collect(),
        capabilities: d
            .capabilities
            .into_iter()
            .map(|c| match c {
                old::Capability::Docker => Capability::Docker,
                old::Capability::Http => Capability::Http,
                old::Capability::FsRead => Capability::FsRead,
                old::Capability::Notify => Capability::Notify,
            })
            .collect(),
    }
}

pub fn outcome(result: Result<old::Outcome, old::Error>) -> Result<Outcome, CapError> {
    use crate::bindings::Status;
    match result {
        Ok(o) => Ok(Outcome {
            status: match o.status {
                old::Status::Resolved => Status::Resolved,
                old::Status::Mitigated => Status::Mitigated,
                old::Status::Escalated => Status::Escalated,
                old::Status::NoAction => Status::NoAction,
                old::Status::Failed => Status::Failed,
            },
            summary: o.summary,
            actions: o.actions,
        }),
        Err(e) => Err(match e {
            old::Error::Denied(s) => CapError::Denied(s),
            old::Error::NotFound(s) => CapError::NotFound(s),
            old::Error::Invalid(s) => CapError::Invalid(s),
            old::Error::Unavailable(s) => CapError::Unavailable(s),
            old::Error::Timeout(s) => CapError::Timeout(s),
            old::Error::Failed(s) => CapError::Failed(s),
        }),
    }
}
