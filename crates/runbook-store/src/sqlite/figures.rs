//! The figures' queries on SQLite: GROUP BY on the `runs_figures` index, durations as whole
//! milliseconds from `julianday` (exact: SQLite keeps times as integer milliseconds).

use anyhow::Result;
use rusqlite::{Connection, params};

use super::Sqlite;
use crate::backend::FigureStore;
use crate::figures::{CountRow, DurationRow, FigureRows, Figures, SeededRun, Window, assemble};

/// Whole milliseconds of an RFC 3339 text (NULL stays NULL).
fn ms(column: &str) -> String {
    format!("CAST(round(julianday({column}) * 86400000.0) AS INTEGER)")
}

fn rows(conn: &Connection, window: &Window) -> Result<FigureRows> {
    let (since, until) = (&window.since, &window.until);
    let counts = conn
        .prepare_cached(
            "SELECT playbook, alertname, COALESCE(node, alert_instance), substr(started_at, 1, ?3),
                    status, COUNT(*)
             FROM runs WHERE started_at >= ?1 AND started_at < ?2
             GROUP BY 1, 2, 3, 4, 5",
        )?
        .query_map(
            params![since, until, window.bucket.prefix_len() as i64],
            |r| {
                Ok(CountRow {
                    playbook: r.get(0)?,
                    alertname: r.get(1)?,
                    node: r.get(2)?,
                    bucket: r.get(3)?,
                    status: r.get(4)?,
                    runs: r.get::<_, i64>(5)? as u64,
                })
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let detected = ms("COALESCE(alert_starts_at, started_at)");
    let durations = conn
        .prepare_cached(&format!(
            "SELECT playbook, alertname, status, {} - {detected}, {} - {detected},
                    {} - {detected}
             FROM runs WHERE started_at >= ?1 AND started_at < ?2
               AND (running_since IS NOT NULL OR ended_at IS NOT NULL)",
            ms("running_since"),
            ms("first_action_at"),
            ms("ended_at"),
        ))?
        .query_map(params![since, until], |r| {
            Ok(DurationRow {
                playbook: r.get(0)?,
                alertname: r.get(1)?,
                status: r.get(2)?,
                to_start: r.get(3)?,
                to_first_action: r.get(4)?,
                to_end: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
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
        "SELECT a.kind, SUM(a.calls) FROM run_actions a JOIN runs r ON r.id = a.run_id
         WHERE r.started_at >= ?1 AND r.started_at < ?2 GROUP BY a.kind",
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
        counts,
        durations,
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
        "INSERT OR REPLACE INTO run_actions (run_id, kind, calls) VALUES (?1, ?2, ?3)",
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
            action.execute(params![run.id, kind, *calls as i64])?;
        }
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
