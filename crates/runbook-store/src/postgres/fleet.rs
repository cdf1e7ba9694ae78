//! The fleet on PostgreSQL: runs an agent holds (leases renewed by id, live events, a guarded
//! outcome in runs.rs), the nodes' agents as last heard from, and runs for a node no agent took
//! in time. A run is held by an agent while it is `running`, its runner is the agent's, and its
//! lease has not ended on the database clock (a lease that ran out is the rescuer's to mark
//! lost, not the agent's to revive; its slot may already be another run's).

use std::time::Duration;

use anyhow::{Context, Result};

use super::runs::{execute, query, query_opt};
use super::{Postgres, listen, runs, secs, slots};
use crate::backend::FleetStore;
use crate::clean::Clean;
use crate::records::{NodeRecord, QueuedRun, RunOutcome, UnfinishedRun, undeliverable_reason};
use crate::{Appended, SlotLimits, Untold, clean};

pub(super) async fn renew_held(
    pg: &Postgres,
    runner: &str,
    ids: &[String],
    lease: Duration,
) -> Result<Vec<String>> {
    let rows = query(
        &pg.client().await?,
        "WITH held AS (
             UPDATE runs SET lease_until = now() + $3::float8 * interval '1 second'
             WHERE id IN (SELECT id FROM runs
                          WHERE id = ANY($2) AND runner = $1 AND status = 'running'
                            AND lease_until >= now()
                          ORDER BY id FOR UPDATE)
             RETURNING id),
         slots_held AS (
             UPDATE slots SET lease_until = now() + $3::float8 * interval '1 second'
             WHERE run_id IN (SELECT id FROM held))
         SELECT id FROM held",
        &[&runner, &ids, &secs(lease)],
    )
    .await?;
    let renewed: std::collections::HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
    // In the caller's order, each once.
    let mut seen = std::collections::HashSet::new();
    Ok(ids
        .iter()
        .filter(|id| renewed.contains(*id) && seen.insert(*id))
        .cloned()
        .collect())
}

pub(super) async fn append_events(
    pg: &Postgres,
    run_id: &str,
    runner: &str,
    from: usize,
    mut events: Vec<String>,
    max_bytes: usize,
) -> Result<Appended> {
    let last = from.saturating_add(events.len());
    let (from, end) = i32::try_from(from)
        .ok()
        .zip(i32::try_from(last).ok())
        .with_context(|| format!("event numbers up to {last} are out of range"))?;
    let mut client = pg.client().await?;
    let tx = super::sql::begin(&mut client).await?;
    // FOR UPDATE: the run cannot end (finish, expiry) between this check and the writes, and
    // two uploads of one run are counted against its cap one after the other.
    let held = query_opt(
        &tx,
        "SELECT 1 FROM runs
         WHERE id = $1 AND runner = $2 AND status = 'running' AND lease_until >= now()
         FOR UPDATE",
        &[&run_id, &runner],
    )
    .await?;
    if held.is_none() {
        return Ok(Appended::NotHeld);
    }
    // What the run's other events take (the numbers written now are replaced).
    let stored: i64 = query(
        &tx,
        "SELECT coalesce(sum(octet_length(event)), 0)::bigint FROM events
         WHERE run_id = $1 AND (seq < $2 OR seq >= $3)",
        &[&run_id, &from, &end],
    )
    .await?[0]
        .get(0);
    let mut stored = stored.max(0) as usize;
    let mut full = None;
    for (fit, event) in events.iter().enumerate() {
        if let Some(why) = crate::timeline::over_cap(stored, max_bytes) {
            full = Some((fit, why));
            break;
        }
        stored += event.len();
    }
    if let Some((fit, _)) = &full {
        events.truncate(*fit);
    }
    execute(
        &tx,
        "INSERT INTO events (run_id, seq, event)
         SELECT $1, ($2::int + e.ord - 1)::int, e.event
         FROM unnest($3::text[]) WITH ORDINALITY e(event, ord)
         ON CONFLICT (run_id, seq) DO UPDATE SET event = EXCLUDED.event",
        &[&run_id, &from, &events],
    )
    .await?;
    super::sql::commit(tx).await?;
    Ok(full.map_or(Appended::Stored, |(_, why)| Appended::Full(why)))
}

pub(super) async fn node_seen(
    pg: &Postgres,
    node: &str,
    session: &str,
    version: &str,
) -> Result<()> {
    execute(
        &pg.client().await?,
        "INSERT INTO nodes (name, session, version, connected_at, last_seen)
         VALUES ($1, $2, $3, runbook_now_text(), now())
         ON CONFLICT (name) DO UPDATE SET
             connected_at = CASE WHEN nodes.session = EXCLUDED.session
                                 THEN nodes.connected_at ELSE EXCLUDED.connected_at END,
             session = EXCLUDED.session, version = EXCLUDED.version,
             last_seen = EXCLUDED.last_seen",
        &[&node, &session, &version],
    )
    .await?;
    Ok(())
}

