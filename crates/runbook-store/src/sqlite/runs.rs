//! Runs in SQLite: admission (dedup, cooldown, the queued run and the alert's record decided in
//! one request of the writer's batch, so identical deliveries start exactly one run), claims
//! under per-playbook slots, leases, outcomes, and the reads behind `host runs` and the API.
//! SQLite has one writer at a time, so a claim counts live slot holders instead of locking
//! slot rows; the clock is this machine's (the store's clock for a file on it).

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, params};

use super::outbox;
use crate::records::{
    Admit, Admitted, AlertRecord, Artifact, Disposition, Gate, LOST_REASON, QueuedRun, RunOutcome,
    RunSummary, StoredRun, UnfinishedRun,
};
use crate::{CUT_OFF, EventsPage, QueueDepths, RunFilter, SlotLimits, Untold};

pub(super) use crate::records::{now_ms, now_rfc3339};

/// The store's clock `ago` before now, to compare with `accepted_ms`.
pub(super) fn since(ago: std::time::Duration) -> i64 {
    now_ms().saturating_sub(ago.as_millis().min(i64::MAX as u128) as i64)
}

pub(super) fn insert_run(
    conn: &Connection,
    run: &QueuedRun,
    cooldown_key: Option<&str>,
    held: Option<(&str, i64)>,
) -> Result<()> {
    let (alertname, alert_starts_at, alert_instance) =
        runbook_core::figures::alert_keys(run.alert.as_ref());
    conn.prepare_cached(
        "INSERT INTO runs (id, playbook, origin, trigger, params, alert, dry_run, status,
                           dedup_key, started_at, severity, cooldown_key, runner, lease_until_ms,
                           accepted_ms, node, running_since, requested_by, alertname,
                           alert_starts_at, alert_instance)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
                 ?19, ?20, ?21)",
    )?
    .execute(params![
        run.id,
        run.playbook,
        run.origin,
        run.trigger,
        run.params.to_string(),
        run.alert.as_ref().map(|a| a.to_string()),
        run.dry_run,
        if held.is_some() { "running" } else { "queued" },
        run.dedup_key,
        run.started_at,
        run.severity,
        cooldown_key,
        held.map(|(runner, _)| runner),
        held.map(|(_, until)| until),
        now_ms(),
        run.node,
        held.map(|_| &run.started_at),
        run.by,
        alertname,
        alert_starts_at,
        alert_instance,
    ])?;
    Ok(())
}

pub(super) fn insert_alert(conn: &Connection, alert: &AlertRecord) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO alerts (received_at, source, alertname, status, fingerprint, starts_at,
                             labels, disposition, playbook, run_id, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        alert.received_at,
        alert.source,
        alert.alertname,
        alert.status,
        alert.fingerprint,
        alert.starts_at,
        alert.labels.to_string(),
        alert.disposition.as_str(),
        alert.playbook,
        alert.run_id,
        alert.detail,
    ])?;
    Ok(())
}

/// The run accepted for this dedup key since `since`, if any; cut-off runs do not count.
fn dedup_run(conn: &Connection, key: &str, since: i64) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT id FROM runs WHERE dedup_key = ?1 AND accepted_ms >= ?2
               AND status NOT IN {CUT_OFF}
             ORDER BY accepted_ms DESC LIMIT 1"
        ))?
        .query_row(params![key, since], |r| r.get(0))
        .optional()?)
}

/// Whether a run of `playbook` with this cooldown key was accepted since `since`; cut-off runs
/// do not count (the alert must be able to run again).
fn in_cooldown(conn: &Connection, playbook: &str, key: &str, since: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT 1 FROM runs WHERE playbook = ?1 AND cooldown_key = ?2 AND accepted_ms >= ?3
               AND status NOT IN {CUT_OFF} LIMIT 1"
        ))?
        .query_row(params![playbook, key, since], |_| Ok(()))
        .optional()?
        .is_some())
}

