//! The fleet in SQLite: runs an agent holds (leases renewed by id, live events, a guarded
//! outcome), the nodes' agents as last heard from, and runs for a node no agent took in time.
//! A run is held by an agent while it is `running`, its runner is the agent's, and its lease
//! has not ended (a lease that ran out is the rescuer's to mark lost, not the agent's to
//! revive).

use std::time::{Duration, UNIX_EPOCH};

use anyhow::Result;
use rusqlite::{Connection, params};

use super::runs::{now_ms, now_rfc3339, since};
use super::{Sqlite, millis, runs};
use crate::backend::FleetStore;
use crate::clean::Clean;
use crate::records::{
    NodeRecord, QueuedRun, RunOutcome, UnfinishedRun, rfc3339, undeliverable_reason,
};
use crate::{Appended, SlotLimits, Untold, clean};

/// Renews the live leases `runner` holds among `ids`; returns the ids renewed, each once.
pub(super) fn renew_held(
    conn: &Connection,
    runner: &str,
    ids: &[String],
    lease_ms: i64,
) -> Result<Vec<String>> {
    let now = now_ms();
    let mut renew = conn.prepare_cached(
        "UPDATE runs SET lease_until_ms = ?3
         WHERE id = ?1 AND runner = ?2 AND status = 'running' AND lease_until_ms >= ?4",
    )?;
    let mut seen = std::collections::HashSet::new();
    let mut held = Vec::new();
    for id in ids {
        if seen.insert(id) && renew.execute(params![id, runner, now + lease_ms, now])? == 1 {
            held.push(id.clone());
        }
    }
    Ok(held)
}

fn holds(conn: &Connection, run_id: &str, runner: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT count(*) FROM runs
             WHERE id = ?1 AND runner = ?2 AND status = 'running' AND lease_until_ms >= ?3",
        )?
        .query_row(params![run_id, runner, now_ms()], |r| r.get::<_, i64>(0))?
        == 1)
}

/// Stores events `from`, `from + 1`, … of a run `runner` holds (a number stored already is
/// replaced) while the run's timeline is within `max_bytes`. Inside the writer's transaction,
/// so the check and the writes are one.
pub(super) fn append_events(
    conn: &Connection,
    run_id: &str,
    runner: &str,
    from: usize,
    events: &[String],
    max_bytes: usize,
) -> Result<Appended> {
    if !holds(conn, run_id, runner)? {
        return Ok(Appended::NotHeld);
    }
    let first = i64::try_from(from)?;
    let end = i64::try_from(from.saturating_add(events.len()))?;
    // What the run's other events take (the numbers written now are replaced).
    let mut stored: i64 = conn
        .prepare_cached(
            "SELECT coalesce(sum(length(CAST(event AS BLOB))), 0) FROM events
             WHERE run_id = ?1 AND (seq < ?2 OR seq >= ?3)",
        )?
        .query_row(params![run_id, first, end], |r| r.get(0))?;
    let mut upsert = conn.prepare_cached(
        "INSERT INTO events (run_id, seq, event) VALUES (?1, ?2, ?3)
         ON CONFLICT (run_id, seq) DO UPDATE SET event = excluded.event",
    )?;
    for (seq, event) in (first..).zip(events) {
        if let Some(why) = crate::timeline::over_cap(stored.max(0) as usize, max_bytes) {
            return Ok(Appended::Full(why));
        }
        upsert.execute(params![run_id, seq, event])?;
        stored += event.len() as i64;
    }
    Ok(Appended::Stored)
}

/// The node's row now names this session; a new session starts a new `connected_at`.
pub(super) fn node_seen(conn: &Connection, node: &str, session: &str, version: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO nodes (name, session, version, connected_at, last_seen)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (name) DO UPDATE SET
             connected_at = CASE WHEN nodes.session = excluded.session
                                 THEN nodes.connected_at ELSE excluded.connected_at END,
             session = excluded.session, version = excluded.version,
             last_seen = excluded.last_seen",
    )?
    .execute(params![node, session, version, now_rfc3339(), now_ms()])?;
    Ok(())
}

