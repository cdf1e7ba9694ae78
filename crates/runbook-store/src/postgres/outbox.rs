//! The notification outbox and Standard Webhooks replay ids on PostgreSQL. A channel's head
//! is leased by one worker of one replica at a time (a guarded `UPDATE` re-checked under the
//! row lock), channels stay in order, and a `once_key` makes a message queued by two replicas
//! go out once.

use std::time::Duration;

use super::sql::Db;
use anyhow::Result;
use tokio_postgres::Row;

use super::runs::{execute, query, query_opt};
use super::{Postgres, index_key, secs};
use crate::backend::Outbox;
use crate::clean;
use crate::clean::Clean;
use crate::records::{Claim, NewMessage, OutboxRow};

const ROW_COLUMNS: &str = "id, run_id, channel, kind, payload, dedup_key, event_action, state, \
     attempts, parts_sent, last_error, created_at, delivered_at, attempted_at, \
     (extract(epoch FROM next_attempt) * 1000)::int8";

/// Prune replay ids past their window once per this many deliveries.
const PRUNE_EVERY: u32 = 256;

fn outbox_row(r: &Row) -> OutboxRow {
    let payload: String = r.get(4);
    OutboxRow {
        id: r.get(0),
        run_id: r.get(1),
        channel: r.get(2),
        kind: r.get(3),
        title: OutboxRow::title_of(&payload),
        payload,
        dedup_key: r.get(5),
        event_action: r.get(6),
        state: r.get(7),
        attempts: r.get(8),
        parts_sent: r.get(9),
        last_error: r.get(10),
        created_at: r.get(11),
        delivered_at: r.get(12),
        attempted_at: r.get(13),
        next_attempt_at: OutboxRow::next_attempt(r.get(7), r.get(14)),
    }
}

pub(super) async fn first_delivery(pg: &Postgres, id: &str, window: Duration) -> Result<bool> {
    let id = index_key(id);
    let client = pg.client().await?;
    let first = query_opt(
        &client,
        "INSERT INTO replay_ids (id, seen_at) VALUES ($1, now())
         ON CONFLICT (id) DO UPDATE SET seen_at = now()
             WHERE replay_ids.seen_at < now() - $2::float8 * interval '1 second'
         RETURNING 1",
        &[&id, &secs(window)],
    )
    .await?
    .is_some();
    let calls = pg
        .replay_calls
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if calls % PRUNE_EVERY == PRUNE_EVERY - 1 {
        execute(
            &client,
            // SKIP LOCKED: two replicas pruning at once never wait on each other.
            "DELETE FROM replay_ids r USING (
                 SELECT id FROM replay_ids
                 WHERE seen_at < now() - $1::float8 * interval '1 second'
                 LIMIT 10000 FOR UPDATE SKIP LOCKED) old
             WHERE r.id = old.id",
            &[&secs(window)],
        )
        .await?;
    }
    Ok(first)
}

pub(super) async fn enqueue(
    pg: &Postgres,
    message: NewMessage,
    once_key: Option<String>,
    held_for: Option<Duration>,
) -> Result<(i64, bool)> {
    let once_key = once_key.as_deref().map(index_key);
    let held = held_for.map(secs);
    let client = pg.client().await?;
    // A held row is leased to its caller from the start (attempt 1 under way): no worker
    // takes it unless the caller dies before marking it.
    let inserted = query_opt(
        &client,
        "INSERT INTO outbox (run_id, channel, kind, payload, dedup_key, event_action, state,
                             created_at, once_key, lease_until, attempts, attempted_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8,
                 now() + $9::float8 * interval '1 second',
                 CASE WHEN $9::float8 IS NULL THEN 0 ELSE 1 END,
                 CASE WHEN $9::float8 IS NULL THEN NULL ELSE runbook_now_text() END)
         ON CONFLICT (once_key) WHERE once_key IS NOT NULL DO NOTHING
         RETURNING id",
        &[
            &message.run_id,
            &message.channel,
            &message.kind,
            &message.payload.to_string(),
            &message.dedup_key,
            &message.event_action,
            &message.created_at,
            &once_key,
            &held,
        ],
    )
    .await?;
    if let Some(row) = inserted {
        return Ok((row.get(0), true));
    }
    // The conflict waited for the other insert to commit: its row is there now.
    let first = query_opt(
        &client,
        "SELECT id FROM outbox WHERE once_key = $1",
        &[&once_key],
    )
    .await?;
    first
        .map(|r| (r.get(0), false))
        .ok_or_else(|| anyhow::anyhow!("the outbox refused a message with no row to show for it"))
}

