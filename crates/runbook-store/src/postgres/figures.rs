//! The figures' queries on PostgreSQL: one pass over the window, durations as
//! whole milliseconds by `runbook_ms` (truncated to the millisecond, as SQLite keeps them).
//! Seeding is one INSERT over arrays, so 100k runs take one round trip.

use anyhow::Result;

use super::Postgres;
use super::runs::query;
use crate::backend::FigureStore;
use crate::figures::{FigureRows, Figures, SeededRun, Tally, Window, assemble};

fn ms(column: &str) -> String {
    format!("runbook_ms({column})")
}

/// The times from detection of the runs `$1` (ids) in whole milliseconds, written when a run
/// finishes (and when seeded), so that reading a window parses no times.
pub(super) const WRITE_DURATIONS: &str = "UPDATE runs SET
    to_start_ms = runbook_ms(running_since) - runbook_ms(COALESCE(alert_starts_at, started_at)),
    to_action_ms = runbook_ms(first_action_at) - runbook_ms(COALESCE(alert_starts_at, started_at)),
    to_end_ms = runbook_ms(ended_at) - runbook_ms(COALESCE(alert_starts_at, started_at))
    WHERE id = ANY($1::text[])";

fn pairs(rows: Vec<tokio_postgres::Row>) -> Vec<(String, u64)> {
    rows.iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
        .collect()
}

async fn rows(pg: &Postgres, window: &Window) -> Result<FigureRows> {
    let client = pg.client().await?;
    let (since, until) = (&window.since, &window.until);
    let prefix = window.bucket.prefix_len() as i32;
    // One pass over the window, summed here: a GROUP BY of 100k rows sorted them on disk
    // (work_mem), and a second scan for the durations read the rows again.
    let mut tally = Tally::default();
    let detected = ms("COALESCE(alert_starts_at, started_at)");
    for r in query(
        &client,
        &format!(
            "SELECT playbook, alertname, COALESCE(node, alert_instance), substr(started_at, 1, $3),
                    status, COALESCE(to_start_ms, {} - {detected}), to_action_ms, to_end_ms
             FROM runs WHERE started_at >= $1 AND started_at < $2",
            ms("running_since"),
        ),
        &[since, until, &prefix],
    )
    .await?
    {
        let (playbook, alertname, status) = (r.get(0), r.get(1), r.get(4));
        tally.count((playbook, alertname, r.get(2)), r.get(3), status, 1);
        tally.time(
            (playbook, alertname, status),
            [r.get(5), r.get(6), r.get(7)],
        );
    }
    let alerts = pairs(
        query(
            &client,
            "SELECT alertname, COUNT(*) FROM alerts WHERE received_at >= $1 AND received_at < $2
             GROUP BY alertname",
            &[since, until],
        )
        .await?,
    );
    let approval_states = pairs(
        query(
            &client,
            "SELECT state, COUNT(*) FROM approvals WHERE asked_at >= $1 AND asked_at < $2
             GROUP BY state",
            &[since, until],
        )
        .await?,
    );
    let actions = pairs(
        query(
            &client,
            "SELECT kind, SUM(calls)::bigint FROM run_actions
             WHERE started_at >= $1 AND started_at < $2 GROUP BY kind",
            &[since, until],
        )
        .await?,
    );
    let answer_ms = query(
        &client,
        &format!(
            "SELECT {} - {} FROM approvals
             WHERE asked_at >= $1 AND asked_at < $2 AND state IN ('approved', 'rejected')
               AND answered_at IS NOT NULL",
            ms("answered_at"),
            ms("asked_at"),
        ),
        &[since, until],
    )
    .await?
    .iter()
    .filter_map(|r| r.get::<_, Option<i64>>(0))
    .collect();
    Ok(FigureRows {
        counts: tally.counts,
        durations: tally.durations,
        alerts,
        approval_states,
        answer_ms,
        actions,
    })
}

async fn seed(pg: &Postgres, runs: Vec<SeededRun>) -> Result<()> {
    let mut client = pg.client().await?;
    let tx = super::sql::begin(&mut client).await?;
    let mut columns: [Vec<Option<String>>; 14] = Default::default();
    let (mut action_runs, mut kinds, mut calls) = (Vec::new(), Vec::new(), Vec::new());
    let mut action_starts = Vec::new();
    for run in runs {
        let (alertname, starts_at, instance) =
            runbook_core::figures::alert_keys(run.alert.as_ref());
        let trigger = if run.alert.is_some() { "alert" } else { "cli" };
        let values = [
            Some(run.id.clone()),
            Some(run.playbook.clone()),
            Some(trigger.to_string()),
            run.alert.as_ref().map(|a| a.to_string()),
            Some(run.status.clone()),
            Some(run.started_at.clone()),
            run.node,
            run.running_since,
            run.ended_at,
            alertname,
            starts_at,
            instance,
            run.first_action_at,
            Some(format!("{} {}", run.playbook, run.status)),
        ];
        for (column, value) in columns.iter_mut().zip(values) {
            column.push(value);
        }
        for (kind, n) in run.actions {
            action_runs.push(run.id.clone());
            action_starts.push(run.started_at.clone());
            kinds.push(kind);
            calls.push(n as i64);
        }
    }
    let [c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14] = &columns;
    super::runs::execute(
        &tx,
        "INSERT INTO runs (id, playbook, origin, trigger, params, alert, dry_run, status,
                           started_at, node, running_since, ended_at, alertname, alert_starts_at,
                           alert_instance, first_action_at, lost_notified_at, summary)
         SELECT a1, a2, 'seed', a3, '{}', a4, false, a5, a6, a7, a8, a9, a10, a11, a12, a13,
                CASE WHEN a5 IN ('lost', 'undeliverable') THEN a9 END, a14
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
                     $13::text[], $14::text[])
              AS t(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14)",
        &[c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14],
    )
    .await?;
    super::runs::execute(&tx, WRITE_DURATIONS, &[c1]).await?;
    super::runs::execute(
        &tx,
        "INSERT INTO run_actions (run_id, kind, calls, started_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[])",
        &[&action_runs, &kinds, &calls, &action_starts],
    )
    .await?;
    super::sql::commit(tx).await?;
    Ok(())
}

#[async_trait::async_trait]
impl FigureStore for Postgres {
    async fn figures(&self, window: &Window) -> Result<Figures> {
        let rows = self.bounded("reading figures", rows(self, window)).await?;
        Ok(assemble(window.clone(), rows))
    }

    async fn seed_runs(&self, runs: Vec<SeededRun>) -> Result<()> {
        self.bounded("seeding runs", seed(self, runs)).await
    }
}