pub(super) fn admit(conn: &Connection, admit: Admit) -> Result<Admitted> {
    let Admit {
        run,
        dedup_window,
        cooldown,
        mut alert,
        gate,
    } = admit;
    // A held or suppressed run takes no cooldown: it must not keep the alert from running
    // once the breaker closes or the window ends.
    let cooldown = cooldown.filter(|_| gate == Gate::Run);
    let admitted = match (&run.dedup_key, dedup_window) {
        (Some(key), Some(window)) => {
            dedup_run(conn, key, since(window))?.map(Admitted::Deduplicated)
        }
        _ => None,
    };
    let admitted = match (admitted, &cooldown) {
        (Some(admitted), _) => admitted,
        (None, Some((key, period))) if in_cooldown(conn, &run.playbook, key, since(*period))? => {
            Admitted::Cooldown
        }
        (None, _) => {
            let key = cooldown.as_ref().map(|(key, _)| key.as_str());
            insert_run(conn, &run, key, None)?;
            mark_gated(conn, &run.id, &gate)?;
            Admitted::Started
        }
    };
    if let Some(alert) = &mut alert {
        (alert.disposition, alert.run_id) = admitted.disposition(&run.id, &gate);
        insert_alert(conn, alert)?;
    }
    Ok(admitted)
}

/// A run just inserted that must not execute: ended at once as `held` or `suppressed`, with
/// why as its reason and summary (it never holds a slot, a lease or a claimer's attention).
pub(super) fn mark_gated(conn: &Connection, run_id: &str, gate: &Gate) -> Result<()> {
    let Some(reason) = gate.reason() else {
        return Ok(());
    };
    conn.prepare_cached(
        "UPDATE runs SET status = ?2, reason = ?3, summary = ?3, ended_at = started_at
         WHERE id = ?1",
    )?
    .execute(params![run_id, gate.status().as_str(), reason])?;
    Ok(())
}

pub(super) const RUN_COLUMNS: &str = "id, playbook, origin, trigger, params, alert, dry_run, \
     dedup_key, started_at, severity, node, requested_by";

pub(super) fn queued_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<QueuedRun> {
    let json = |i: usize| -> rusqlite::Result<Option<serde_json::Value>> {
        let text: Option<String> = r.get(i)?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    };
    Ok(QueuedRun {
        id: r.get(0)?,
        playbook: r.get(1)?,
        origin: r.get(2)?,
        trigger: r.get(3)?,
        params: json(4)?.unwrap_or_default(),
        alert: json(5)?,
        dry_run: r.get(6)?,
        dedup_key: r.get(7)?,
        started_at: r.get(8)?,
        severity: r.get(9)?,
        node: r.get(10)?,
        by: r.get(11)?,
    })
}

/// Queued runs, oldest first, each taken when its playbook has a free slot (live holders
/// counted: this connection is the only writer). `node`: the runs for that fleet node only;
/// None: the runs for no node (a server's). Slots count every holder, node or server.
/// Candidates are read as (id, playbook) only; whole rows only for the runs taken (this runs
/// on the writer thread, between admissions).
pub(super) fn claim(
    conn: &Connection,
    runner: &str,
    node: Option<&str>,
    max: usize,
    limits: &SlotLimits,
    lease_ms: i64,
) -> Result<Vec<QueuedRun>> {
    let now = now_ms();
    // Looks past runs whose playbook is full, within reason.
    let window = (max * 4 + 16) as i64;
    let id_and_playbook = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?));
    let candidates: Vec<(String, String)> = match node {
        None => conn
            .prepare_cached(
                "SELECT id, playbook FROM runs WHERE status = 'queued' AND node IS NULL
                 ORDER BY started_at, id LIMIT ?1",
            )?
            .query_map(params![window], id_and_playbook)?
            .collect::<rusqlite::Result<_>>()?,
        // The condition as runs_node_queued spells it, so that index serves it.
        Some(node) => conn
            .prepare_cached(
                "SELECT id, playbook FROM runs WHERE status = 'queued' AND node IS NOT NULL
                   AND node = ?2
                 ORDER BY started_at, id LIMIT ?1",
            )?
            .query_map(params![window, node], id_and_playbook)?
            .collect::<rusqlite::Result<_>>()?,
    };
    let mut holders = std::collections::HashMap::new();
    let mut claimed = Vec::new();
    for (id, playbook) in candidates {
        if claimed.len() >= max {
            break;
        }
        let held = match holders.get(&playbook) {
            Some(n) => *n,
            None => {
                conn.prepare_cached(
                    "SELECT count(*) FROM runs WHERE playbook = ?1 AND status = 'running'
                       AND holds_slot = 1 AND lease_until_ms > ?2",
                )?
                .query_row(params![playbook, now], |r| r.get::<_, i64>(0))? as usize
            }
        };
        if held >= limits.of(&playbook) {
            holders.insert(playbook, held);
            continue;
        }
        conn.prepare_cached(
            "UPDATE runs SET status = 'running', runner = ?2, lease_until_ms = ?3, holds_slot = 1,
                 running_since = ?4
             WHERE id = ?1 AND status = 'queued'",
        )?
        .execute(params![id, runner, now + lease_ms, now_rfc3339()])?;
        claimed.push(
            conn.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))?
                .query_row(params![id], queued_row)?,
        );
        holders.insert(playbook, held + 1);
    }
    Ok(claimed)
}

