//! The notification outbox in SQLite: a message is a row before anyone tries to send it, so a
//! crash, a 500 or a restart loses nothing. Workers claim a channel's oldest pending row under
//! a lease (two processes on the file never send the same row at once) and keep each channel
//! in order: a PagerDuty resolve never overtakes its trigger.

use std::time::Duration;

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::Sqlite;
use crate::backend::Outbox;
use crate::clean;
use crate::clean::Clean;
use crate::records::{Claim, NewMessage, OutboxRow, now_ms, now_rfc3339};

const ROW_COLUMNS: &str = "id, run_id, channel, kind, payload, dedup_key, event_action, state, \
     attempts, parts_sent, last_error, created_at, delivered_at, attempted_at, next_attempt_ms";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    let payload: String = r.get(4)?;
    Ok(OutboxRow {
        id: r.get(0)?,
        run_id: r.get(1)?,
        channel: r.get(2)?,
        kind: r.get(3)?,
        title: OutboxRow::title_of(&payload),
        payload,
        dedup_key: r.get(5)?,
        event_action: r.get(6)?,
        state: r.get(7)?,
        attempts: r.get(8)?,
        parts_sent: r.get(9)?,
        last_error: r.get(10)?,
        created_at: r.get(11)?,
        delivered_at: r.get(12)?,
        attempted_at: r.get(13)?,
        next_attempt_at: OutboxRow::next_attempt(&r.get::<_, String>(7)?, r.get(14)?),
    })
}

pub(super) fn rows_for_run(conn: &Connection, run_id: &str) -> Result<Vec<OutboxRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ROW_COLUMNS} FROM outbox WHERE run_id = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map(params![run_id], row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn enqueue(
    conn: &Connection,
    message: &NewMessage,
    once_key: Option<&str>,
    held_for: Option<Duration>,
) -> Result<(i64, bool)> {
    let now = now_ms();
    // A held row is leased to its caller from the start (attempt 1 under way): no worker
    // takes it unless the caller dies before marking it.
    let (lease_until, attempts, attempted_at) = match held_for {
        Some(lease) => (Some(now + lease.as_millis() as i64), 1, Some(now_rfc3339())),
        None => (None, 0, None),
    };
    let inserted = conn
        .prepare_cached(
            "INSERT INTO outbox (run_id, channel, kind, payload, dedup_key, event_action, state,
                                 next_attempt_ms, created_at, once_key, lease_until_ms,
                                 attempts, attempted_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (once_key) DO NOTHING",
        )?
        .execute(params![
            message.run_id,
            message.channel,
            message.kind,
            message.payload.to_string(),
            message.dedup_key,
            message.event_action,
            now,
            message.created_at,
            once_key,
            lease_until,
            attempts,
            attempted_at,
        ])?;
    if inserted == 1 {
        return Ok((conn.last_insert_rowid(), true));
    }
    let first = conn.query_row(
        "SELECT id FROM outbox WHERE once_key = ?1",
        params![once_key],
        |r| r.get(0),
    )?;
    Ok((first, false))
}

/// Takes the channel's oldest pending row if it is due and nobody holds it.
pub(super) fn claim_head(conn: &mut Connection, channel: &str, lease: Duration) -> Result<Claim> {
    // IMMEDIATE: the read and the lease are one step even across processes.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_ms();
    let head: Option<(i64, i64, Option<i64>)> = tx
        .prepare_cached(
            "SELECT id, next_attempt_ms, lease_until_ms FROM outbox
             WHERE channel = ?1 AND state = 'pending' ORDER BY id LIMIT 1",
        )?
        .query_row(params![channel], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((id, next_attempt, lease_until)) = head else {
        return Ok(Claim::Empty);
    };
    let not_before = next_attempt.max(lease_until.unwrap_or(0));
    if not_before > now {
        return Ok(Claim::Wait(Duration::from_millis(
            (not_before - now) as u64,
        )));
    }
    tx.execute(
        "UPDATE outbox SET lease_until_ms = ?2, attempts = attempts + 1, attempted_at = ?3
         WHERE id = ?1",
        params![id, now + lease.as_millis() as i64, now_rfc3339()],
    )?;
    let claimed = tx.query_row(
        &format!("SELECT {ROW_COLUMNS} FROM outbox WHERE id = ?1"),
        params![id],
        row,
    )?;
    tx.commit()?;
    Ok(Claim::Due(Box::new(claimed)))
}

pub(super) fn mark_parts_sent(conn: &Connection, id: i64, parts: i64) -> Result<()> {
    conn.execute(
        "UPDATE outbox SET parts_sent = ?2 WHERE id = ?1",
        params![id, parts],
    )?;
    Ok(())
}

pub(super) fn mark_delivered(conn: &Connection, id: i64) -> Result<()> {
    conn.execute(
        "UPDATE outbox SET state = 'delivered', delivered_at = ?2, lease_until_ms = NULL,
             last_error = NULL, attempts = MAX(attempts, 1)
         WHERE id = ?1",
        params![id, now_rfc3339()],
    )?;
    Ok(())
}

pub(super) fn mark_retry(conn: &Connection, id: i64, after: Duration, error: &str) -> Result<()> {
    conn.execute(
        "UPDATE outbox SET next_attempt_ms = ?2, lease_until_ms = NULL, last_error = ?3
         WHERE id = ?1",
        params![id, now_ms() + after.as_millis() as i64, error],
    )?;
    Ok(())
}

pub(super) fn mark_failed(conn: &Connection, id: i64, error: &str) -> Result<()> {
    conn.execute(
        "UPDATE outbox SET state = 'failed', lease_until_ms = NULL, last_error = ?2,
             attempts = MAX(attempts, 1)
         WHERE id = ?1",
        params![id, error],
    )?;
    Ok(())
}

pub(super) fn retry(conn: &Connection, id: i64) -> Result<bool> {
    let changed = conn.execute(
        "UPDATE outbox SET state = 'pending', next_attempt_ms = ?2, lease_until_ms = NULL
         WHERE id = ?1 AND state = 'failed'",
        params![id, now_ms()],
    )?;
    Ok(changed == 1)
}

pub(super) fn row_by_id(conn: &Connection, id: i64) -> Result<Option<OutboxRow>> {
    Ok(conn
        .query_row(
            &format!("SELECT {ROW_COLUMNS} FROM outbox WHERE id = ?1"),
            params![id],
            row,
        )
        .optional()?)
}

pub(super) fn list(conn: &Connection, state: Option<&str>, limit: usize) -> Result<Vec<OutboxRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ROW_COLUMNS} FROM outbox WHERE ?1 IS NULL OR state = ?1
         ORDER BY id DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![state, limit as i64], row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn pending(conn: &Connection) -> Result<Vec<(String, i64)>> {
    let mut stmt = conn.prepare(
        "SELECT channel, count(*) FROM outbox WHERE state = 'pending'
         GROUP BY channel ORDER BY channel",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn last_for_dedup_key(
    conn: &Connection,
    channel: &str,
    dedup_key: &str,
) -> Result<Option<OutboxRow>> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {ROW_COLUMNS} FROM outbox WHERE channel = ?1 AND dedup_key = ?2
                 ORDER BY id DESC LIMIT 1"
            ),
            params![channel, dedup_key],
            row,
        )
        .optional()?)
}

