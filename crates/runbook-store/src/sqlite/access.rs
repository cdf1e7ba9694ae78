//! API tokens and the audit trail in SQLite: writes through the writer, reads on blocking
//! threads; expiry compared with this process's clock (SQLite's store has one host).

use anyhow::Result;
use rusqlite::{OptionalExtension, params};

use super::runs::now_ms;
use super::{Sqlite, millis};
use crate::access::{
    AuditEvent, NewAudit, NewSession, NewToken, PendingLogin, Role, SessionRecord, StartedLogin,
    TokenRecord,
};
use crate::backend::AccessStore;
use crate::clean;
use crate::records::rfc3339;

fn text_of(ms: i64) -> String {
    rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64))
}

const TOKEN_COLUMNS: &str =
    "id, name, role, created_by, created_ms, expires_ms, revoked_ms, revoked_by";

fn token_row(r: &rusqlite::Row<'_>, now: i64) -> rusqlite::Result<TokenRecord> {
    let role: String = r.get(2)?;
    let expires_ms: Option<i64> = r.get(5)?;
    Ok(TokenRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        // A role this host does not know allows nothing above viewer.
        role: role.parse().unwrap_or(Role::Viewer),
        created_by: r.get(3)?,
        created_at: text_of(r.get(4)?),
        expires_at: expires_ms.map(text_of),
        revoked_at: r.get::<_, Option<i64>>(6)?.map(text_of),
        revoked_by: r.get(7)?,
        expired: expires_ms.is_some_and(|e| e <= now),
    })
}