pub(super) async fn nodes(pg: &Postgres) -> Result<Vec<NodeRecord>> {
    let rows = query(
        &pg.client().await?,
        "SELECT n.name, n.session, n.version, n.connected_at,
                to_char(n.last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                greatest(extract(epoch FROM now() - n.last_seen), 0)::float8,
                (SELECT count(*) FROM runs WHERE status = 'running' AND node = n.name),
                (SELECT count(*) FROM runs WHERE status = 'queued' AND node IS NOT NULL
                                             AND node = n.name)
         FROM nodes n ORDER BY n.name",
        &[],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| NodeRecord {
            name: r.get(0),
            session: r.get(1),
            version: r.get(2),
            connected_at: r.get(3),
            last_seen: r.get(4),
            seen_secs_ago: r.get(5),
            in_flight: r.get::<_, i64>(6) as usize,
            queued: r.get::<_, i64>(7) as usize,
        })
        .collect())
}

/// Node by node (the reason names it), in one transaction; a run an agent is claiming right
/// now is skipped, not waited for (it is not queued any more once that claim commits).
pub(super) async fn expire_undelivered(pg: &Postgres, wait: Duration) -> Result<usize> {
    let mut client = pg.client().await?;
    let tx = super::sql::begin(&mut client).await?;
    let nodes = query(
        &tx,
        "SELECT DISTINCT node FROM runs WHERE status = 'queued' AND node IS NOT NULL
           AND accepted_at <= now() - $1::float8 * interval '1 second'",
        &[&secs(wait)],
    )
    .await?;
    let mut expired = 0;
    for row in &nodes {
        let node: String = row.get(0);
        let reason = undeliverable_reason(&node, wait);
        expired += execute(
            &tx,
            "UPDATE runs SET status = 'undeliverable', ended_at = runbook_now_text(),
                 reason = $2, summary = $3
             WHERE id IN (SELECT id FROM runs
                          WHERE status = 'queued' AND node IS NOT NULL AND node = $1
                            AND accepted_at <= now() - $4::float8 * interval '1 second'
                          FOR UPDATE SKIP LOCKED)",
            &[
                &node,
                &reason,
                &format!("run undeliverable: {reason}"),
                &secs(wait),
            ],
        )
        .await? as usize;
    }
    super::sql::commit(tx).await?;
    Ok(expired)
}

#[async_trait::async_trait]
impl FleetStore for Postgres {
    async fn claim_for_node(
        &self,
        node: &str,
        runner: &str,
        max: usize,
        limits: &SlotLimits,
        lease: Duration,
    ) -> Result<Vec<QueuedRun>> {
        self.bounded(
            "claiming a node's queued runs",
            slots::claim(self, runner, Some(node), max, limits, lease),
        )
        .await
    }

    async fn renew_held(
        &self,
        runner: &str,
        ids: &[String],
        lease: Duration,
    ) -> Result<Vec<String>> {
        self.bounded("renewing held runs", renew_held(self, runner, ids, lease))
            .await
    }

    async fn append_events(
        &self,
        run_id: &str,
        runner: &str,
        from: usize,
        events: Vec<String>,
        max_bytes: usize,
    ) -> Result<Appended> {
        let mut events = events;
        events.iter_mut().for_each(clean::clean_json_text);
        self.bounded(
            &format!("appending events of run {run_id}"),
            append_events(self, run_id, runner, from, events, max_bytes),
        )
        .await
    }

    async fn finish_held(&self, outcome: RunOutcome, runner: &str) -> Result<bool> {
        let outcome = outcome.cleaned();
        let id = outcome.run_id.clone();
        let written = self
            .bounded(
                &format!("finishing run {id}"),
                self.finishes.finish(outcome, Some(runner.to_string())),
            )
            .await?;
        if written {
            // Its slot is free.
            listen::wake(&self.queued);
            self.announcer.announce();
        }
        Ok(written)
    }

    async fn node_seen(&self, node: &str, session: &str, version: &str) -> Result<()> {
        self.bounded("recording a node", node_seen(self, node, session, version))
            .await
    }

    async fn nodes(&self) -> Result<Vec<NodeRecord>> {
        self.bounded("listing nodes", nodes(self)).await
    }

    async fn expire_undelivered(&self, wait: Duration) -> Result<usize> {
        self.bounded("expiring undelivered runs", expire_undelivered(self, wait))
            .await
    }

    async fn take_undeliverable_unnotified(&self, max: usize) -> Result<Vec<UnfinishedRun>> {
        self.bounded(
            "taking undeliverable runs",
            runs::take_unnotified(self, Untold::Undeliverable, max),
        )
        .await
    }
}
