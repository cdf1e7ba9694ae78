//! The notification outbox: a message is a row before anyone tries to send it, so a crash, a
//! 500 or a restart loses nothing. Workers claim a channel's oldest pending row under a lease
//! (so two host processes sharing the store never send the same row at once) and keep each
//! channel in order: a PagerDuty resolve never overtakes its trigger.

use anyhow::Result;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use super::Store;

pub struct NewMessage<'a> {
    pub run_id: Option<&'a str>,
    pub channel: &'a str,
    pub kind: &'a str,
    pub payload: &'a serde_json::Value,
    pub dedup_key: Option<&'a str>,
    pub event_action: Option<&'a str>,
    pub created_at: &'a str,
    pub now_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub run_id: Option<String>,
    pub channel: String,
    pub kind: String,
    #[serde(skip)]
    pub payload: String,
    pub title: String,
    pub dedup_key: Option<String>,
    pub event_action: Option<String>,
    pub state: String,
    pub attempts: i64,
    pub parts_sent: i64,
    pub last_error: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
}

/// What a worker finds at the head of its channel.
pub enum Claim {
    /// Nothing pending.
    Empty,
    /// The head is backing off or leased by another worker until this unix-ms time.
    NotBefore(i64),
    /// Yours until the lease ends; `attempts` already counts this attempt.
    Due(Box<OutboxRow>),
}

const ROW_COLUMNS: &str = "id, run_id, channel, kind, payload, dedup_key, event_action, state, \
     attempts, parts_sent, last_error, created_at, delivered_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    let payload: String = r.get(4)?;
    let title = serde_json::from_str::<serde_json::Value>(&payload)
        .ok()
        .and_then(|v| v["title"].as_str().map(String::from))
        .unwrap_or_default();
    Ok(OutboxRow {
        id: r.get(0)?,
        run_id: r.get(1)?,
        channel: r.get(2)?,
        kind: r.get(3)?,
        payload,
        title,
        dedup_key: r.get(5)?,
        event_action: r.get(6)?,
        state: r.get(7)?,
        attempts: r.get(8)?,
        parts_sent: r.get(9)?,
        last_error: r.get(10)?,
        created_at: r.get(11)?,
        delivered_at: r.get(12)?,
    })
}

