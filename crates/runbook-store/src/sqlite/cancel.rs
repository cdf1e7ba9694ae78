//! Stopping runs on request (`Backend::cancel_run`), in the writer's transaction: the status
//! read and the change are one step for every process on the file.

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, params};

use super::Sqlite;
use crate::backend::Cancels;
use crate::records::{Cancelled, RunStatus, cancel_event, cancelled_by, now_rfc3339};

pub(super) fn cancel_run(conn: &Connection, id: &str, by: &str) -> Result<Cancelled> {
    let row = conn
        .query_row(
            "SELECT status, playbook, node, cancel_by, started_at FROM runs WHERE id = ?1",
            params![id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                ))
            },
        )
        .optional()?;
    let Some((status, playbook, node, asked, started_at)) = row else {
        return Ok(Cancelled::NotFound);
    };
    let status: RunStatus = status.parse().map_err(anyhow::Error::msg)?;
    match (status, node, asked) {
        (RunStatus::Running, _, Some(by)) => Ok(Cancelled::AlreadyAsked { by }),
        (RunStatus::Running, None, None) => {
            conn.execute(
                "UPDATE runs SET cancel_by = ?2 WHERE id = ?1",
                params![id, by],
            )?;
            Ok(Cancelled::Asked { playbook })
        }
        // Not started, or executed by an agent that writes only while it holds the run.
        (RunStatus::Queued, _, _) | (RunStatus::Running, Some(_), None) => {
            let why = cancelled_by(by);
            conn.execute(
                "UPDATE runs SET status = 'cancelled', reason = ?2, summary = ?2, ended_at = ?3,
                     cancel_by = ?4, lease_until_ms = NULL, holds_slot = 0
                 WHERE id = ?1",
                params![id, why, now_rfc3339(), by],
            )?;
            conn.execute(
                "INSERT INTO events (run_id, seq, event)
                 SELECT ?1, coalesce(max(seq) + 1, 0), ?2 FROM events WHERE run_id = ?1",
                params![id, cancel_event(by, &started_at)],
            )?;
            Ok(Cancelled::Ended { playbook })
        }
        (ended, _, _) => Ok(Cancelled::Over(ended)),
    }
}

pub(super) fn requests(conn: &Connection, runner: &str) -> Result<Vec<(String, String)>> {
    let mut statement = conn.prepare_cached(
        "SELECT id, cancel_by FROM runs
         WHERE runner = ?1 AND status = 'running' AND cancel_by IS NOT NULL",
    )?;
    let rows = statement.query_map(params![runner], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[async_trait::async_trait]
impl Cancels for Sqlite {
    async fn cancel_run(&self, id: &str, by: &str) -> Result<crate::records::Cancelled> {
        let (id, by) = (id.to_string(), by.to_string());
        let cancelled = self
            .writer()
            .write(move |tx| cancel_run(tx, &id, &by))
            .await?;
        // A node run ended now frees its slot.
        self.wake_claimers();
        Ok(cancelled)
    }

    async fn cancel_requests(&self, runner: &str) -> Result<Vec<(String, String)>> {
        let runner = runner.to_string();
        self.blocking(move |conn| requests(conn, &runner)).await
    }
}
