//! Who may do what, as the store keeps it: API tokens (by hash, never the token) and the audit
//! trail of state-changing acts, console sessions and the sign-ins on their way to one (by
//! hash, never the cookie or the state). Expiry is on the store's clock.

use anyhow::Result;

use crate::access::{
    AuditEvent, NewAudit, NewSession, NewToken, PendingLogin, SessionRecord, StartedLogin,
    TokenRecord,
};

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

    /// The oldest `limit` events at or after `since_ms` that have no outbox row for `sink`
    /// yet (once key `audit-<id>-<sink>`): what a process that died between storing an
    /// event and queueing it left unshipped.
    async fn audit_unshipped(
        &self,
        sink: &str,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<AuditEvent>>;

    /// Stores a console session (and drops a few expired ones).
    async fn session_create(&self, session: NewSession) -> Result<()>;

    /// The unexpired session stored under `hash`.
    async fn session_by_hash(&self, hash: &str) -> Result<Option<SessionRecord>>;

    /// Ends the session under `hash` for every instance; false when there was none.
    async fn session_delete(&self, hash: &str) -> Result<bool>;

    /// Stores a sign-in on its way through the provider (and drops a few stale ones).
    async fn login_begin(&self, login: PendingLogin) -> Result<()>;

    /// Takes (deletes and returns) the unexpired sign-in under `state_hash`: once only.
    async fn login_take(&self, state_hash: &str) -> Result<Option<StartedLogin>>;
}
