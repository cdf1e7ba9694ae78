//! Reading runs and alerts back on PostgreSQL (`host runs`, the console, the API): the same
//! records, in the same order, as the SQLite store gives.

use anyhow::Result;
use tokio_postgres::Row;

use super::runs::{json, query, query_opt};
use super::{Postgres, outbox};
use crate::backend::Timelines;
use crate::records::{AlertRecord, Artifact, Disposition, RunSummary, StoredRun};
use crate::{EventsPage, QueueDepths, RunFilter, clean};

/// How many columns `SUMMARY_COLUMNS` are: a fuller row's own columns come after them.
const SUMMARY_WIDTH: usize = 13;
const SUMMARY_COLUMNS: &str = concat!(
    "id, playbook, trigger, ",
    crate::backend::SHOWN_STATUS!(),
    ", summary, started_at, ended_at, dry_run, severity, node, running_since, requested_by, \
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
        running_since: r.get(10),
        by: r.get(11),
        took_ms: r.get(12),
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

pub(super) async fn events_after(
    pg: &Postgres,
    id: &str,
    from: usize,
    limit: usize,
) -> Result<Option<EventsPage>> {
    let from = i32::try_from(from).unwrap_or(i32::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // One statement, one snapshot: the status and the events are of the same moment.
    let rows = query(
        &pg.client().await?,
        "SELECT r.status, e.seq, e.event FROM runs r
         LEFT JOIN LATERAL (
             SELECT seq, event FROM events WHERE run_id = r.id AND seq >= $2
             ORDER BY seq LIMIT $3) e ON true
         WHERE r.id = $1
         ORDER BY e.seq",
        &[&id, &from, &limit],
    )
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let events = rows
        .iter()
        .filter_map(|r| {
            let seq: Option<i32> = r.get(1);
            Some((usize::try_from(seq?).ok()?, r.get::<_, String>(2)))
        })
        .collect();
    Ok(Some(EventsPage {
        status: first.get(0),
        events,
    }))
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
        origin: r.get(SUMMARY_WIDTH),
        params: json(r.get(SUMMARY_WIDTH + 1)).unwrap_or_default(),
        alert: json(r.get(SUMMARY_WIDTH + 2)),
        actions: json(r.get(SUMMARY_WIDTH + 3)).unwrap_or_default(),
        reason: r.get(SUMMARY_WIDTH + 4),
        dedup_key: r.get(SUMMARY_WIDTH + 5),
        timings: json(r.get(SUMMARY_WIDTH + 6)),
        grants: json(r.get(SUMMARY_WIDTH + 7)),
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
    run.deliveries = outbox::rows_for_run(&client, id).await?;
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
            disposition: Disposition::parse(r.get(7)),
            playbook: r.get(8),
            run_id: r.get(9),
            detail: r.get(10),
        })
        .collect())
}

pub(super) async fn queue_depths(pg: &Postgres, node: Option<&str>) -> Result<QueueDepths> {
    let rows = query(
        &pg.client().await?,
        "SELECT count(*) FILTER (WHERE node IS NULL), count(*) FILTER (WHERE node IS NOT NULL),
                count(*) FILTER (WHERE node = $1)
         FROM runs WHERE status = 'queued'",
        &[&node],
    )
    .await?;
    let count = |i: usize| rows[0].get::<_, i64>(i) as usize;
    Ok(QueueDepths {
        local: count(0),
        nodes: count(1),
        node: count(2),
    })
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

#[async_trait::async_trait]
impl Timelines for Postgres {
    async fn list(&self, limit: usize, playbook: Option<&str>) -> Result<Vec<RunSummary>> {
        self.bounded("listing runs", list(self, limit, playbook))
            .await
    }

    async fn list_page(&self, filter: &RunFilter) -> Result<Vec<RunSummary>> {
        self.bounded("listing runs", list_page(self, filter)).await
    }

    async fn get(&self, id: &str) -> Result<Option<StoredRun>> {
        let id = &*clean::text(id);
        self.bounded("reading a run", get(self, id)).await
    }

    async fn events_after(
        &self,
        id: &str,
        from: usize,
        limit: usize,
    ) -> Result<Option<crate::EventsPage>> {
        self.bounded(
            "reading a run's events",
            events_after(self, id, from, limit),
        )
        .await
    }
}
