//! The fleet: runs executed by `host agent` on a named node.
//!
//! An agent *holds* a run while the run is `running`, its runner is the agent's, and its
//! lease has not ended. A lease that ran out is not revived by a late renewal or write: the
//! run is the rescuer's to mark `lost` (`Leases::expire_leases`), and its slot may be another
//! run's.

use std::time::Duration;

use anyhow::Result;

use super::{Appended, SlotLimits};
use crate::records::{NodeRecord, QueuedRun, RunOutcome, UnfinishedRun};

/// Owns what agents do with node runs: their claims, held leases, live events and outcomes,
/// the nodes as last heard from, and node runs nobody took in time.
#[async_trait::async_trait]
pub trait FleetStore: Send + Sync {
    /// As `claim_queued`, among the queued runs for `node` only (same slots: a playbook's
    /// `max-concurrent` counts its runs on every node and server together).
    async fn claim_for_node(
        &self,
        node: &str,
        runner: &str,
        max: usize,
        limits: &SlotLimits,
        lease: Duration,
    ) -> Result<Vec<QueuedRun>>;

    /// Renews the leases of those of `ids` that `runner` still holds, and of their slots;
    /// returns them (in the order given, each once). An id missing from the answer was taken
    /// from the runner (its lease ran out, it is or will be `lost`, or it ended): the agent
    /// stops that run's writes.
    async fn renew_held(
        &self,
        runner: &str,
        ids: &[String],
        lease: Duration,
    ) -> Result<Vec<String>>;

    /// Appends live timeline events (JSON text) of a run `runner` holds, numbered from `from`
    /// (an event already stored under a number is replaced: an agent's retry is idempotent),
    /// in one transaction with the check. `NotHeld`, nothing written, when it does not hold
    /// it. The run's stored events count against `max_bytes` as a local run's timeline does
    /// (`timeline::over_cap` before each event): the events that fit are stored, and `Full`
    /// says the rest were not. `get` shows them, in number order, while the run is `running`.
    async fn append_events(
        &self,
        run_id: &str,
        runner: &str,
        from: usize,
        events: Vec<String>,
        max_bytes: usize,
    ) -> Result<Appended>;

    /// As `finish`, only while `runner` holds the run; the outcome's timeline replaces the
    /// events appended live. False, nothing written, when it does not hold it.
    async fn finish_held(&self, outcome: RunOutcome, runner: &str) -> Result<bool>;

    /// Records that the agent `session` of `node` (at `version`) was heard from now (the
    /// store's clock); the session last heard from is the node's, and a session other than
    /// the recorded one starts a new `connected_at`.
    async fn node_seen(&self, node: &str, session: &str, version: &str) -> Result<()>;

    /// Every node ever seen (`node_seen`), by name, with its runs in flight and queued; a node
    /// named by runs but never seen is not listed.
    async fn nodes(&self) -> Result<Vec<NodeRecord>>;

    /// Queued runs for a node accepted `wait` or longer ago (the store's clock) end
    /// `undeliverable` (reason `records::undeliverable_reason`, summary "run undeliverable:
    /// <reason>"); a dedup or cooldown key naming one is free again, as for `lost`. Returns how
    /// many.
    async fn expire_undelivered(&self, wait: Duration) -> Result<usize>;

    /// As `take_lost_unnotified`, for `undeliverable` runs.
    async fn take_undeliverable_unnotified(&self, max: usize) -> Result<Vec<UnfinishedRun>>;
}
