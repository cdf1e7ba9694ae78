//! Runs as people read them: the runs list and page, one run with its timeline, artifacts and
//! deliveries, and a live run's events after a cursor.

use anyhow::Result;

use super::{EventsPage, RunFilter};
use crate::records::{RunSummary, StoredRun};

/// Owns nothing new: reads of runs, their timelines, artifacts and deliveries.
#[async_trait::async_trait]
pub trait Timelines: Send + Sync {
    /// Newest first; `playbook` filters.
    async fn list(&self, limit: usize, playbook: Option<&str>) -> Result<Vec<RunSummary>>;

    /// One page of the console's runs list, newest first by (started_at, id).
    async fn list_page(&self, filter: &RunFilter) -> Result<Vec<RunSummary>>;

    async fn get(&self, id: &str) -> Result<Option<StoredRun>>;

    /// What a live stream reads: the run's events numbered `from` and on, at most `limit`, in
    /// number order, with its status read first (one snapshot: a status that says the run
    /// ended comes with its final timeline). `None`: no such run.
    async fn events_after(&self, id: &str, from: usize, limit: usize)
    -> Result<Option<EventsPage>>;
}
