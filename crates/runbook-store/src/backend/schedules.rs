//! Schedule firings: each (schedule, time) fires once across every process and restart.

use anyhow::Result;

use crate::records::{Fired, Firing, FiringRecord};

/// Owns schedule firings: one per (schedule, time), each with the run it admitted or skipped.
#[async_trait::async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Records one firing of a schedule and admits its run, in one transaction, atomically
    /// across every process on the store: the firing's key (schedule, time) is unique, so a
    /// firing already recorded (by another replica, or before a restart) is `AlreadyFired`;
    /// a schedule whose latest run is still `queued` or `running` records the firing as
    /// skipped (naming that run); otherwise the run is stored `queued` and claimers are woken.
    async fn fire(&self, firing: Firing) -> Result<Fired>;

    /// The recorded firings of `schedule`, newest first, at most `limit`, each with its
    /// run's status now.
    async fn firings(&self, schedule: &str, limit: usize) -> Result<Vec<FiringRecord>>;
}