pub(super) fn rows_for_run(conn: &rusqlite::Connection, run_id: &str) -> Result<Vec<OutboxRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ROW_COLUMNS} FROM outbox WHERE run_id = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map(params![run_id], row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

impl Store {
    pub fn enqueue(&self, message: &NewMessage<'_>) -> Result<i64> {
        let conn = self.conn.lock().unwrap();
        conn.execute(
            "INSERT INTO outbox (run_id, channel, kind, payload, dedup_key, event_action, state,
                                 next_attempt_ms, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8)",
            params![
                message.run_id,
                message.channel,
                message.kind,
                message.payload.to_string(),
                message.dedup_key,
                message.event_action,
                message.now_ms,
                message.created_at,
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Takes the channel's oldest pending row if it is due and nobody holds it.
    pub fn claim_head(&self, channel: &str, now_ms: i64, lease_ms: i64) -> Result<Claim> {
        let mut conn = self.conn.lock().unwrap();
        // IMMEDIATE: the read and the lease are one step even across host processes.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let head: Option<(i64, i64, Option<i64>)> = tx
            .query_row(
                "SELECT id, next_attempt_ms, lease_until_ms FROM outbox
                 WHERE channel = ?1 AND state = 'pending' ORDER BY id LIMIT 1",
                params![channel],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((id, next_attempt, lease_until)) = head else {
            return Ok(Claim::Empty);
        };
        let not_before = next_attempt.max(lease_until.unwrap_or(0));
        if not_before > now_ms {
            return Ok(Claim::NotBefore(not_before));
        }
        tx.execute(
            "UPDATE outbox SET lease_until_ms = ?2, attempts = attempts + 1 WHERE id = ?1",
            params![id, now_ms + lease_ms],
        )?;
        let claimed = tx.query_row(
            &format!("SELECT {ROW_COLUMNS} FROM outbox WHERE id = ?1"),
            params![id],
            row,
        )?;
        tx.commit()?;
        Ok(Claim::Due(Box::new(claimed)))
    }

    /// A multi-part message (Telegram splits long text) remembers which parts went out, so a
    /// retry sends only the rest.
    pub fn mark_parts_sent(&self, id: i64, parts: i64) -> Result<()> {
        let conn = self.conn.lock().unwrap();
        conn.execute(
            "UPDATE outbox SET parts_sent = ?2 WHERE id = ?1",
            params![id, parts],
        )?;
        Ok(())
    }

    pub fn mark_delivered(&self, id: i64, at: &str) -> Result<()> {
        let conn = self.conn.lock().unwrap();
        conn.execute(
            "UPDATE outbox SET state = 'delivered', delivered_at = ?2, lease_until_ms = NULL,
                 last_error = NULL, attempts = MAX(attempts, 1)
             WHERE id = ?1",
            params![id, at],
        )?;
        Ok(())
    }

    pub fn mark_retry(&self, id: i64, next_attempt_ms: i64, error: &str) -> Result<()> {
        let conn = self.conn.lock().unwrap();
        conn.execute(
            "UPDATE outbox SET next_attempt_ms = ?2, lease_until_ms = NULL, last_error = ?3
             WHERE id = ?1",
            params![id, next_attempt_ms, error],
        )?;
        Ok(())
    }

    pub fn mark_failed(&self, id: i64, error: &str) -> Result<()> {
        let conn = self.conn.lock().unwrap();
        conn.execute(
            "UPDATE outbox SET state = 'failed', lease_until_ms = NULL, last_error = ?2,
                 attempts = MAX(attempts, 1)
             WHERE id = ?1",
            params![id, error],
        )?;
        Ok(())
    }

    pub fn outbox_for_run(&self, run_id: &str) -> Result<Vec<OutboxRow>> {
        rows_for_run(&self.conn.lock().unwrap(), run_id)
    }

    pub fn outbox_row(&self, id: i64) -> Result<Option<OutboxRow>> {
        let conn = self.conn.lock().unwrap();
        Ok(conn
            .query_row(
                &format!("SELECT {ROW_COLUMNS} FROM outbox WHERE id = ?1"),
                params![id],
                row,
            )
            .optional()?)
    }

    /// Newest first; `state` filters (pending, delivered, failed).
    pub fn outbox_list(&self, state: Option<&str>, limit: usize) -> Result<Vec<OutboxRow>> {
        let conn = self.conn.lock().unwrap();
        let mut stmt = conn.prepare(&format!(
            "SELECT {ROW_COLUMNS} FROM outbox WHERE ?1 IS NULL OR state = ?1
             ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![state, limit as i64], row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Pending rows per channel.
    pub fn outbox_pending(&self) -> Result<Vec<(String, i64)>> {
        let conn = self.conn.lock().unwrap();
        let mut stmt = conn.prepare(
            "SELECT channel, count(*) FROM outbox WHERE state = 'pending'
             GROUP BY channel ORDER BY channel",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The newest message queued to `channel` under `dedup_key`, so an alert's resolve is sent
    /// only where its trigger went.
    pub fn last_for_dedup_key(&self, channel: &str, dedup_key: &str) -> Result<Option<OutboxRow>> {
        let conn = self.conn.lock().unwrap();
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message<'a>(payload: &'a serde_json::Value, now_ms: i64) -> NewMessage<'a> {
        NewMessage {
            run_id: Some("r1"),
            channel: "ops",
            kind: "slack",
            payload,
            dedup_key: Some("k"),
            event_action: Some("trigger"),
            created_at: "2026-11-25T10:00:00Z",
            now_ms,
        }
    }

    #[test]
    fn the_head_is_leased_once_and_order_is_kept() {
        let store = Store::open_in_memory().unwrap();
        let payload = serde_json::json!({"title": "first"});
        let first = store.enqueue(&message(&payload, 1_000)).unwrap();
        let second = store.enqueue(&message(&payload, 1_000)).unwrap();

        let Claim::Due(row) = store.claim_head("ops", 1_000, 60_000).unwrap() else {
            panic!("the head should be due")
        };
        assert_eq!(
            (row.id, row.attempts, row.title.as_str()),
            (first, 1, "first")
        );
        // Leased: a second worker waits instead of sending the same row, and does not skip it.
        assert!(matches!(
            store.claim_head("ops", 2_000, 60_000).unwrap(),
            Claim::NotBefore(61_000)
        ));
        store.mark_retry(first, 5_000, "500").unwrap();
        assert!(matches!(
            store.claim_head("ops", 4_999, 60_000).unwrap(),
            Claim::NotBefore(5_000)
        ));
        let Claim::Due(row) = store.claim_head("ops", 5_000, 60_000).unwrap() else {
            panic!("due after backoff")
        };
        assert_eq!((row.id, row.attempts), (first, 2));
        store.mark_delivered(first, "now").unwrap();
        let Claim::Due(row) = store.claim_head("ops", 5_000, 60_000).unwrap() else {
            panic!("second is next")
        };
        assert_eq!(row.id, second);
        store.mark_failed(second, "400 invalid_payload").unwrap();
        assert!(matches!(
            store.claim_head("ops", 5_000, 60_000).unwrap(),
            Claim::Empty
        ));
        let states: Vec<String> = store
            .outbox_for_run("r1")
            .unwrap()
            .into_iter()
            .map(|r| format!("{}:{}", r.state, r.last_error.unwrap_or_default()))
            .collect();
        assert_eq!(states, ["delivered:", "failed:400 invalid_payload"]);
    }
}
