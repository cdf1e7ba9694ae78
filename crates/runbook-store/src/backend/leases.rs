//! Run leases: a process renews the leases of the runs it holds; runs whose lease ended are
//! `lost`, and ops hear of each lost run once.

use std::time::Duration;

use anyhow::Result;

use crate::records::UnfinishedRun;

/// Owns run leases: their renewal by the runner, their expiry (`lost`), and telling ops once.
#[async_trait::async_trait]
pub trait Leases: Send + Sync {
    /// Renews the lease of every `running` run `runner` holds, and of their slots; returns how
    /// many runs it holds.
    async fn renew_leases(&self, runner: &str, lease: Duration) -> Result<usize>;

    /// Marks `lost` every `running` run whose lease ended (its process died or lost the
    /// store) and frees its slot; returns how many.
    async fn expire_leases(&self) -> Result<usize>;

    /// Lost runs nobody has told ops about, oldest first, at most `max`; each is returned to
    /// one caller only (it is marked told in the same transaction; a crash right after loses
    /// that notice rather than sending it twice).
    async fn take_lost_unnotified(&self, max: usize) -> Result<Vec<UnfinishedRun>>;
}
