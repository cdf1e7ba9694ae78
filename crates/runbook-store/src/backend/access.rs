//! Who may do what, as the store keeps it: API tokens (by hash, never the token) and the audit
//! trail of state-changing acts. Expiry is on the store's clock.

use anyhow::Result;

use crate::access::{AuditEvent, NewAudit, NewToken, TokenRecord};

/// Owns API tokens and the audit trail.
#[async_trait::async_trait]
pub trait AccessStore: Send + Sync {
    /// Stores a token; its id is new.
    async fn token_create(&self, token: NewToken) -> Result<TokenRecord>;

    /// The token stored under `hash`, revoked and expired ones too (the caller refuses them,
    /// and says why in its log).
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>>;

    /// Every token, newest first.
    async fn tokens(&self) -> Result<Vec<TokenRecord>>;

    /// Revokes the token `id` (an id or a name); false when no such unrevoked token exists.
    async fn token_revoke(&self, id: &str, by: &str) -> Result<bool>;

    /// Records an act, at the store's now; fields are capped and cleaned.
    async fn audit_append(&self, event: NewAudit) -> Result<AuditEvent>;

    /// The newest `limit` events at or after `since_ms` (unix ms), oldest first.
    async fn audit_since(&self, since_ms: i64, limit: usize) -> Result<Vec<AuditEvent>>;
}