pub(super) fn nodes(conn: &Connection) -> Result<Vec<NodeRecord>> {
    let now = now_ms();
    let mut stmt = conn.prepare_cached(
        "SELECT n.name, n.session, n.version, n.connected_at, n.last_seen,
                (SELECT count(*) FROM runs WHERE status = 'running' AND node = n.name),
                (SELECT count(*) FROM runs WHERE status = 'queued' AND node IS NOT NULL
                                             AND node = n.name)
         FROM nodes n ORDER BY n.name",
    )?;
    let rows = stmt.query_map([], |r| {
        let last_seen: i64 = r.get(4)?;
        Ok(NodeRecord {
            name: r.get(0)?,
            session: r.get(1)?,
            version: r.get(2)?,
            connected_at: r.get(3)?,
            last_seen: rfc3339(UNIX_EPOCH + Duration::from_millis(last_seen.max(0) as u64)),
            seen_secs_ago: (now - last_seen).max(0) as f64 / 1000.0,
            in_flight: r.get::<_, i64>(5)? as usize,
            queued: r.get::<_, i64>(6)? as usize,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Queued runs for a node accepted `wait` or more ago end `undeliverable`, node by node (the
/// reason names it). A queued run holds no slot: nothing to free.
pub(super) fn expire_undelivered(conn: &Connection, wait: Duration) -> Result<usize> {
    let before = since(wait);
    let nodes: Vec<String> = conn
        .prepare_cached(
            "SELECT DISTINCT node FROM runs WHERE status = 'queued' AND node IS NOT NULL
               AND accepted_ms <= ?1",
        )?
        .query_map(params![before], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut expired = 0;
    for node in nodes {
        let reason = undeliverable_reason(&node, wait);
        expired += conn
            .prepare_cached(
                "UPDATE runs SET status = 'undeliverable', ended_at = ?3, reason = ?4,
                     summary = ?5
                 WHERE status = 'queued' AND node IS NOT NULL AND node = ?1
                   AND accepted_ms <= ?2",
            )?
            .execute(params![
                node,
                before,
                now_rfc3339(),
                reason,
                format!("run undeliverable: {reason}")
            ])?;
    }
    Ok(expired)
}

#[async_trait::async_trait]
impl FleetStore for Sqlite {
    async fn claim_for_node(
        &self,
        node: &str,
        runner: &str,
        max: usize,
        limits: &SlotLimits,
        lease: Duration,
    ) -> Result<Vec<QueuedRun>> {
        let (node, runner, limits) = (node.to_string(), runner.to_string(), limits.clone());
        self.writer()
            .write(move |tx| runs::claim(tx, &runner, Some(&node), max, &limits, millis(lease)))
            .await
    }

    async fn renew_held(
        &self,
        runner: &str,
        ids: &[String],
        lease: Duration,
    ) -> Result<Vec<String>> {
        let (runner, ids) = (runner.to_string(), ids.to_vec());
        self.writer()
            .write(move |tx| renew_held(tx, &runner, &ids, millis(lease)))
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
        let (run_id, runner) = (run_id.to_string(), runner.to_string());
        self.writer()
            .write(move |tx| append_events(tx, &run_id, &runner, from, &events, max_bytes))
            .await
    }

    async fn finish_held(&self, outcome: RunOutcome, runner: &str) -> Result<bool> {
        let outcome = outcome.cleaned();
        let runner = runner.to_string();
        let written = self
            .writer()
            .write(move |tx| runs::write_outcome_if_held(tx, &outcome, Some(&runner)))
            .await?;
        if written {
            self.wake_claimers();
        }
        Ok(written)
    }

    async fn node_seen(&self, node: &str, session: &str, version: &str) -> Result<()> {
        let (node, session, version) = (node.to_string(), session.to_string(), version.to_string());
        self.writer()
            .write(move |tx| node_seen(tx, &node, &session, &version))
            .await
    }

    async fn nodes(&self) -> Result<Vec<NodeRecord>> {
        self.blocking(|conn| nodes(conn)).await
    }

    async fn expire_undelivered(&self, wait: Duration) -> Result<usize> {
        self.writer()
            .write(move |tx| expire_undelivered(tx, wait))
            .await
    }

    async fn take_undeliverable_unnotified(&self, max: usize) -> Result<Vec<UnfinishedRun>> {
        self.writer()
            .write(move |tx| runs::take_unnotified(tx, Untold::Undeliverable, max))
            .await
    }
}