/// The run's outcome, timeline and artifacts, inside the caller's transaction.
pub(super) fn write_outcome(conn: &Connection, outcome: &RunOutcome) -> Result<()> {
    anyhow::ensure!(
        write_outcome_if_held(conn, outcome, None)?,
        "run {} is no longer running in the store (lost after its lease ended, or never \
         started): its outcome is not written",
        outcome.run_id
    );
    Ok(())
}

/// The run's outcome, timeline and artifacts, inside the caller's transaction, if the run is
/// `running` (and, with `holder`, held by it under a live lease); false, nothing written,
/// otherwise. The outcome's timeline replaces events appended while it ran.
pub(super) fn write_outcome_if_held(
    conn: &Connection,
    outcome: &RunOutcome,
    holder: Option<&str>,
) -> Result<bool> {
    let updated = conn
        .prepare_cached(
            "UPDATE runs SET status = ?2, summary = ?3, actions = ?4, reason = ?5, ended_at = ?6,
                 timings = ?7, grants = ?8, lease_until_ms = NULL, holds_slot = 0
             WHERE id = ?1 AND status = 'running'
               AND (?9 IS NULL OR (runner = ?9 AND lease_until_ms >= ?10))",
        )?
        .execute(params![
            outcome.run_id,
            outcome.status,
            outcome.summary,
            serde_json::to_string(&outcome.actions)?,
            outcome.reason,
            outcome.ended_at,
            outcome.timings.to_string(),
            outcome.grants.to_string(),
            holder,
            now_ms(),
        ])?;
    if updated != 1 {
        return Ok(false);
    }
    write_actions(conn, &outcome.run_id, &outcome.events)?;
    conn.prepare_cached("DELETE FROM events WHERE run_id = ?1")?
        .execute(params![outcome.run_id])?;
    let mut events =
        conn.prepare_cached("INSERT INTO events (run_id, seq, event) VALUES (?1, ?2, ?3)")?;
    for (seq, event) in outcome.events.iter().enumerate() {
        events.execute(params![outcome.run_id, seq, event])?;
    }
    let mut artifacts = conn.prepare_cached(
        "INSERT INTO artifacts (run_id, seq, name, content_type, sha256, content)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (seq, artifact) in outcome.artifacts.iter().enumerate() {
        artifacts.execute(params![
            outcome.run_id,
            seq,
            artifact.name,
            artifact.content_type,
            artifact.sha256,
            artifact.text.as_bytes()
        ])?;
    }
    Ok(true)
}

/// The figures' record of a finished run's mutating calls (`first_action_at`, `run_actions`).
pub(super) fn write_actions(conn: &Connection, id: &str, events: &[String]) -> Result<()> {
    let actions = runbook_core::figures::actions_of(events);
    conn.prepare_cached("UPDATE runs SET first_action_at = ?2 WHERE id = ?1")?
        .execute(params![id, actions.first_at])?;
    super::figures::write_durations(conn, id)?;
    let mut insert = conn.prepare_cached(
        "INSERT OR REPLACE INTO run_actions (run_id, kind, calls, started_at)
         SELECT ?1, ?2, ?3, started_at FROM runs WHERE id = ?1",
    )?;
    for (kind, calls) in &actions.kinds {
        insert.execute(params![id, kind, *calls as i64])?;
    }
    Ok(())
}

pub(super) fn end_unfinished(
    conn: &Connection,
    id: &str,
    status: &str,
    reason: &str,
) -> Result<bool> {
    let updated = conn.execute(
        "UPDATE runs SET status = ?2, reason = ?3, summary = ?4, ended_at = ?5,
             lease_until_ms = NULL, holds_slot = 0
         WHERE id = ?1 AND status IN ('queued', 'running')",
        params![
            id,
            status,
            reason,
            format!("run {status}: {reason}"),
            now_rfc3339()
        ],
    )?;
    Ok(updated == 1)
}

pub(super) fn renew(conn: &Connection, runner: &str, lease_ms: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "UPDATE runs SET lease_until_ms = ?2 WHERE runner = ?1 AND status = 'running'",
        )?
        .execute(params![runner, now_ms() + lease_ms])?)
}

