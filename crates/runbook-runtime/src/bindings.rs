//! The one place the WIT contract is turned into Rust; capability modules implement the
//! generated `Host` traits and everything else imports types from here.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "playbook",
    imports: { default: async | trappable },
    exports: { default: async },
    // Fixtures (the tape) keep call results and incidents as JSON.
    additional_derives: [serde::Serialize, serde::Deserialize],
});

pub mod legacy;
mod older;
pub mod v0_1;
pub mod v0_2;
pub mod v0_3;
pub mod versions;
pub use versions::{VersionedPlaybook, VersionedPre};

/// Binds one capability interface, named as in the WIT (`fs-read`), into a linker instance,
/// its functions returning the `error` variant of `Errors`: the store data's owner (the run's
/// state) decides which view of it each interface gets.
pub type Link<T> =
    fn(&mut wasmtime::component::LinkerInstance<'_, T>, &str, Errors) -> wasmtime::Result<()>;

/// The shape of the `error` variant a contract version's capability functions return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Errors {
    /// 0.4.0 and later: `over-budget` is its own case.
    Current,
    /// 0.1.0–0.3.0: no `over-budget`; such a refusal is `denied` with the same text
    /// (`legacy`).
    Denied,
}

pub use runbook::host::types::{
    Alert, Capability, Error as CapError, OverBudgetInfo, ParamSpec, Severity, Status, TriggerKind,
};

impl CapError {
    /// The kind as the timeline and audit log name it.
    pub fn kind(&self) -> &'static str {
        match self {
            CapError::Denied(_) => "denied",
            CapError::NotFound(_) => "not-found",
            CapError::Invalid(_) => "invalid",
            CapError::Unavailable(_) => "unavailable",
            CapError::Timeout(_) => "timeout",
            CapError::Failed(_) => "failed",
            CapError::OverBudget(_) => "over-budget",
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            CapError::Denied(s)
            | CapError::NotFound(s)
            | CapError::Invalid(s)
            | CapError::Unavailable(s)
            | CapError::Timeout(s)
            | CapError::Failed(s) => s,
            CapError::OverBudget(info) => &info.message,
        }
    }
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Resolved => "resolved",
            Status::Mitigated => "mitigated",
            Status::Escalated => "escalated",
            Status::NoAction => "no-action",
            Status::Failed => "failed",
        }
    }
}

impl Capability {
    pub fn as_str(&self) -> &'static str {
        match self {
            Capability::Docker => "docker",
            Capability::Http => "http",
            Capability::FsRead => "fs-read",
            Capability::Notify => "notify",
            Capability::Approval => "approval",
        }
    }
}

impl Severity {
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

/// The contract has no `console`: a guest is told `webhook`, the nearest (see `Trigger`).
impl From<crate::records::Trigger> for TriggerKind {
    fn from(trigger: crate::records::Trigger) -> Self {
        use crate::records::Trigger;
        match trigger {
            Trigger::Cli => TriggerKind::Cli,
            Trigger::Webhook | Trigger::Console => TriggerKind::Webhook,
            Trigger::Alert => TriggerKind::Alert,
            Trigger::Schedule => TriggerKind::Schedule,
        }
    }
}

impl TriggerKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            TriggerKind::Cli => "cli",
            TriggerKind::Webhook => "webhook",
            TriggerKind::Alert => "alert",
            TriggerKind::Schedule => "schedule",
        }
    }
}
