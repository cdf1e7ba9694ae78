//! The figures' queries on SQLite: one pass over the `runs_figures` index, durations as whole
//! milliseconds from `julianday` (exact: SQLite keeps times as integer milliseconds), stored
//! when a run finishes.

use anyhow::Result;
use rusqlite::{Connection, params};

use super::Sqlite;
use crate::backend::FigureStore;
use crate::figures::{FigureRows, Figures, SeededRun, Tally, Window, assemble};

/// Whole milliseconds of an RFC 3339 text (NULL stays NULL).
fn ms(column: &str) -> String {
    format!("CAST(round(julianday({column}) * 86400000.0) AS INTEGER)")
}

/// The run's times from detection in whole milliseconds, written when it finishes (and when
/// seeded), so that reading a window parses no times.
pub(super) fn write_durations(conn: &Connection, id: &str) -> Result<()> {
    let detected = ms("COALESCE(alert_starts_at, started_at)");
    conn.prepare_cached(&format!(
        "UPDATE runs SET to_start_ms = {} - {detected}, to_action_ms = {} - {detected},
                         to_end_ms = {} - {detected}
         WHERE id = ?1",
        ms("running_since"),
        ms("first_action_at"),
        ms("ended_at"),
    ))?
    .execute(params![id])?;
    Ok(())
}

/// A text column without copying it (NULL, or a non-text value: `None`).
fn text<'a>(r: &'a rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<&'a str>> {
    Ok(r.get_ref(i)?.as_str_or_null().ok().flatten())
}

/// One pass over the window on the covering index `runs_figures`: counts are summed here (a
/// GROUP BY of 100k rows costs SQLite a sort), durations are the stored integers (a run that
/// has not finished has its start computed).
fn rows(conn: &Connection, window: &Window) -> Result<FigureRows> {
    let (since, until) = (&window.since, &window.until);
    let detected = ms("COALESCE(alert_starts_at, started_at)");
    let mut statement = conn.prepare_cached(&format!(
        "SELECT playbook, alertname, COALESCE(node, alert_instance), substr(started_at, 1, ?3),
                status, COALESCE(to_start_ms, {} - {detected}), to_action_ms, to_end_ms
         FROM runs WHERE started_at >= ?1 AND started_at < ?2",
        ms("running_since"),
    ))?;
    let mut found = statement.query(params![since, until, window.bucket.prefix_len() as i64])?;
    let mut tally = Tally::default();
    while let Some(r) = found.next()? {
        let (playbook, alertname, status) = (
            text(r, 0)?.unwrap_or_default(),
            text(r, 1)?,
            text(r, 4)?.unwrap_or_default(),
        );
        let bucket = text(r, 3)?.unwrap_or_default();
        tally.count((playbook, alertname, text(r, 2)?), bucket, status, 1);
        tally.time(
            (playbook, alertname, status),
            [r.get(5)?, r.get(6)?, r.get(7)?],
        );
    }
    drop(found);
    let pairs = |sql: &str| -> Result<Vec<(String, u64)>> {
        Ok(conn
            .prepare_cached(sql)?
            .query_map(params![since, until], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?)
    };
    let alerts = pairs(
        "SELECT alertname, COUNT(*) FROM alerts WHERE received_at >= ?1 AND received_at < ?2
         GROUP BY alertname",
    )?;
    let approval_states = pairs(
        "SELECT state, COUNT(*) FROM approvals WHERE asked_at >= ?1 AND asked_at < ?2
         GROUP BY state",
    )?;
    let actions = pairs(
        "SELECT kind, SUM(calls) FROM run_actions
         WHERE started_at >= ?1 AND started_at < ?2 GROUP BY kind",
    )?;
    let answer_ms = conn
        .prepare_cached(&format!(
            "SELECT {} - {} FROM approvals
             WHERE asked_at >= ?1 AND asked_at < ?2 AND state IN ('approved', 'rejected')
               AND answered_at IS NOT NULL",
            ms("answered_at"),
            ms("asked_at"),
        ))?
        .query_map(params![since, until], |r| r.get::<_, Option<i64>>(0))?
        .filter_map(|v| v.transpose())
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(FigureRows {
        counts: tally.counts,
        durations: tally.durations,
        alerts,
        approval_states,
        answer_ms,
        actions,
    })
}

fn seed(conn: &Connection, runs: &[SeededRun]) -> Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO runs (id, playbook, origin, trigger, params, alert, dry_run, status,
                           started_at, accepted_ms, node, running_since, ended_at, alertname,
                           alert_starts_at, alert_instance, first_action_at, lost_notified_at,
                           summary)
         VALUES (?1, ?2, 'seed', ?3, '{}', ?4, 0, ?5, ?6, 0, ?7, ?8, ?9, ?10, ?11, ?12, ?13,
                 CASE WHEN ?5 IN ('lost', 'undeliverable') THEN ?9 END, ?14)",
    )?;
    let mut action = conn.prepare_cached(
        "INSERT OR REPLACE INTO run_actions (run_id, kind, calls, started_at) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for run in runs {
        let (alertname, starts_at, instance) =
            runbook_core::figures::alert_keys(run.alert.as_ref());
        insert.execute(params![
            run.id,
            run.playbook,
            if run.alert.is_some() { "alert" } else { "cli" },
            run.alert.as_ref().map(|a| a.to_string()),
            run.status,
            run.started_at,
            run.node,
            run.running_since,
            run.ended_at,
            alertname,
            starts_at,
            instance,
            run.first_action_at,
            format!("{} {}", run.playbook, run.status),
        ])?;
        for (kind, calls) in &run.actions {
            action.execute(params![run.id, kind, *calls as i64, run.started_at])?;
        }
        write_durations(conn, &run.id)?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl FigureStore for Sqlite {
    async fn figures(&self, window: &Window) -> Result<Figures> {
        let window = window.clone();
        self.blocking(move |conn| {
            let rows = rows(conn, &window)?;
            Ok(assemble(window, rows))
        })
        .await
    }

    async fn seed_runs(&self, runs: Vec<SeededRun>) -> Result<()> {
        self.writer().write(move |tx| seed(tx, &runs)).await
    }
}
