//! Runs on PostgreSQL: one admission alone (dedup and cooldown keys under a unique
//! constraint), alerts, leases and ends; claims are in slots.rs, batched admissions in
//! admission.rs, outcomes in finishes.rs.

use std::time::Duration;

use super::sql::Db;
use anyhow::{Result, bail};
use tokio_postgres::Row;

use super::sql::{begin, commit};
// The statement helpers, where the other modules have always found them.
pub(super) use super::sql::{execute, query, query_opt};
use super::{Postgres, count_statement, index_key, pg_error, secs};
use crate::records::{Admit, Admitted, AlertRecord, Gate, LOST_REASON, QueuedRun, UnfinishedRun};
// Runs that ended without a result: they never hold a dedup or cooldown key.
use crate::{CUT_OFF, Untold};

pub(super) const QUEUED_COLUMNS: &str = "id, playbook, origin, trigger, params, alert, dry_run, dedup_key, started_at, severity, node, \
     requested_by";

pub(super) fn json(text: Option<String>) -> Option<serde_json::Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

pub(super) fn queued_run(r: &Row) -> QueuedRun {
    QueuedRun {
        id: r.get(0),
        playbook: r.get(1),
        origin: r.get(2),
        trigger: r.get(3),
        params: json(r.get(4)).unwrap_or_default(),
        alert: json(r.get(5)),
        dry_run: r.get(6),
        dedup_key: r.get(7),
        started_at: r.get(8),
        severity: r.get(9),
        node: r.get(10),
        by: r.get(11),
    }
}

pub(super) async fn insert_run(
    c: &impl Db,
    run: &QueuedRun,
    running: Option<(&str, Duration)>,
    cooldown_key: Option<&str>,
) -> Result<()> {
    let (status, runner, lease) = match running {
        Some((runner, lease)) => ("running", Some(runner), Some(secs(lease))),
        None => ("queued", None, None),
    };
    let (alertname, alert_starts_at, alert_instance) =
        runbook_core::figures::alert_keys(run.alert.as_ref());
    execute(
        c,
        "INSERT INTO runs (id, playbook, origin, trigger, params, alert, dry_run, status,
                           dedup_key, started_at, severity, cooldown_key, runner, lease_until,
                           node, running_since, requested_by, alertname, alert_starts_at,
                           alert_instance)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                 now() + $14::float8 * interval '1 second', $15,
                 CASE WHEN $8 = 'running' THEN $10 END, $16, $17, $18, $19)",
        &[
            &run.id,
            &run.playbook,
            &run.origin,
            &run.trigger,
            &run.params.to_string(),
            &run.alert.as_ref().map(|a| a.to_string()),
            &run.dry_run,
            &status,
            &run.dedup_key,
            &run.started_at,
            &run.severity,
            &cooldown_key,
            &runner,
            &lease,
            &run.node,
            &run.by,
            &alertname,
            &alert_starts_at,
            &alert_instance,
        ],
    )
    .await?;
    Ok(())
}

/// A run just inserted that must not execute: ended at once as `held` or `suppressed`, with
/// why as its reason and summary (it never holds a slot, a lease or a claimer's attention).
pub(super) async fn mark_gated(c: &impl Db, run_id: &str, gate: &Gate) -> Result<()> {
    let Some(reason) = gate.reason() else {
        return Ok(());
    };
    execute(
        c,
        "UPDATE runs SET status = $2, reason = $3, summary = $3, ended_at = started_at
         WHERE id = $1",
        &[&run_id, &gate.status().as_str(), &reason],
    )
    .await?;
    Ok(())
}