#[async_trait::async_trait]
impl Outbox for Sqlite {
    async fn enqueue(&self, message: NewMessage, once_key: Option<String>) -> Result<i64> {
        let (message, once_key) = (message.cleaned(), once_key.cleaned());
        self.blocking(move |conn| enqueue(conn, &message, once_key.as_deref(), None))
            .await
            .map(|(id, _)| id)
    }

    async fn enqueue_held(
        &self,
        message: NewMessage,
        once_key: Option<String>,
        lease: Duration,
    ) -> Result<(i64, bool)> {
        let (message, once_key) = (message.cleaned(), once_key.cleaned());
        self.blocking(move |conn| enqueue(conn, &message, once_key.as_deref(), Some(lease)))
            .await
    }

    async fn claim_head(&self, channel: &str, lease: Duration) -> Result<Claim> {
        let channel = channel.to_string();
        self.blocking(move |conn| claim_head(conn, &channel, lease))
            .await
    }

    async fn mark_parts_sent(&self, id: i64, parts: i64) -> Result<()> {
        self.blocking(move |conn| mark_parts_sent(conn, id, parts))
            .await
    }

    async fn mark_delivered(&self, id: i64) -> Result<()> {
        self.blocking(move |conn| mark_delivered(conn, id)).await
    }

    async fn mark_retry(&self, id: i64, after: Duration, error: &str) -> Result<()> {
        let error = &*clean::text(error);
        let error = error.to_string();
        self.blocking(move |conn| mark_retry(conn, id, after, &error))
            .await
    }

    async fn mark_failed(&self, id: i64, error: &str) -> Result<()> {
        let error = &*clean::text(error);
        let error = error.to_string();
        self.blocking(move |conn| mark_failed(conn, id, &error))
            .await
    }

    async fn outbox_for_run(&self, run_id: &str) -> Result<Vec<OutboxRow>> {
        let run_id = run_id.to_string();
        self.blocking(move |conn| rows_for_run(conn, &run_id)).await
    }

    async fn outbox_retry(&self, id: i64) -> Result<bool> {
        self.blocking(move |conn| retry(conn, id)).await
    }

    async fn outbox_row(&self, id: i64) -> Result<Option<OutboxRow>> {
        self.blocking(move |conn| row_by_id(conn, id)).await
    }

    async fn outbox_list(&self, state: Option<&str>, limit: usize) -> Result<Vec<OutboxRow>> {
        let state = state.map(String::from);
        self.blocking(move |conn| list(conn, state.as_deref(), limit))
            .await
    }

    async fn outbox_pending(&self) -> Result<Vec<(String, i64)>> {
        self.blocking(|conn| pending(conn)).await
    }

    async fn last_for_dedup_key(
        &self,
        channel: &str,
        dedup_key: &str,
    ) -> Result<Option<OutboxRow>> {
        let dedup_key = &*clean::text(dedup_key);
        let (channel, dedup_key) = (channel.to_string(), dedup_key.to_string());
        self.blocking(move |conn| last_for_dedup_key(conn, &channel, &dedup_key))
            .await
    }
}