pub(super) async fn claim_head(pg: &Postgres, channel: &str, lease: Duration) -> Result<Claim> {
    let client = pg.client().await?;
    // Another worker can change the head between the look and the lease; the lease's own
    // conditions decide (re-checked under the row lock), so a few looks are enough.
    for _ in 0..3 {
        let head = query_opt(
            &client,
            "SELECT id, extract(epoch FROM
                        greatest(next_attempt, coalesce(lease_until, '-infinity')) - now())::float8
             FROM outbox WHERE channel = $1 AND state = 'pending' ORDER BY id LIMIT 1",
            &[&channel],
        )
        .await?;
        let Some(head) = head else {
            return Ok(Claim::Empty);
        };
        let (id, wait): (i64, f64) = (head.get(0), head.get(1));
        if wait > 0.0 {
            return Ok(Claim::Wait(Duration::from_secs_f64(wait)));
        }
        let leased = query_opt(
            &client,
            &format!(
                "UPDATE outbox SET lease_until = now() + $2::float8 * interval '1 second',
                     attempts = attempts + 1, attempted_at = runbook_now_text()
                 WHERE id = $1 AND state = 'pending' AND next_attempt <= now()
                   AND (lease_until IS NULL OR lease_until <= now())
                 RETURNING {ROW_COLUMNS}"
            ),
            &[&id, &secs(lease)],
        )
        .await?;
        if let Some(row) = leased {
            return Ok(Claim::Due(Box::new(outbox_row(&row))));
        }
    }
    Ok(Claim::Wait(Duration::from_millis(50)))
}

pub(super) async fn mark_parts_sent(pg: &Postgres, id: i64, parts: i64) -> Result<()> {
    execute(
        &pg.client().await?,
        "UPDATE outbox SET parts_sent = $2 WHERE id = $1",
        &[&id, &parts],
    )
    .await?;
    Ok(())
}

pub(super) async fn mark_delivered(pg: &Postgres, id: i64) -> Result<()> {
    execute(
        &pg.client().await?,
        "UPDATE outbox SET state = 'delivered', delivered_at = runbook_now_text(),
             lease_until = NULL, last_error = NULL, attempts = greatest(attempts, 1)
         WHERE id = $1",
        &[&id],
    )
    .await?;
    Ok(())
}

pub(super) async fn mark_retry(pg: &Postgres, id: i64, after: Duration, error: &str) -> Result<()> {
    execute(
        &pg.client().await?,
        "UPDATE outbox SET next_attempt = now() + $2::float8 * interval '1 second',
             lease_until = NULL, last_error = $3
         WHERE id = $1",
        &[&id, &secs(after), &error],
    )
    .await?;
    Ok(())
}

pub(super) async fn mark_failed(pg: &Postgres, id: i64, error: &str) -> Result<()> {
    execute(
        &pg.client().await?,
        "UPDATE outbox SET state = 'failed', lease_until = NULL, last_error = $2,
             attempts = greatest(attempts, 1)
         WHERE id = $1",
        &[&id, &error],
    )
    .await?;
    Ok(())
}

pub(super) async fn retry(pg: &Postgres, id: i64) -> Result<bool> {
    let changed = execute(
        &pg.client().await?,
        "UPDATE outbox SET state = 'pending', next_attempt = now(), lease_until = NULL
         WHERE id = $1 AND state = 'failed'",
        &[&id],
    )
    .await?;
    Ok(changed == 1)
}

pub(super) async fn rows_for_run(c: &impl Db, run_id: &str) -> Result<Vec<OutboxRow>> {
    let rows = query(
        c,
        &format!("SELECT {ROW_COLUMNS} FROM outbox WHERE run_id = $1 ORDER BY id"),
        &[&run_id],
    )
    .await?;
    Ok(rows.iter().map(outbox_row).collect())
}

pub(super) async fn for_run(pg: &Postgres, run_id: &str) -> Result<Vec<OutboxRow>> {
    rows_for_run(&pg.client().await?, run_id).await
}

