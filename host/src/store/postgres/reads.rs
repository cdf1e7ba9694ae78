//! Reading runs and alerts back on PostgreSQL (`host runs`, the console, the API): the same
//! records, in the same order, as the SQLite store gives.

use anyhow::Result;
use tokio_postgres::Row;

use super::Postgres;
use super::runs::{json, query, query_opt};
use crate::records::{AlertRecord, Artifact, RunSummary, StoredRun};
use crate::store::RunFilter;

const SUMMARY_COLUMNS: &str = concat!(
    "id, playbook, trigger, ",
    crate::store::backend::SHOWN_STATUS!(),
    ", summary, started_at, ended_at, dry_run, severity, node, requested_by, \
     (timings::jsonb ->> 'total_ms')::float8"
);

fn summary(r: &Row) -> RunSummary {
    RunSummary {
        id: r.get(0),
        playbook: r.get(1),
        trigger: r.get(2),
        status: r.get(3),
        summary: r.get(4),
        started_at: r.get(5),
        ended_at: r.get(6),
        dry_run: r.get(7),
        severity: r.get(8),
        node: r.get(9),
        by: r.get(10),
        took_ms: r.get(11),
    }
}

pub(super) async fn list(
    pg: &Postgres,
    limit: usize,
    playbook: Option<&str>,
) -> Result<Vec<RunSummary>> {
    let rows = query(
        &pg.client().await?,
        &format!(
            "SELECT {SUMMARY_COLUMNS} FROM runs WHERE $1::text IS NULL OR playbook = $1
             ORDER BY started_at DESC, id DESC LIMIT $2"
        ),
        &[&playbook, &(limit as i64)],
    )
    .await?;
    Ok(rows.iter().map(summary).collect())
}

/// As the SQLite store's: only the filters given are in the SQL (each has its index).
pub(super) async fn list_page(pg: &Postgres, filter: &RunFilter) -> Result<Vec<RunSummary>> {
    let (condition, values) = filter.where_clause(|n| format!("${n}"));
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values
        .iter()
        .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    let rows = query(
        &pg.client().await?,
        &format!(
            "SELECT {SUMMARY_COLUMNS} FROM runs {condition}
             ORDER BY started_at DESC, id DESC LIMIT {}",
            filter.limit.min(10_000)
        ),
        &params,
    )
    .await?;
    Ok(rows.iter().map(summary).collect())
}

pub(super) async fn get(pg: &Postgres, id: &str) -> Result<Option<StoredRun>> {
    let client = pg.client().await?;
    let Some(r) = query_opt(
        &client,
        &format!(
            "SELECT {SUMMARY_COLUMNS}, origin, params, alert, actions, reason, dedup_key,
                    timings, grants
             FROM runs WHERE id = $1"
        ),
        &[&id],
    )
    .await?
    else {
        return Ok(None);
    };
    let mut run = StoredRun {
        run: summary(&r),
        origin: r.get(12),
        params: json(r.get(13)).unwrap_or_default(),
        alert: json(r.get(14)),
        actions: json(r.get(15)).unwrap_or_default(),
        reason: r.get(16),
        dedup_key: r.get(17),
        timings: json(r.get(18)),
        grants: json(r.get(19)),
        timeline: Vec::new(),
        artifacts: Vec::new(),
        deliveries: Vec::new(),
    };
    for r in query(
        &client,
        "SELECT event FROM events WHERE run_id = $1 ORDER BY seq",
        &[&id],
    )
    .await?
    {
        run.timeline.push(serde_json::from_str(r.get(0))?);
    }
    let artifacts = query(
        &client,
        "SELECT name, content_type, sha256, content FROM artifacts WHERE run_id = $1 ORDER BY seq",
        &[&id],
    )
    .await?;
    run.artifacts = artifacts
        .iter()
        .map(|r| {
            let content: &[u8] = r.get(3);
            Artifact {
                name: r.get(0),
                content_type: r.get(1),
                sha256: r.get(2),
                bytes: content.len(),
                text: String::from_utf8_lossy(content).into_owned(),
            }
        })
        .collect();
    run.deliveries = super::outbox::rows_for_run(&client, id).await?;
    Ok(Some(run))
}

pub(super) async fn alerts(pg: &Postgres, limit: usize) -> Result<Vec<AlertRecord>> {
    let rows = query(
        &pg.client().await?,
        "SELECT received_at, source, alertname, status, fingerprint, starts_at, labels,
                disposition, playbook, run_id, detail
         FROM alerts ORDER BY id DESC LIMIT $1",
        &[&(limit as i64)],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| AlertRecord {
            received_at: r.get(0),
            source: r.get(1),
            alertname: r.get(2),
            status: r.get(3),
            fingerprint: r.get(4),
            starts_at: r.get(5),
            labels: json(r.get(6)).unwrap_or_default(),
            disposition: r.get(7),
            playbook: r.get(8),
            run_id: r.get(9),
            detail: r.get(10),
        })
        .collect())
}

pub(super) async fn run_counts(pg: &Postgres) -> Result<(usize, usize)> {
    let rows = query(
        &pg.client().await?,
        "SELECT count(*) FILTER (WHERE status = 'queued'),
                count(*) FILTER (WHERE status = 'running' AND lease_until >= now())
         FROM runs WHERE status IN ('queued', 'running')",
        &[],
    )
    .await?;
    let (queued, running): (i64, i64) = (rows[0].get(0), rows[0].get(1));
    Ok((queued as usize, running as usize))
}
