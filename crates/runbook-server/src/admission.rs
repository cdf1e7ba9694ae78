//! What a request to start a run is answered: admitted (started, held, suppressed,
//! deduplicated, in cooldown)
//! or refused, and why. Shared by the dispatcher that decides, the fleet's node intake that
//! bounds runs for nodes, and the hooks and console that answer the caller.

/// A run the store took, or the reason none was needed.
pub enum Admission {
    Started(String),
    /// Recorded, not to be executed: held by a breaker or suppressed by a window.
    Gated(String, crate::safety::Decision),
    Deduplicated(String),
    Cooldown,
}

/// Why no run was admitted; the status it maps to is `respond::refusal_status`.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    UnknownPlaybook(String),
    #[error("{0}")]
    Invalid(String),
    /// A parameter's value is not of its type (`UsageError::BadValue`).
    #[error("{0}")]
    BadValue(String),
    /// The playbook exists but cannot load or describe itself: the reason, for the operator.
    #[error("{0}")]
    Broken(String),
    #[error("the run queue is full ({0} runs waiting); retry later")]
    Busy(usize),
    /// A node no agent can serve (not in `[fleet.nodes]`): refused for good.
    #[error("{0}")]
    UnknownNode(String),
    /// Runs waiting for nodes are at their bound (per node or in total): retry later.
    #[error("{0}")]
    NodeBusy(String),
    /// The store did not take the run (down, unreachable): nothing was acknowledged.
    /// Its cause went to the log (`Refusal::store`): it names the database.
    #[error("the run store is unavailable; retry later")]
    Unavailable,
    #[error("{0}")]
    Internal(String),
}

impl Refusal {
    /// The store failed `what`: logged with its cause, refused without it.
    pub(crate) fn store(what: &str, e: anyhow::Error) -> Refusal {
        tracing::warn!("{what}: the run store failed: {e:#}");
        Refusal::Unavailable
    }
}