/// Running runs whose lease ended become lost. A run written by a host older than leases has
/// none: it is taken as ended too.
pub(super) fn expire(conn: &Connection) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE runs SET status = 'lost', ended_at = ?2, reason = ?3, summary = ?4,
             lease_until_ms = NULL, holds_slot = 0
         WHERE status = 'running' AND (lease_until_ms IS NULL OR lease_until_ms < ?1)",
        params![
            now_ms(),
            now_rfc3339(),
            LOST_REASON,
            format!("run lost: {LOST_REASON}")
        ],
    )?)
}

/// Runs that ended `status` (lost, undeliverable) nobody was told about, marked told. The
/// status is spelled into the statement: a partial index per status serves it only then.
pub(super) fn take_unnotified(
    conn: &Connection,
    status: Untold,
    max: usize,
) -> Result<Vec<UnfinishedRun>> {
    let status = status.as_str();
    let runs: Vec<UnfinishedRun> = conn
        .prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE status = '{status}' AND lost_notified_at IS NULL
             ORDER BY started_at, id LIMIT ?1"
        ))?
        .query_map(params![max as i64], queued_row)?
        .collect::<rusqlite::Result<_>>()?;
    let at = now_rfc3339();
    for run in &runs {
        conn.prepare_cached("UPDATE runs SET lost_notified_at = ?2 WHERE id = ?1")?
            .execute(params![run.id, at])?;
    }
    Ok(runs)
}

/// Records a replay id; false when seen within the window. Older ids are forgotten.
pub(super) fn first_delivery(conn: &Connection, id: &str, window_ms: i64) -> Result<bool> {
    let now = now_ms();
    conn.prepare_cached("DELETE FROM replay_ids WHERE seen_ms < ?1")?
        .execute(params![now - window_ms])?;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO replay_ids (id, seen_ms) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )?
        .execute(params![id, now])?;
    Ok(inserted == 1)
}

pub(super) fn run_counts(conn: &Connection) -> Result<(usize, usize)> {
    let queued: i64 = conn
        .prepare_cached("SELECT count(*) FROM runs WHERE status = 'queued'")?
        .query_row([], |r| r.get(0))?;
    let running: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM runs WHERE status = 'running' AND lease_until_ms > ?1",
        )?
        .query_row(params![now_ms()], |r| r.get(0))?;
    Ok((queued as usize, running as usize))
}