async fn insert_alert(c: &impl Db, alert: &AlertRecord) -> Result<()> {
    execute(
        c,
        "INSERT INTO alerts (received_at, source, alertname, status, fingerprint, starts_at,
                             labels, disposition, playbook, run_id, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            &alert.received_at,
            &alert.source,
            &alert.alertname,
            &alert.status,
            &alert.fingerprint,
            &alert.starts_at,
            &alert.labels.to_string(),
            &alert.disposition.as_str(),
            &alert.playbook,
            &alert.run_id,
            &alert.detail,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn insert_running(
    pg: &Postgres,
    run: QueuedRun,
    runner: &str,
    lease: Duration,
) -> Result<()> {
    insert_run(&pg.client().await?, &run, Some((runner, lease)), None).await
}

/// Takes `key` of `kind` for `run_id` for `window`, unless a live key names another run:
/// then that run's id. Two replicas taking one key meet on the primary key; the second waits
/// for the first to commit and then sees its row.
async fn take_key(
    c: &impl Db,
    kind: &str,
    key: &str,
    run_id: &str,
    window: Duration,
) -> Result<Option<String>> {
    let (kind, key) = (index_key(kind), index_key(key));
    // The conflicting row stays locked by us whatever the WHERE says, so the holder read next
    // is the one that refused us; the second round only covers a row pruned in between.
    for _ in 0..2 {
        let taken = query_opt(
            c,
            &format!(
                "INSERT INTO admission_keys (kind, key, run_id, until)
                 VALUES ($1, $2, $3, now() + $4::float8 * interval '1 second')
                 ON CONFLICT (kind, key) DO UPDATE
                     SET run_id = EXCLUDED.run_id, until = EXCLUDED.until
                     WHERE admission_keys.until < now()
                        OR EXISTS (SELECT 1 FROM runs WHERE runs.id = admission_keys.run_id
                                                        AND runs.status IN {CUT_OFF})
                 RETURNING run_id"
            ),
            &[&kind, &key, &run_id, &secs(window)],
        )
        .await?;
        if taken.is_some() {
            return Ok(None);
        }
        let holder = query_opt(
            c,
            "SELECT run_id FROM admission_keys WHERE kind = $1 AND key = $2",
            &[&kind, &key],
        )
        .await?;
        if let Some(holder) = holder {
            return Ok(Some(holder.get(0)));
        }
    }
    bail!("the admission key ({kind}) kept changing under this admission")
}

/// One admission inside `tx`, statement by statement (the path of an admission a batch
/// could not decide with the others).
pub(super) async fn admit_in(tx: &super::sql::Tx<'_>, admit: Admit) -> Result<Admitted> {
    let Admit {
        run,
        dedup_window,
        cooldown,
        mut alert,
        gate,
    } = admit;
    // A held or suppressed run takes no cooldown key: it must not keep the alert from running
    // once the breaker closes or the window ends.
    let cooldown = cooldown.filter(|_| gate == Gate::Run);
    // A cooldown refusal undoes the dedup key taken just before: it must not name a run that
    // was never recorded.
    count_statement();
    tx.batch_execute("SAVEPOINT keys").await.map_err(pg_error)?;
    let mut admitted = None;
    if let (Some(key), Some(window)) = (&run.dedup_key, dedup_window) {
        admitted = take_key(tx, "dedup", key, &run.id, window)
            .await?
            .map(Admitted::Deduplicated);
    }
    if let (None, Some((key, period))) = (&admitted, &cooldown) {
        let kind = format!("cooldown:{}", run.playbook);
        if take_key(tx, &kind, key, &run.id, *period).await?.is_some() {
            count_statement();
            tx.batch_execute("ROLLBACK TO SAVEPOINT keys")
                .await
                .map_err(pg_error)?;
            admitted = Some(Admitted::Cooldown);
        }
    }
    let admitted = match admitted {
        Some(admitted) => admitted,
        None => {
            let cooldown_key = cooldown.as_ref().map(|(key, _)| key.as_str());
            insert_run(tx, &run, None, cooldown_key).await?;
            mark_gated(tx, &run.id, &gate).await?;
            // Other replicas hear of it after the commit (Backend::admit announces it).
            Admitted::Started
        }
    };
    if let Some(alert) = &mut alert {
        (alert.disposition, alert.run_id) = admitted.disposition(&run.id, &gate);
        insert_alert(tx, alert).await?;
    }
    Ok(admitted)
}

pub(super) async fn record_alerts(pg: &Postgres, alerts: Vec<AlertRecord>) -> Result<()> {
    let mut client = pg.client().await?;
    let tx = begin(&mut client).await?;
    for alert in &alerts {
        insert_alert(&tx, alert).await?;
    }
    commit(tx).await
}

/// Frees the slot `run_id` holds (the caller announces it once committed).
pub(super) async fn free_slot(c: &impl Db, run_id: &str) -> Result<()> {
    execute(
        c,
        "UPDATE slots SET run_id = NULL, lease_until = NULL WHERE run_id = $1",
        &[&run_id],
    )
    .await?;
    Ok(())
}

pub(super) async fn end_unfinished(
    pg: &Postgres,
    id: &str,
    status: &str,
    reason: &str,
) -> Result<bool> {
    let mut client = pg.client().await?;
    let tx = begin(&mut client).await?;
    let updated = execute(
        &tx,
        "UPDATE runs SET status = $2, reason = $3, summary = $4, ended_at = runbook_now_text(),
             lease_until = NULL
         WHERE id = $1 AND status IN ('queued', 'running')",
        &[&id, &status, &reason, &format!("run {status}: {reason}")],
    )
    .await?;
    if updated == 1 {
        free_slot(&tx, id).await?;
    }
    commit(tx).await?;
    Ok(updated == 1)
}

pub(super) async fn renew_leases(pg: &Postgres, runner: &str, lease: Duration) -> Result<usize> {
    let row = query_opt(
        &pg.client().await?,
        "WITH held AS (
             UPDATE runs SET lease_until = now() + $2::float8 * interval '1 second'
             WHERE id IN (SELECT id FROM runs WHERE runner = $1 AND status = 'running'
                          ORDER BY id FOR UPDATE)
             RETURNING id),
         slots_held AS (
             UPDATE slots SET lease_until = now() + $2::float8 * interval '1 second'
             WHERE run_id IN (SELECT id FROM held))
         SELECT count(*) FROM held",
        &[&runner, &secs(lease)],
    )
    .await?;
    Ok(row.map_or(0, |r| r.get::<_, i64>(0)) as usize)
}

pub(super) async fn expire_leases(pg: &Postgres) -> Result<usize> {
    let mut client = pg.client().await?;
    let tx = begin(&mut client).await?;
    let row = query_opt(
        &tx,
        // SKIP LOCKED: two replicas expiring at once, or a late renewal, never wait on each
        // other (a row skipped now is looked at again on the next period).
        "WITH lost AS (
             UPDATE runs SET status = 'lost', ended_at = runbook_now_text(), reason = $1,
                 summary = $2
             WHERE id IN (SELECT id FROM runs WHERE status = 'running' AND lease_until < now()
                          ORDER BY id FOR UPDATE SKIP LOCKED)
             RETURNING id),
         freed AS (
             UPDATE slots SET run_id = NULL, lease_until = NULL
             WHERE run_id IN (SELECT id FROM lost))
         SELECT count(*) FROM lost",
        &[&LOST_REASON, &format!("run lost: {LOST_REASON}")],
    )
    .await?;
    let lost = row.map_or(0, |r| r.get::<_, i64>(0)) as usize;
    // Housekeeping on the rescuer's period: keys past their window decide nothing.
    execute(
        &tx,
        "DELETE FROM admission_keys k USING (
             SELECT kind, key FROM admission_keys WHERE until < now()
             LIMIT 10000 FOR UPDATE SKIP LOCKED) old
         WHERE k.kind = old.kind AND k.key = old.key",
        &[],
    )
    .await?;
    commit(tx).await?;
    Ok(lost)
}

/// Runs that ended `status` (lost, undeliverable) nobody was told about, marked told; the
/// status is spelled into the statement, as its partial index spells it.
pub(super) async fn take_unnotified(
    pg: &Postgres,
    status: Untold,
    max: usize,
) -> Result<Vec<UnfinishedRun>> {
    let status = status.as_str();
    let rows = query(
        &pg.client().await?,
        &format!(
            "UPDATE runs SET lost_notified_at = runbook_now_text()
             WHERE id IN (SELECT id FROM runs WHERE status = '{status}'
                            AND lost_notified_at IS NULL
                          ORDER BY started_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING {QUEUED_COLUMNS}"
        ),
        &[&(max as i64)],
    )
    .await?;
    let mut runs: Vec<UnfinishedRun> = rows.iter().map(queued_run).collect();
    runs.sort_by(|a, b| (&a.started_at, &a.id).cmp(&(&b.started_at, &b.id)));
    Ok(runs)
}
