//! The alerts log: every alert received and what became of it (its disposition). Alerts that
//! start a run are recorded by `RunQueue::admit`; dedup and cooldown keys live there too.

use anyhow::Result;

use crate::records::AlertRecord;

/// Owns the alerts log: alert records and their dispositions, newest first.
#[async_trait::async_trait]
pub trait Alerts: Send + Sync {
    /// Records alerts that started nothing; returns once committed.
    async fn record_alerts(&self, alerts: Vec<AlertRecord>) -> Result<()>;

    /// Newest first.
    async fn alerts(&self, limit: usize) -> Result<Vec<AlertRecord>>;
}