pub(super) async fn row(pg: &Postgres, id: i64) -> Result<Option<OutboxRow>> {
    let row = query_opt(
        &pg.client().await?,
        &format!("SELECT {ROW_COLUMNS} FROM outbox WHERE id = $1"),
        &[&id],
    )
    .await?;
    Ok(row.as_ref().map(outbox_row))
}

pub(super) async fn list(
    pg: &Postgres,
    state: Option<&str>,
    limit: usize,
) -> Result<Vec<OutboxRow>> {
    let rows = query(
        &pg.client().await?,
        &format!(
            "SELECT {ROW_COLUMNS} FROM outbox WHERE $1::text IS NULL OR state = $1
             ORDER BY id DESC LIMIT $2"
        ),
        &[&state, &(limit as i64)],
    )
    .await?;
    Ok(rows.iter().map(outbox_row).collect())
}

pub(super) async fn pending(pg: &Postgres) -> Result<Vec<(String, i64)>> {
    let rows = query(
        &pg.client().await?,
        "SELECT channel, count(*) FROM outbox WHERE state = 'pending'
         GROUP BY channel ORDER BY channel",
        &[],
    )
    .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

pub(super) async fn last_for_dedup_key(
    pg: &Postgres,
    channel: &str,
    dedup_key: &str,
) -> Result<Option<OutboxRow>> {
    let row = query_opt(
        &pg.client().await?,
        &format!(
            "SELECT {ROW_COLUMNS} FROM outbox WHERE channel = $1 AND dedup_key = $2
             ORDER BY id DESC LIMIT 1"
        ),
        &[&channel, &dedup_key],
    )
    .await?;
    Ok(row.as_ref().map(outbox_row))
}

#[async_trait::async_trait]
impl Outbox for Postgres {
    async fn enqueue(&self, message: NewMessage, once_key: Option<String>) -> Result<i64> {
        let (message, once_key) = (message.cleaned(), once_key.cleaned());
        self.bounded("queueing a message", enqueue(self, message, once_key, None))
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
        let queue = enqueue(self, message, once_key, Some(lease));
        self.bounded("queueing a message", queue).await
    }

    async fn claim_head(&self, channel: &str, lease: Duration) -> Result<Claim> {
        self.bounded("claiming a message", claim_head(self, channel, lease))
            .await
    }

    async fn mark_parts_sent(&self, id: i64, parts: i64) -> Result<()> {
        self.bounded("updating a message", mark_parts_sent(self, id, parts))
            .await
    }

    async fn mark_delivered(&self, id: i64) -> Result<()> {
        self.bounded("updating a message", mark_delivered(self, id))
            .await
    }

    async fn mark_retry(&self, id: i64, after: Duration, error: &str) -> Result<()> {
        let error = &*clean::text(error);
        self.bounded("updating a message", mark_retry(self, id, after, error))
            .await
    }

    async fn mark_failed(&self, id: i64, error: &str) -> Result<()> {
        let error = &*clean::text(error);
        self.bounded("updating a message", mark_failed(self, id, error))
            .await
    }

    async fn outbox_retry(&self, id: i64) -> Result<bool> {
        self.bounded("retrying a message", retry(self, id)).await
    }

    async fn outbox_for_run(&self, run_id: &str) -> Result<Vec<OutboxRow>> {
        self.bounded("reading the outbox", for_run(self, run_id))
            .await
    }

    async fn outbox_row(&self, id: i64) -> Result<Option<OutboxRow>> {
        self.bounded("reading the outbox", row(self, id)).await
    }

    async fn outbox_list(&self, state: Option<&str>, limit: usize) -> Result<Vec<OutboxRow>> {
        self.bounded("reading the outbox", list(self, state, limit))
            .await
    }

    async fn outbox_pending(&self) -> Result<Vec<(String, i64)>> {
        self.bounded("reading the outbox", pending(self)).await
    }

    async fn last_for_dedup_key(
        &self,
        channel: &str,
        dedup_key: &str,
    ) -> Result<Option<OutboxRow>> {
        let dedup_key = &*clean::text(dedup_key);
        self.bounded(
            "reading the outbox",
            last_for_dedup_key(self, channel, dedup_key),
        )
        .await
    }
}
