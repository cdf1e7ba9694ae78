//! Runs as people read them (`Timelines`) for this backend.

use anyhow::Result;

use super::{Sqlite, runs};
use crate::backend::Timelines;
use crate::records::{RunSummary, StoredRun};
use crate::{EventsPage, RunFilter, clean};

#[async_trait::async_trait]
impl Timelines for Sqlite {
    async fn list(&self, limit: usize, playbook: Option<&str>) -> Result<Vec<RunSummary>> {
        let playbook = playbook.map(String::from);
        self.blocking(move |conn| runs::list(conn, limit, playbook.as_deref()))
            .await
    }

    async fn list_page(&self, filter: &RunFilter) -> Result<Vec<RunSummary>> {
        let filter = filter.clone();
        self.blocking(move |conn| runs::list_page(conn, &filter))
            .await
    }

    async fn get(&self, id: &str) -> Result<Option<StoredRun>> {
        let id = &*clean::text(id);
        let id = id.to_string();
        self.blocking(move |conn| runs::get(conn, &id)).await
    }

    async fn events_after(
        &self,
        id: &str,
        from: usize,
        limit: usize,
    ) -> Result<Option<EventsPage>> {
        let id = id.to_string();
        self.blocking(move |conn| runs::events_after(conn, &id, from, limit))
            .await
    }
}
