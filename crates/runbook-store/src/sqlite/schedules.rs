//! Schedule firings in SQLite: one row per (schedule, firing time), written with the run it
//! admits in one request of the writer's batch.

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, params};

use super::runs::insert_run;
use super::{Sqlite, runs};
use crate::backend::ScheduleStore;
use crate::clean::Clean;
use crate::records::{Fired, Firing, FiringRecord};

pub(super) fn fire(conn: &Connection, firing: Firing) -> Result<Fired> {
    let inserted = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO schedule_firings (schedule, at_ms, catch_up, recorded_ms)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            firing.schedule,
            firing.at_ms,
            firing.catch_up,
            runs::now_ms()
        ])?;
    if inserted == 0 {
        return Ok(Fired::AlreadyFired);
    }
    // The schedule's latest run: its firings are scanned newest first on the primary key.
    let going: Option<String> = conn
        .prepare_cached(
            "SELECT r.id FROM schedule_firings f JOIN runs r ON r.id = f.run_id
             WHERE f.schedule = ?1 AND f.run_id IS NOT NULL
             ORDER BY f.at_ms DESC LIMIT 1",
        )?
        .query_row(params![firing.schedule], |r| r.get::<_, String>(0))
        .optional()?
        .map(|id| -> Result<Option<String>> {
            let status: String = conn
                .prepare_cached("SELECT status FROM runs WHERE id = ?1")?
                .query_row(params![id], |r| r.get(0))?;
            Ok(matches!(status.as_str(), "queued" | "running").then_some(id))
        })
        .transpose()?
        .flatten();
    let fired = match going {
        Some(previous) => {
            conn.prepare_cached(
                "UPDATE schedule_firings SET skipped_for = ?3 WHERE schedule = ?1 AND at_ms = ?2",
            )?
            .execute(params![firing.schedule, firing.at_ms, previous])?;
            Fired::Skipped(previous)
        }
        None => {
            insert_run(conn, &firing.run, None, None)?;
            runs::mark_gated(conn, &firing.run.id, &firing.gate)?;
            conn.prepare_cached(
                "UPDATE schedule_firings SET run_id = ?3 WHERE schedule = ?1 AND at_ms = ?2",
            )?
            .execute(params![firing.schedule, firing.at_ms, firing.run.id])?;
            Fired::Started
        }
    };
    Ok(fired)
}

pub(super) fn firings(
    conn: &Connection,
    schedule: &str,
    limit: usize,
) -> Result<Vec<FiringRecord>> {
    let rows = conn
        .prepare_cached(
            "SELECT f.at_ms, f.catch_up, f.run_id, r.status, f.skipped_for
             FROM schedule_firings f LEFT JOIN runs r ON r.id = f.run_id
             WHERE f.schedule = ?1 ORDER BY f.at_ms DESC LIMIT ?2",
        )?
        .query_map(params![schedule, limit as i64], |r| {
            Ok(FiringRecord::new(
                schedule.to_string(),
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

#[async_trait::async_trait]
impl ScheduleStore for Sqlite {
    async fn fire(&self, firing: Firing) -> Result<Fired> {
        let firing = firing.cleaned();
        let fired = self.writer().write(move |tx| fire(tx, firing)).await?;
        if fired == Fired::Started {
            self.wake_claimers();
        }
        Ok(fired)
    }

    async fn firings(&self, schedule: &str, limit: usize) -> Result<Vec<FiringRecord>> {
        let schedule = schedule.to_string();
        self.blocking(move |conn| firings(conn, &schedule, limit))
            .await
    }
}