pub(super) fn queue_depths(conn: &Connection, node: Option<&str>) -> Result<QueueDepths> {
    let (local, nodes, this): (i64, i64, i64) = conn
        .prepare_cached(
            "SELECT coalesce(sum(node IS NULL), 0), coalesce(sum(node IS NOT NULL), 0),
                    coalesce(sum(node IS NOT NULL AND node = ?1), 0)
             FROM runs WHERE status = 'queued'",
        )?
        .query_row(params![node], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(QueueDepths {
        local: local as usize,
        nodes: nodes as usize,
        node: this as usize,
    })
}

pub(super) fn alerts(conn: &Connection, limit: usize) -> Result<Vec<AlertRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT received_at, source, alertname, status, fingerprint, starts_at, labels,
                disposition, playbook, run_id, detail
         FROM alerts ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map(params![limit as i64], |r| {
        let labels: String = r.get(6)?;
        Ok(AlertRecord {
            received_at: r.get(0)?,
            source: r.get(1)?,
            alertname: r.get(2)?,
            status: r.get(3)?,
            fingerprint: r.get(4)?,
            starts_at: r.get(5)?,
            labels: serde_json::from_str(&labels).unwrap_or_default(),
            disposition: Disposition::parse(&r.get::<_, String>(7)?),
            playbook: r.get(8)?,
            run_id: r.get(9)?,
            detail: r.get(10)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// How many columns `SUMMARY_COLUMNS` are: a fuller row's own columns come after them.
const SUMMARY_WIDTH: usize = 13;
const SUMMARY_COLUMNS: &str = concat!(
    "id, playbook, trigger, ",
    crate::backend::SHOWN_STATUS!(),
    ", summary, started_at, ended_at, dry_run, severity, node, running_since, requested_by, \
     CAST(json_extract(timings, '$.total_ms') AS REAL)"
);

pub(super) fn list(
    conn: &Connection,
    limit: usize,
    playbook: Option<&str>,
) -> Result<Vec<RunSummary>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SUMMARY_COLUMNS}
         FROM runs WHERE ?1 IS NULL OR playbook = ?1
         ORDER BY started_at DESC, id DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![playbook, limit as i64], summary_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The runs page: only the filters given are in the SQL, so the planner picks the index led
/// by the one equality filter (or the (started_at, id) index) and stops after `limit` rows.
pub(super) fn list_page(conn: &Connection, filter: &RunFilter) -> Result<Vec<RunSummary>> {
    let (condition, values) = filter.where_clause(|n| format!("?{n}"));
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SUMMARY_COLUMNS} FROM runs {condition}
         ORDER BY started_at DESC, id DESC LIMIT {}",
        filter.limit.min(10_000)
    ))?;
    let rows = stmt.query_map(rusqlite::params_from_iter(values), summary_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn events_after(
    conn: &mut Connection,
    id: &str,
    from: usize,
    limit: usize,
) -> Result<Option<EventsPage>> {
    // One read transaction: the status and the events are of the same moment.
    let tx = conn.transaction()?;
    let status: Option<String> = tx
        .prepare_cached("SELECT status FROM runs WHERE id = ?1")?
        .query_row(params![id], |r| r.get(0))
        .optional()?;
    let Some(status) = status else {
        return Ok(None);
    };
    let from = i64::try_from(from).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let events = tx
        .prepare_cached(
            "SELECT seq, event FROM events WHERE run_id = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3",
        )?
        .query_map(params![id, from, limit], |r| {
            Ok((r.get::<_, i64>(0)? as usize, r.get::<_, String>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    tx.commit()?;
    Ok(Some(EventsPage { status, events }))
}

pub(super) fn get(conn: &Connection, id: &str) -> Result<Option<StoredRun>> {
    let run = conn
        .query_row(
            &format!(
                "SELECT {SUMMARY_COLUMNS}, origin, params, alert, actions, reason, dedup_key,
                        timings, grants
                 FROM runs WHERE id = ?1"
            ),
            params![id],
            |r| {
                let json = |i: usize| -> rusqlite::Result<Option<serde_json::Value>> {
                    let text: Option<String> = r.get(i)?;
                    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
                };
                Ok(StoredRun {
                    run: summary_row(r)?,
                    origin: r.get(SUMMARY_WIDTH)?,
                    params: json(SUMMARY_WIDTH + 1)?.unwrap_or_default(),
                    alert: json(SUMMARY_WIDTH + 2)?,
                    actions: json(SUMMARY_WIDTH + 3)?.unwrap_or_default(),
                    reason: r.get(SUMMARY_WIDTH + 4)?,
                    dedup_key: r.get(SUMMARY_WIDTH + 5)?,
                    timings: json(SUMMARY_WIDTH + 6)?,
                    grants: json(SUMMARY_WIDTH + 7)?,
                    timeline: Vec::new(),
                    artifacts: Vec::new(),
                    deliveries: Vec::new(),
                })
            },
        )
        .optional()?;
    let Some(mut run) = run else { return Ok(None) };
    let mut stmt = conn.prepare("SELECT event FROM events WHERE run_id = ?1 ORDER BY seq")?;
    for text in stmt.query_map(params![id], |r| r.get::<_, String>(0))? {
        run.timeline.push(serde_json::from_str(&text?)?);
    }
    let mut stmt = conn.prepare(
        "SELECT name, content_type, sha256, content FROM artifacts WHERE run_id = ?1 ORDER BY seq",
    )?;
    let artifacts = stmt.query_map(params![id], |r| {
        let content: Vec<u8> = r.get(3)?;
        Ok(Artifact {
            name: r.get(0)?,
            content_type: r.get(1)?,
            sha256: r.get(2)?,
            bytes: content.len(),
            text: String::from_utf8_lossy(&content).into_owned(),
        })
    })?;
    run.artifacts = artifacts.collect::<rusqlite::Result<_>>()?;
    run.deliveries = outbox::rows_for_run(conn, id)?;
    Ok(Some(run))
}

fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunSummary> {
    Ok(RunSummary {
        id: r.get(0)?,
        playbook: r.get(1)?,
        trigger: r.get(2)?,
        status: r.get(3)?,
        summary: r.get(4)?,
        started_at: r.get(5)?,
        ended_at: r.get(6)?,
        dry_run: r.get(7)?,
        severity: r.get(8)?,
        node: r.get(9)?,
        running_since: r.get(10)?,
        by: r.get(11)?,
        took_ms: r.get(12)?,
    })
}
