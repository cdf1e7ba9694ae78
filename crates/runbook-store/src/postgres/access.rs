//! API tokens and the audit trail on PostgreSQL, on the database clock: a token expires for
//! every replica at once.

use anyhow::Result;
use tokio_postgres::Row;

use super::Postgres;
use super::sql::{execute, query, query_opt};
use crate::access::{
    AuditEvent, NewAudit, NewSession, NewToken, PendingLogin, Role, SessionRecord, StartedLogin,
    TokenRecord,
};
use crate::backend::AccessStore;
use crate::clean;
use crate::records::rfc3339;

/// The database clock in unix ms.
const NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

fn text_of(ms: i64) -> String {
    rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64))
}

const TOKEN_COLUMNS: &str =
    "id, name, role, created_by, created_ms, expires_ms, revoked_ms, revoked_by";

/// A token row read with the database's now in the column after its own.
fn token_of(row: &Row) -> TokenRecord {
    let expires_ms: Option<i64> = row.get(5);
    let now: i64 = row.get(8);
    TokenRecord {
        id: row.get(0),
        name: row.get(1),
        // A role this host does not know allows nothing above viewer.
        role: row.get::<_, String>(2).parse().unwrap_or(Role::Viewer),
        created_by: row.get(3),
        created_at: text_of(row.get(4)),
        expires_at: expires_ms.map(text_of),
        revoked_at: row.get::<_, Option<i64>>(6).map(text_of),
        revoked_by: row.get(7),
        expired: expires_ms.is_some_and(|e| e <= now),
    }
}

const AUDIT_COLUMNS: &str = "id, at_ms, act, actor, proof, source, target, detail";

fn audit(row: &Row) -> Result<AuditEvent> {
    Ok(AuditEvent {
        id: row.get(0),
        at: text_of(row.get(1)),
        act: row
            .get::<_, String>(2)
            .parse()
            .map_err(|e: String| anyhow::anyhow!(e))?,
        actor: row.get(3),
        proof: row.get(4),
        source: row.get(5),
        target: row.get(6),
        detail: row.get(7),
    })
}

fn cleaned(event: NewAudit) -> NewAudit {
    let c = |s: &str| clean::text(s).into_owned();
    NewAudit {
        act: event.act,
        actor: c(&event.actor),
        proof: c(&event.proof),
        source: c(&event.source),
        target: event.target.as_deref().map(c),
        detail: event.detail.as_deref().map(c),
    }
    .capped()
}

