//! The run queue: runs accepted (`admit`, `insert_running`), claimed by a process under a
//! lease and a playbook slot, and finished; the counts the server's admission bounds read.
//! Admission is where dedup and cooldown are decided, in the same transaction as the run
//! and its alert record.

use std::time::Duration;

use anyhow::Result;

use super::{QueueDepths, SlotLimits};
use crate::records::{Admit, Admitted, QueuedRun, RunOutcome};

/// Owns the runs' lifecycle up to their end: admission (with its dedup and cooldown keys and
/// the alert's record), claims under per-playbook slots, outcomes, and the queue's counts.
#[async_trait::async_trait]
pub trait RunQueue: Send + Sync {
    /// A CLI run: recorded `running` at once, held by `runner` under a lease.
    async fn insert_running(&self, run: QueuedRun, runner: &str, lease: Duration) -> Result<()>;

    /// Decides and records one webhook admission, atomically across every process on the
    /// store: dedup (one key row per dedup key under a unique constraint, valid for the
    /// window from the run it names; a run cut off — `interrupted`, `lost`, `undeliverable`
    /// — frees it), then cooldown (the same per playbook and cooldown key), then the run as
    /// `queued` (unclaimed, for `run.node` if any) and the alert's record with its
    /// disposition. Returns once committed, and wakes the claimers of every process
    /// (`wait_for_queued`).
    async fn admit(&self, admit: Admit) -> Result<Admitted>;

    /// Claims up to `max` queued runs for `runner`, oldest first, among runs for no node
    /// (`node IS NULL`: runs for a fleet node are claimed only by its agent, `claim_for_node`), in one transaction: rows
    /// another claimer is taking are skipped (`FOR UPDATE SKIP LOCKED`), and a run is taken
    /// only with a free slot of its playbook (a slot is a row: playbook, number, holder run,
    /// lease; at most `limits.of(playbook)` of them per playbook). A claimed run is `running`,
    /// held by `runner` with `lease` from now, and holds its slot until it ends or its lease
    /// ends.
    async fn claim_queued(
        &self,
        runner: &str,
        max: usize,
        limits: &SlotLimits,
        lease: Duration,
    ) -> Result<Vec<QueuedRun>>;

    /// Returns when a run may have been queued by any process (PostgreSQL: LISTEN/NOTIFY;
    /// SQLite: this process's admissions) or a slot freed, or after `timeout`.
    async fn wait_for_queued(&self, timeout: Duration);

    /// Writes a run's outcome, timeline and artifacts and frees its slot, in one transaction.
    /// Refused (an error, nothing written) unless the run is still `running`: a run marked
    /// `lost` after its lease ran out stays lost.
    async fn finish(&self, outcome: RunOutcome) -> Result<()>;

    /// Ends a run still `queued` or `running` with `status` (failed, interrupted) and
    /// `reason`, freeing its slot; false when it had already ended.
    async fn end_unfinished(&self, id: &str, status: &str, reason: &str) -> Result<bool>;

    /// (queued runs not claimed yet, running runs held under a live lease).
    async fn run_counts(&self) -> Result<(usize, usize)>;

    /// Queued runs by who waits for them: this server's kind (no node), any node, and `node`.
    async fn queue_depths(&self, node: Option<&str>) -> Result<QueueDepths>;
}