const AUDIT_COLUMNS: &str = "id, at_ms, act, actor, proof, source, target, detail";

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEvent> {
    let act: String = r.get(2)?;
    Ok(AuditEvent {
        id: r.get(0)?,
        at: text_of(r.get(1)?),
        act: act.parse().map_err(|e: String| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, e.into())
        })?,
        actor: r.get(3)?,
        proof: r.get(4)?,
        source: r.get(5)?,
        target: r.get(6)?,
        detail: r.get(7)?,
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

#[async_trait::async_trait]
impl AccessStore for Sqlite {
    async fn token_create(&self, token: NewToken) -> Result<TokenRecord> {
        let name = clean::text(&token.name).into_owned();
        let by = clean::text(&token.created_by).into_owned();
        self.writer()
            .write(move |tx| {
                let now = now_ms();
                let expires = token.expires_in.map(|d| now + millis(d));
                let row = tx
                    .prepare_cached(&format!(
                        "INSERT INTO api_tokens (id, hash, name, role, created_by, created_ms,
                                                 expires_ms)
                         VALUES ('tok-' || lower(hex(randomblob(6))), ?1, ?2, ?3, ?4, ?5, ?6)
                         RETURNING {TOKEN_COLUMNS}"
                    ))?
                    .query_row(
                        params![token.hash, name, token.role.as_str(), by, now, expires],
                        |r| token_row(r, now),
                    )?;
                Ok(row)
            })
            .await
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>> {
        let hash = hash.to_string();
        self.blocking(move |conn| {
            let now = now_ms();
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE hash = ?1"
                ))?
                .query_row(params![hash], |r| token_row(r, now))
                .optional()?)
        })
        .await
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        self.blocking(|conn| {
            let now = now_ms();
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_ms DESC, id LIMIT 1000"
                ))?
                .query_map([], |r| token_row(r, now))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn token_revoke(&self, id: &str, by: &str) -> Result<bool> {
        let (id, by) = (clean::text(id).into_owned(), clean::text(by).into_owned());
        self.writer()
            .write(move |tx| {
                let n = tx
                    .prepare_cached(
                        "UPDATE api_tokens SET revoked_ms = ?2, revoked_by = ?3
                         WHERE (id = ?1 OR name = ?1) AND revoked_ms IS NULL",
                    )?
                    .execute(params![id, now_ms(), by])?;
                Ok(n > 0)
            })
            .await
    }

    async fn audit_append(&self, event: NewAudit) -> Result<AuditEvent> {
        let e = cleaned(event);
        self.writer()
            .write(move |tx| {
                let row = tx
                    .prepare_cached(&format!(
                        "INSERT INTO audit_events (at_ms, act, actor, proof, source, target, detail)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         RETURNING {AUDIT_COLUMNS}"
                    ))?
                    .query_row(
                        params![
                            now_ms(),
                            e.act.as_str(),
                            e.actor,
                            e.proof,
                            e.source,
                            e.target,
                            e.detail
                        ],
                        audit_row,
                    )?;
                Ok(row)
            })
            .await
    }

    async fn audit_since(&self, since_ms: i64, limit: usize) -> Result<Vec<AuditEvent>> {
        self.blocking(move |conn| {
            let mut rows: Vec<AuditEvent> = conn
                .prepare_cached(&format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE at_ms >= ?1
                     ORDER BY id DESC LIMIT ?2"
                ))?
                .query_map(params![since_ms, limit.min(100_000) as i64], audit_row)?
                .collect::<rusqlite::Result<_>>()?;
            rows.reverse();
            Ok(rows)
        })
        .await
    }

    async fn audit_unshipped(
        &self,
        sink: &str,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<AuditEvent>> {
        // The key as the outbox stores it (enqueue cleans its once key the same way).
        let sink = clean::text(sink).into_owned();
        self.blocking(move |conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_events a WHERE at_ms >= ?1
                       AND NOT EXISTS (SELECT 1 FROM outbox o
                                       WHERE o.once_key = 'audit-' || a.id || '-' || ?2)
                     ORDER BY id LIMIT ?3"
                ))?
                .query_map(
                    params![since_ms, sink, limit.min(100_000) as i64],
                    audit_row,
                )?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn session_create(&self, session: NewSession) -> Result<()> {
        let groups = serde_json::to_string(&session.groups)?;
        let (subject, name) = (
            clean::text(&session.subject).into_owned(),
            clean::text(&session.name).into_owned(),
        );
        self.writer()
            .write(move |tx| {
                let now = now_ms();
                // Expired sessions go a few at a time, so no sign-in waits on a long sweep.
                tx.prepare_cached(
                    "DELETE FROM console_sessions WHERE hash IN
                     (SELECT hash FROM console_sessions WHERE expires_ms <= ?1 LIMIT 100)",
                )?
                .execute(params![now])?;
                tx.prepare_cached(
                    "INSERT INTO console_sessions (hash, subject, name, groups, created_ms,
                                                   expires_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    session.hash,
                    subject,
                    name,
                    groups,
                    now,
                    now + millis(session.ttl)
                ])?;
                Ok(())
            })
            .await
    }

    async fn session_by_hash(&self, hash: &str) -> Result<Option<SessionRecord>> {
        let hash = hash.to_string();
        self.blocking(move |conn| {
            let row = conn
                .prepare_cached(
                    "SELECT subject, name, groups, expires_ms FROM console_sessions
                     WHERE hash = ?1 AND expires_ms > ?2",
                )?
                .query_row(params![hash, now_ms()], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })
                .optional()?;
            row.map(|(subject, name, groups, expires)| {
                Ok(SessionRecord {
                    subject,
                    name,
                    groups: serde_json::from_str(&groups)?,
                    expires_at: text_of(expires),
                })
            })
            .transpose()
        })
        .await
    }

    async fn session_delete(&self, hash: &str) -> Result<bool> {
        let hash = hash.to_string();
        self.writer()
            .write(move |tx| {
                let n = tx
                    .prepare_cached("DELETE FROM console_sessions WHERE hash = ?1")?
                    .execute(params![hash])?;
                Ok(n > 0)
            })
            .await
    }

    async fn login_begin(&self, login: PendingLogin) -> Result<()> {
        self.writer()
            .write(move |tx| {
                let now = now_ms();
                tx.prepare_cached(
                    "DELETE FROM console_logins WHERE state_hash IN
                     (SELECT state_hash FROM console_logins WHERE expires_ms <= ?1 LIMIT 100)",
                )?
                .execute(params![now])?;
                tx.prepare_cached(
                    "INSERT INTO console_logins (state_hash, nonce, pkce_verifier, return_to,
                                                 expires_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    login.state_hash,
                    login.nonce,
                    login.pkce_verifier,
                    login.return_to,
                    now + millis(login.ttl)
                ])?;
                Ok(())
            })
            .await
    }

    async fn login_take(&self, state_hash: &str) -> Result<Option<StartedLogin>> {
        let state_hash = state_hash.to_string();
        self.writer()
            .write(move |tx| {
                let taken = tx
                    .prepare_cached(
                        "DELETE FROM console_logins WHERE state_hash = ?1
                         RETURNING nonce, pkce_verifier, return_to, expires_ms",
                    )?
                    .query_row(params![state_hash], |r| {
                        Ok((
                            StartedLogin {
                                nonce: r.get(0)?,
                                pkce_verifier: r.get(1)?,
                                return_to: r.get(2)?,
                            },
                            r.get::<_, i64>(3)?,
                        ))
                    })
                    .optional()?;
                Ok(taken
                    .filter(|(_, expires)| *expires > now_ms())
                    .map(|(login, _)| login))
            })
            .await
    }
}