fn ms(d: std::time::Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

#[async_trait::async_trait]
impl AccessStore for Postgres {
    async fn token_create(&self, token: NewToken) -> Result<TokenRecord> {
        let name = clean::text(&token.name).into_owned();
        let by = clean::text(&token.created_by).into_owned();
        let expires = token.expires_in.map(ms);
        let create = async {
            let client = self.client().await?;
            let row = query_opt(
                &client,
                &format!(
                    "INSERT INTO api_tokens (id, hash, name, role, created_by, created_ms,
                                             expires_ms)
                     VALUES ('tok-' || substr(md5(random()::text || clock_timestamp()::text), 1, 12),
                             $1, $2, $3, $4, {NOW_MS}, {NOW_MS} + $5)
                     RETURNING {TOKEN_COLUMNS}, {NOW_MS}"
                ),
                &[&token.hash, &name, &token.role.as_str(), &by, &expires],
            )
            .await?
            .ok_or_else(|| anyhow::anyhow!("no token row returned"))?;
            Ok(token_of(&row))
        };
        self.bounded("storing an API token", create).await
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>> {
        let find = async {
            let client = self.client().await?;
            let row = query_opt(
                &client,
                &format!("SELECT {TOKEN_COLUMNS}, {NOW_MS} FROM api_tokens WHERE hash = $1"),
                &[&hash],
            )
            .await?;
            Ok(row.as_ref().map(token_of))
        };
        self.bounded("looking up an API token", find).await
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        let list = async {
            let client = self.client().await?;
            let rows = query(
                &client,
                &format!(
                    "SELECT {TOKEN_COLUMNS}, {NOW_MS} FROM api_tokens
                     ORDER BY created_ms DESC, id LIMIT 1000"
                ),
                &[],
            )
            .await?;
            Ok(rows.iter().map(token_of).collect())
        };
        self.bounded("listing API tokens", list).await
    }

    async fn token_revoke(&self, id: &str, by: &str) -> Result<bool> {
        let (id, by) = (clean::text(id), clean::text(by));
        let revoke = async {
            let client = self.client().await?;
            let n = execute(
                &client,
                &format!(
                    "UPDATE api_tokens SET revoked_ms = {NOW_MS}, revoked_by = $2
                     WHERE (id = $1 OR name = $1) AND revoked_ms IS NULL"
                ),
                &[&id.as_ref(), &by.as_ref()],
            )
            .await?;
            Ok(n > 0)
        };
        self.bounded("revoking an API token", revoke).await
    }

    async fn audit_append(&self, event: NewAudit) -> Result<AuditEvent> {
        let e = cleaned(event);
        let append = async {
            let client = self.client().await?;
            let row = query_opt(
                &client,
                &format!(
                    "INSERT INTO audit_events (at_ms, act, actor, proof, source, target, detail)
                     VALUES ({NOW_MS}, $1, $2, $3, $4, $5, $6)
                     RETURNING {AUDIT_COLUMNS}"
                ),
                &[
                    &e.act.as_str(),
                    &e.actor,
                    &e.proof,
                    &e.source,
                    &e.target,
                    &e.detail,
                ],
            )
            .await?
            .ok_or_else(|| anyhow::anyhow!("no audit row returned"))?;
            audit(&row)
        };
        self.bounded("recording an audit event", append).await
    }

    async fn audit_since(&self, since_ms: i64, limit: usize) -> Result<Vec<AuditEvent>> {
        let list = async {
            let client = self.client().await?;
            let rows = query(
                &client,
                &format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE at_ms >= $1
                     ORDER BY id DESC LIMIT $2"
                ),
                &[&since_ms, &(limit.min(100_000) as i64)],
            )
            .await?;
            let mut events = rows.iter().map(audit).collect::<Result<Vec<_>>>()?;
            events.reverse();
            Ok(events)
        };
        self.bounded("reading the audit trail", list).await
    }

    async fn audit_unshipped(
        &self,
        sink: &str,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<AuditEvent>> {
        // The key as the outbox stores it: cleaned like enqueue's, and a long one as its
        // digest (index_key).
        let sink = clean::text(sink).into_owned();
        let list = async {
            let client = self.client().await?;
            let rows = query(
                &client,
                &format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_events a
                     CROSS JOIN LATERAL (SELECT 'audit-' || a.id || '-' || $2::text AS k) candidate
                     WHERE at_ms >= $1 AND NOT EXISTS (
                         SELECT 1 FROM outbox o WHERE o.once_key =
                             CASE WHEN octet_length(candidate.k) <= 256 AND candidate.k NOT LIKE 'sha256:%'
                                  THEN candidate.k
                                  ELSE 'sha256:' || encode(sha256(convert_to(candidate.k, 'UTF8')), 'hex')
                             END)
                     ORDER BY id LIMIT $3"
                ),
                &[&since_ms, &sink, &(limit.min(100_000) as i64)],
            )
            .await?;
            rows.iter().map(audit).collect::<Result<Vec<_>>>()
        };
        self.bounded("reading unshipped audit events", list).await
    }

    async fn session_create(&self, session: NewSession) -> Result<()> {
        let groups = serde_json::to_string(&session.groups)?;
        let (subject, name) = (clean::text(&session.subject), clean::text(&session.name));
        let ttl = ms(session.ttl);
        let create = async {
            let client = self.client().await?;
            // Expired sessions go a few at a time, so no sign-in waits on a long sweep.
            execute(
                &client,
                &format!(
                    "DELETE FROM console_sessions WHERE hash IN
                     (SELECT hash FROM console_sessions WHERE expires_ms <= {NOW_MS} LIMIT 100)"
                ),
                &[],
            )
            .await?;
            execute(
                &client,
                &format!(
                    "INSERT INTO console_sessions (hash, subject, name, groups, created_ms,
                                                   expires_ms)
                     VALUES ($1, $2, $3, $4, {NOW_MS}, {NOW_MS} + $5)"
                ),
                &[
                    &session.hash,
                    &subject.as_ref(),
                    &name.as_ref(),
                    &groups,
                    &ttl,
                ],
            )
            .await?;
            Ok(())
        };
        self.bounded("storing a console session", create).await
    }

    async fn session_by_hash(&self, hash: &str) -> Result<Option<SessionRecord>> {
        let find = async {
            let client = self.client().await?;
            let row = query_opt(
                &client,
                &format!(
                    "SELECT subject, name, groups, expires_ms FROM console_sessions
                     WHERE hash = $1 AND expires_ms > {NOW_MS}"
                ),
                &[&hash],
            )
            .await?;
            row.map(|row| {
                Ok(SessionRecord {
                    subject: row.get(0),
                    name: row.get(1),
                    groups: serde_json::from_str(row.get::<_, &str>(2))?,
                    expires_at: text_of(row.get(3)),
                })
            })
            .transpose()
        };
        self.bounded("looking up a console session", find).await
    }

    async fn session_delete(&self, hash: &str) -> Result<bool> {
        let delete = async {
            let client = self.client().await?;
            let n = execute(
                &client,
                "DELETE FROM console_sessions WHERE hash = $1",
                &[&hash],
            )
            .await?;
            Ok(n > 0)
        };
        self.bounded("ending a console session", delete).await
    }

    async fn login_begin(&self, login: PendingLogin) -> Result<()> {
        let ttl = ms(login.ttl);
        let begin = async {
            let client = self.client().await?;
            execute(
                &client,
                &format!(
                    "DELETE FROM console_logins WHERE state_hash IN
                     (SELECT state_hash FROM console_logins WHERE expires_ms <= {NOW_MS} LIMIT 100)"
                ),
                &[],
            )
            .await?;
            execute(
                &client,
                &format!(
                    "INSERT INTO console_logins (state_hash, nonce, pkce_verifier, return_to,
                                                 expires_ms)
                     VALUES ($1, $2, $3, $4, {NOW_MS} + $5)"
                ),
                &[
                    &login.state_hash,
                    &login.nonce,
                    &login.pkce_verifier,
                    &login.return_to,
                    &ttl,
                ],
            )
            .await?;
            Ok(())
        };
        self.bounded("storing a sign-in", begin).await
    }

    async fn login_take(&self, state_hash: &str) -> Result<Option<StartedLogin>> {
        let take = async {
            let client = self.client().await?;
            let row = query_opt(
                &client,
                &format!(
                    "DELETE FROM console_logins WHERE state_hash = $1
                     RETURNING nonce, pkce_verifier, return_to, expires_ms > {NOW_MS}"
                ),
                &[&state_hash],
            )
            .await?;
            Ok(row
                .filter(|row| row.get::<_, bool>(3))
                .map(|row| StartedLogin {
                    nonce: row.get(0),
                    pkce_verifier: row.get(1),
                    return_to: row.get(2),
                }))
        };
        self.bounded("taking a sign-in", take).await
    }
}
