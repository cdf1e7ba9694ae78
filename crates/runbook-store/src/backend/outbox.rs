//! The notification outbox: messages queued, claimed per channel in order, and marked
//! delivered, retried or failed.

use std::time::Duration;

use anyhow::Result;

use crate::records::{Claim, NewMessage, OutboxRow};

/// Owns the notification outbox: messages, their per-channel order, leases and attempts.
#[async_trait::async_trait]
pub trait Outbox: Send + Sync {
    /// Queues a message, due now. With `once_key`, a second message with the same key is not
    /// queued (a unique constraint) and the first one's id is returned: a resolve that two
    /// replicas both receive goes out once.
    async fn enqueue(&self, message: NewMessage, once_key: Option<String>) -> Result<i64>;

    /// `enqueue`, the new row already leased to the caller for `lease` (attempt 1 under
    /// way), for a caller that delivers it at once (a file append): no worker takes it while
    /// the caller lives, and one retries it if the caller dies before marking it. The bool is
    /// false when `once_key` named an existing row, which the caller must not deliver again.
    async fn enqueue_held(
        &self,
        message: NewMessage,
        once_key: Option<String>,
        lease: Duration,
    ) -> Result<(i64, bool)>;

    /// Takes the channel's oldest pending row if it is due and no worker of any process
    /// holds it; channels stay in order (a resolve never overtakes its trigger).
    async fn claim_head(&self, channel: &str, lease: Duration) -> Result<Claim>;

    /// A multi-part message remembers which parts went out, so a retry sends only the rest.
    async fn mark_parts_sent(&self, id: i64, parts: i64) -> Result<()>;

    async fn mark_delivered(&self, id: i64) -> Result<()>;

    async fn mark_retry(&self, id: i64, after: Duration, error: &str) -> Result<()>;

    async fn mark_failed(&self, id: i64, error: &str) -> Result<()>;

    /// The console's retry: a `failed` row is `pending` again, due now, its attempts kept.
    /// False when the row is not failed (delivered, pending, or no such row).
    async fn outbox_retry(&self, id: i64) -> Result<bool>;

    async fn outbox_for_run(&self, run_id: &str) -> Result<Vec<OutboxRow>>;

    async fn outbox_row(&self, id: i64) -> Result<Option<OutboxRow>>;

    /// Newest first; `state` filters (pending, delivered, failed).
    async fn outbox_list(&self, state: Option<&str>, limit: usize) -> Result<Vec<OutboxRow>>;

    /// Pending rows per channel.
    async fn outbox_pending(&self) -> Result<Vec<(String, i64)>>;

    /// The newest message queued to `channel` under `dedup_key` (a resolve goes only where
    /// its trigger went).
    async fn last_for_dedup_key(&self, channel: &str, dedup_key: &str)
    -> Result<Option<OutboxRow>>;
}
