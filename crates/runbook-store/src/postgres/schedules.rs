//! Schedule firings on PostgreSQL: the firing's key is the table's primary key, so of several
//! replicas firing the same schedule at the same time one inserts it (the others' inserts wait
//! for its transaction, then do nothing) and admits the run in that same transaction.

use anyhow::Result;

use super::runs::{execute, insert_run, query, query_opt};
use super::{Postgres, listen};
use crate::backend::ScheduleStore;
use crate::clean::Clean;
use crate::records::{Fired, Firing, FiringRecord};

pub(super) async fn fire(pg: &Postgres, firing: Firing) -> Result<Fired> {
    let mut client = pg.client().await?;
    let tx = super::sql::begin(&mut client).await?;
    let inserted = execute(
        &tx,
        "INSERT INTO schedule_firings (schedule, at_ms, catch_up) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
        &[&firing.schedule, &firing.at_ms, &firing.catch_up],
    )
    .await?;
    if inserted == 0 {
        return Ok(Fired::AlreadyFired);
    }
    // The schedule's latest run, and whether it is still going.
    let latest = query_opt(
        &tx,
        "SELECT r.id, r.status FROM schedule_firings f JOIN runs r ON r.id = f.run_id
         WHERE f.schedule = $1 AND f.run_id IS NOT NULL
         ORDER BY f.at_ms DESC LIMIT 1",
        &[&firing.schedule],
    )
    .await?;
    let going = latest
        .filter(|row| matches!(row.get::<_, &str>(1), "queued" | "running"))
        .map(|row| row.get::<_, String>(0));
    let fired = match going {
        Some(previous) => {
            execute(
                &tx,
                "UPDATE schedule_firings SET skipped_for = $3 WHERE schedule = $1 AND at_ms = $2",
                &[&firing.schedule, &firing.at_ms, &previous],
            )
            .await?;
            Fired::Skipped(previous)
        }
        None => {
            insert_run(&tx, &firing.run, None, None).await?;
            super::runs::mark_gated(&tx, &firing.run.id, &firing.gate).await?;
            execute(
                &tx,
                "UPDATE schedule_firings SET run_id = $3 WHERE schedule = $1 AND at_ms = $2",
                &[&firing.schedule, &firing.at_ms, &firing.run.id],
            )
            .await?;
            Fired::Started
        }
    };
    super::sql::commit(tx).await?;
    Ok(fired)
}

pub(super) async fn firings(
    pg: &Postgres,
    schedule: &str,
    limit: usize,
) -> Result<Vec<FiringRecord>> {
    let client = pg.client().await?;
    let rows = query(
        &client,
        "SELECT f.at_ms, f.catch_up, f.run_id, r.status, f.skipped_for
         FROM schedule_firings f LEFT JOIN runs r ON r.id = f.run_id
         WHERE f.schedule = $1 ORDER BY f.at_ms DESC LIMIT $2",
        &[&schedule, &(limit as i64)],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            FiringRecord::new(
                schedule.to_string(),
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
            )
        })
        .collect())
}

#[async_trait::async_trait]
impl ScheduleStore for Postgres {
    async fn fire(&self, firing: Firing) -> Result<Fired> {
        let firing = firing.cleaned();
        let fired = self
            .bounded("recording a schedule's firing", fire(self, firing))
            .await?;
        if fired == Fired::Started {
            listen::wake(&self.queued);
            self.announcer.announce();
        }
        Ok(fired)
    }

    async fn firings(&self, schedule: &str, limit: usize) -> Result<Vec<FiringRecord>> {
        self.bounded(
            "reading a schedule's firings",
            firings(self, schedule, limit),
        )
        .await
    }
}
