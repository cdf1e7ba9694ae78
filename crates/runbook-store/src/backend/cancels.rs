//! Requests to stop a run, decided once across every process on the store.

use anyhow::Result;

use crate::records::Cancelled;

/// Owns stop requests: who asked a run to stop, decided once.
#[async_trait::async_trait]
pub trait Cancels: Send + Sync {
    /// Asks run `id` to stop, on behalf of `by` (`cli:root`, `console:alice`, `api:…`),
    /// atomically across every process: a queued run, or one running on a fleet node, ends
    /// `cancelled` at once (summary and reason "cancelled by …", a timeline line saying so;
    /// its slot freed; its dedup and cooldown keys kept: a person stopped it, and the alert's
    /// next delivery within the window must not start it again); a run a host process executes keeps running
    /// with the request recorded, for that process to stop (`cancel_requests`). The first
    /// request wins.
    async fn cancel_run(&self, id: &str, by: &str) -> Result<Cancelled>;

    /// The `running` runs `runner` holds that someone asked to stop: (id, by).
    async fn cancel_requests(&self, runner: &str) -> Result<Vec<(String, String)>>;
}
