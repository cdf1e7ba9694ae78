//! What every process on the store shares besides runs: store-wide secrets (the console's
//! CSRF key) and Standard Webhooks replay ids.

use std::time::Duration;

use anyhow::Result;

/// Owns store-wide secrets and replay ids: what every process on the store must agree on.
#[async_trait::async_trait]
pub trait SharedState: Send + Sync {
    /// The store-wide secret `name`: the first process to ask stores its `candidate` (random),
    /// and every process on the store gets that one from then on (a unique key decides). The
    /// console's CSRF key, so a form served by one replica is accepted by another.
    async fn shared_secret(&self, name: &str, candidate: &str) -> Result<String>;

    /// Records a delivery's `webhook-id`; false when the id was recorded within `window`
    /// (a replay). A unique constraint decides, so two replicas never both accept one id.
    async fn first_delivery(&self, id: &str, window: Duration) -> Result<bool>;
}
