//! Group commit on PostgreSQL: one task per process takes the admissions waiting for it (up
//! to `admission-batch`) and decides them together in one transaction — a few multi-row
//! statements (`unnest` arrays, keys by `ON CONFLICT`, answers from `RETURNING`) whatever
//! the batch's size — and answers each caller only after the commit, so a 202 still means
//! "stored". Across replicas nothing changes: keys meet on the same unique constraint and the
//! second waits for the first's commit.
//!
//! Admissions sharing a key within a batch are decided in rounds, in arrival order (an
//! admission waits for the round after every earlier one it shares a key with), so the
//! answers are those of one-after-the-other. A batch that fails (a value the database
//! refuses, a deadlock with another replica) is rolled back and its admissions are retried
//! one transaction each, so one bad admission answers its own error and no other.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use tokio::sync::{mpsc, oneshot};

use super::runs;
use super::sql::{Connections, Db, Tx, begin, commit, execute, query};
use super::{CALL_TIMEOUT, index_key, secs};
use crate::CUT_OFF;
use crate::records::{Admit, Admitted, Gate};

/// Default admissions per transaction: measured (README, Performance) — past it the batch's
/// own time adds to p99 more than the saved commits give back.
pub const DEFAULT_ADMISSION_BATCH: usize = 256;
/// Admissions waiting for the writer; callers beyond it wait (backpressure, not memory).
const QUEUE: usize = 8192;

type Job = (Admit, oneshot::Sender<Result<Admitted>>);

pub(super) struct Admissions {
    jobs: mpsc::Sender<Job>,
    writer: tokio::task::AbortHandle,
}

impl Drop for Admissions {
    fn drop(&mut self) {
        self.writer.abort();
    }
}

impl Admissions {
    pub(super) fn start(pool: Connections, batch: usize) -> Admissions {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let writer = tokio::spawn(write_batches(pool, queue, batch.max(1))).abort_handle();
        Admissions { jobs, writer }
    }

    /// Decides `admit` in the writer's next batch; answers once that batch committed.
    pub(super) async fn admit(&self, admit: Admit) -> Result<Admitted> {
        let (answer, answered) = oneshot::channel();
        self.jobs
            .send((admit, answer))
            .await
            .map_err(|_| anyhow!("the admission writer has stopped"))?;
        answered
            .await
            .map_err(|_| anyhow!("the admission writer dropped the admission"))?
    }
}

async fn write_batches(pool: Connections, mut queue: mpsc::Receiver<Job>, max: usize) {
    let mut batch = Vec::with_capacity(max);
    while queue.recv_many(&mut batch, max).await > 0 {
        let (admits, answers): (Vec<Admit>, Vec<_>) = batch.drain(..).unzip();
        let decided = tokio::time::timeout(CALL_TIMEOUT, decide_batch(&pool, &admits)).await;
        match decided {
            Ok(Ok(answers_of_batch)) => {
                for (answer, admitted) in answers.into_iter().zip(answers_of_batch) {
                    let _ = answer.send(Ok(admitted));
                }
            }
            Ok(Err(e)) => {
                if admits.len() > 1 {
                    tracing::debug!("a batch of {} admissions: {e:#}; one by one", admits.len());
                }
                for (admit, answer) in admits.into_iter().zip(answers) {
                    let one = tokio::time::timeout(CALL_TIMEOUT, admit_alone(&pool, admit));
                    let _ = answer.send(match one.await {
                        Ok(result) => result,
                        Err(_) => Err(anyhow!("no answer within {}s", CALL_TIMEOUT.as_secs())),
                    });
                }
            }
            // Dropped answers: each caller hears the writer dropped it (and its own deadline).
            Err(_) => tracing::warn!("a batch of {} admissions timed out", admits.len()),
        }
    }
}

/// One admission in its own transaction (a batch's fallback).
async fn admit_alone(pool: &Connections, admit: Admit) -> Result<Admitted> {
    let mut client = pool.get().await.map_err(|e| anyhow!("{e}"))?;
    let tx = begin(&mut client).await?;
    let admitted = runs::admit_in(&tx, admit).await?;
    commit(tx).await?;
    Ok(admitted)
}

/// A key as the admission_keys table holds it: (kind, key), both as index entries.
type Key = (String, String);

fn dedup_key(admit: &Admit) -> Option<Key> {
    match (&admit.run.dedup_key, admit.dedup_window) {
        (Some(key), Some(_)) => Some(("dedup".into(), index_key(key).into_owned())),
        _ => None,
    }
}

fn cooldown_key(admit: &Admit) -> Option<Key> {
    // A held or suppressed run takes no cooldown key: it must not keep the alert from running
    // once the breaker closes or the window ends.
    if admit.gate != Gate::Run {
        return None;
    }
    let (key, _) = admit.cooldown.as_ref()?;
    let kind = format!("cooldown:{}", admit.run.playbook);
    Some((index_key(&kind).into_owned(), index_key(key).into_owned()))
}

/// Decides every admission of the batch in one transaction; the answers in its order.
async fn decide_batch(pool: &Connections, admits: &[Admit]) -> Result<Vec<Admitted>> {
    let mut client = pool.get().await.map_err(|e| anyhow!("{e}"))?;
    let mut answers: Vec<Option<Admitted>> = vec![None; admits.len()];
    let keyless = admits
        .iter()
        .all(|a| dedup_key(a).is_none() && cooldown_key(a).is_none() && a.alert.is_none());
    if keyless {
        // One statement is its own transaction.
        insert_runs(&client, admits.iter()).await?;
        return Ok(vec![Admitted::Started; admits.len()]);
    }
    let tx = begin(&mut client).await?;
    // Dedup answers known in the batch: a later admission with a key an earlier one took (or
    // was refused by) meets the same live row, so it gets the same holder without asking.
    let mut holders: HashMap<Key, String> = HashMap::new();
    loop {
        let mut round = Vec::new();
        let mut waiting: HashSet<Key> = HashSet::new();
        for (i, admit) in admits.iter().enumerate() {
            if answers[i].is_some() {
                continue;
            }
            let dedup = dedup_key(admit);
            if let Some(holder) = dedup.as_ref().and_then(|k| holders.get(k))
                && !dedup.as_ref().is_some_and(|k| waiting.contains(k))
            {
                answers[i] = Some(Admitted::Deduplicated(holder.clone()));
                continue;
            }
            let keys: Vec<Key> = dedup.into_iter().chain(cooldown_key(admit)).collect();
            if keys.iter().all(|k| !waiting.contains(k)) {
                round.push(i);
            }
            waiting.extend(keys);
        }
        if round.is_empty() {
            break;
        }
        decide_round(&tx, admits, &round, &mut answers, &mut holders).await?;
    }
    let answers: Vec<Admitted> = answers
        .into_iter()
        .map(|a| a.expect("every admission of a batch is decided"))
        .collect();
    insert_alerts(&tx, admits, &answers).await?;
    commit(tx).await?;
    Ok(answers)
}

/// Decides admissions that share no key: dedup keys, then cooldown keys of those not
/// deduplicated (a refusal gives back the dedup key just taken), then the runs started.
async fn decide_round(
    tx: &Tx<'_>,
    admits: &[Admit],
    round: &[usize],
    answers: &mut [Option<Admitted>],
    holders: &mut HashMap<Key, String>,
) -> Result<()> {
    let with_dedup: Vec<(usize, Key, Duration)> = round
        .iter()
        .filter_map(|&i| Some((i, dedup_key(&admits[i])?, admits[i].dedup_window?)))
        .collect();
    let refused = take_keys(tx, admits, &with_dedup).await?;
    let mut took_dedup = HashMap::new();
    for (i, key, _) in &with_dedup {
        match refused.get(key) {
            Some(holder) => answers[*i] = Some(Admitted::Deduplicated(holder.clone())),
            None => {
                took_dedup.insert(*i, key.clone());
            }
        }
        let holder = refused.get(key).unwrap_or(&admits[*i].run.id);
        holders.insert(key.clone(), holder.clone());
    }
    let with_cooldown: Vec<(usize, Key, Duration)> = round
        .iter()
        .filter(|&&i| answers[i].is_none())
        .filter_map(|&i| Some((i, cooldown_key(&admits[i])?, admits[i].cooldown.as_ref()?.1)))
        .collect();
    let refused = take_keys(tx, admits, &with_cooldown).await?;
    let mut give_back = Vec::new();
    for (i, key, _) in &with_cooldown {
        if refused.contains_key(key) {
            answers[*i] = Some(Admitted::Cooldown);
            if let Some(dedup) = took_dedup.get(i) {
                // It names a run never recorded: as if never taken (the row it replaced, if
                // any, was past its window or named a cut-off run: it decided nothing).
                give_back.push((dedup.1.clone(), admits[*i].run.id.clone()));
                holders.remove(dedup);
            }
        }
    }
    if !give_back.is_empty() {
        let (keys, ids): (Vec<String>, Vec<String>) = give_back.into_iter().unzip();
        execute(
            tx,
            "DELETE FROM admission_keys k USING unnest($1::text[], $2::text[]) AS g(key, run_id)
             WHERE k.kind = 'dedup' AND k.key = g.key AND k.run_id = g.run_id",
            &[&keys, &ids],
        )
        .await?;
    }
    let started: Vec<usize> = round
        .iter()
        .copied()
        .filter(|&i| answers[i].is_none())
        .collect();
    insert_runs(tx, started.iter().map(|&i| &admits[i])).await?;
    for i in started {
        answers[i] = Some(Admitted::Started);
    }
    Ok(())
}

/// Takes each key for its admission's run for its window, unless a live row names another
/// run; returns the refused keys and the run that holds each. The conflicting rows stay
/// locked by this transaction whatever the WHERE said, so the holder read next is the one
/// that refused.
async fn take_keys(
    tx: &Tx<'_>,
    admits: &[Admit],
    keys: &[(usize, Key, Duration)],
) -> Result<HashMap<Key, String>> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let kinds: Vec<&str> = keys.iter().map(|(_, k, _)| k.0.as_str()).collect();
    let names: Vec<&str> = keys.iter().map(|(_, k, _)| k.1.as_str()).collect();
    let ids: Vec<&str> = keys
        .iter()
        .map(|(i, ..)| admits[*i].run.id.as_str())
        .collect();
    let windows: Vec<f64> = keys.iter().map(|(.., w)| secs(*w)).collect();
    // Sorted by key: two replicas' batches lock common keys in the same order.
    let taken = query(
        tx,
        &format!(
            "INSERT INTO admission_keys (kind, key, run_id, until)
             SELECT kind, key, run_id, now() + w * interval '1 second'
             FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[]) AS t(kind, key, run_id, w)
             ORDER BY kind, key
             ON CONFLICT (kind, key) DO UPDATE
                 SET run_id = EXCLUDED.run_id, until = EXCLUDED.until
                 WHERE admission_keys.until < now()
                    OR EXISTS (SELECT 1 FROM runs WHERE runs.id = admission_keys.run_id
                                                    AND runs.status IN {CUT_OFF})
             RETURNING kind, key"
        ),
        &[&kinds, &names, &ids, &windows],
    )
    .await?;
    let taken: HashSet<Key> = taken.iter().map(|r| (r.get(0), r.get(1))).collect();
    let refused: Vec<&Key> = keys
        .iter()
        .map(|(_, k, _)| k)
        .filter(|k| !taken.contains(*k))
        .collect();
    if refused.is_empty() {
        return Ok(HashMap::new());
    }
    let kinds: Vec<&str> = refused.iter().map(|k| k.0.as_str()).collect();
    let names: Vec<&str> = refused.iter().map(|k| k.1.as_str()).collect();
    let holders = query(
        tx,
        "SELECT k.kind, k.key, k.run_id FROM admission_keys k
         JOIN unnest($1::text[], $2::text[]) AS r(kind, key) ON k.kind = r.kind AND k.key = r.key",
        &[&kinds, &names],
    )
    .await?;
    let holders: HashMap<Key, String> = holders
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect();
    if holders.len() != refused.len() {
        // A row pruned in between: the one-by-one path looks again.
        bail!("an admission key changed under the batch");
    }
    Ok(holders)
}

/// The runs' columns as arrays, one element per admission: a column added to the run is
/// one line here and one in the statement.
#[derive(Default)]
struct RunColumns {
    id: Vec<String>,
    playbook: Vec<String>,
    origin: Vec<String>,
    trigger: Vec<String>,
    params: Vec<String>,
    alert: Vec<Option<String>>,
    dry_run: Vec<bool>,
    dedup_key: Vec<Option<String>>,
    started_at: Vec<String>,
    severity: Vec<String>,
    cooldown_key: Vec<Option<String>>,
    node: Vec<Option<String>>,
    requested_by: Vec<Option<String>>,
    status: Vec<String>,
    /// A held or suppressed run's reason (also its summary; it ends as it is admitted).
    reason: Vec<Option<String>>,
    /// The figures' keys of the run's alert (name, startsAt, instance).
    alertname: Vec<Option<String>>,
    alert_starts_at: Vec<Option<String>>,
    alert_instance: Vec<Option<String>>,
}

impl RunColumns {
    fn push(&mut self, admit: &Admit) {
        let run = &admit.run;
        self.id.push(run.id.clone());
        self.playbook.push(run.playbook.clone());
        self.origin.push(run.origin.clone());
        self.trigger.push(run.trigger.clone());
        self.params.push(run.params.to_string());
        self.alert.push(run.alert.as_ref().map(|a| a.to_string()));
        self.dry_run.push(run.dry_run);
        self.dedup_key.push(run.dedup_key.clone());
        self.started_at.push(run.started_at.clone());
        self.severity.push(run.severity.clone());
        self.cooldown_key.push(
            admit
                .cooldown
                .as_ref()
                .filter(|_| admit.gate == Gate::Run)
                .map(|(k, _)| k.clone()),
        );
        self.node.push(run.node.clone());
        self.requested_by.push(run.by.clone());
        self.status.push(admit.gate.status().as_str().to_string());
        self.reason.push(admit.gate.reason().map(str::to_string));
        let (alertname, starts_at, instance) =
            runbook_core::figures::alert_keys(run.alert.as_ref());
        self.alertname.push(alertname);
        self.alert_starts_at.push(starts_at);
        self.alert_instance.push(instance);
    }
}

/// Records the admissions' runs `queued` (or `held`/`suppressed`, ended at once), in one
/// statement.
async fn insert_runs<'a>(c: &impl Db, admits: impl Iterator<Item = &'a Admit>) -> Result<()> {
    let mut cols = RunColumns::default();
    admits.for_each(|a| cols.push(a));
    if cols.id.is_empty() {
        return Ok(());
    }
    execute(
        c,
        "INSERT INTO runs (id, playbook, origin, trigger, params, alert, dry_run, status,
                           dedup_key, started_at, severity, cooldown_key, node, requested_by,
                           reason, summary, ended_at, alertname, alert_starts_at, alert_instance)
         SELECT id, playbook, origin, trigger, params, alert, dry_run, status,
                dedup_key, started_at, severity, cooldown_key, node, requested_by,
                reason, COALESCE(reason, ''), CASE WHEN reason IS NOT NULL THEN started_at END,
                alertname, alert_starts_at, alert_instance
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::bool[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
                     $13::text[], $14::text[], $15::text[], $16::text[], $17::text[],
                     $18::text[])
              AS r(id, playbook, origin, trigger, params, alert, dry_run, dedup_key,
                   started_at, severity, cooldown_key, node, requested_by, status, reason,
                   alertname, alert_starts_at, alert_instance)",
        &[
            &cols.id,
            &cols.playbook,
            &cols.origin,
            &cols.trigger,
            &cols.params,
            &cols.alert,
            &cols.dry_run,
            &cols.dedup_key,
            &cols.started_at,
            &cols.severity,
            &cols.cooldown_key,
            &cols.node,
            &cols.requested_by,
            &cols.status,
            &cols.reason,
            &cols.alertname,
            &cols.alert_starts_at,
            &cols.alert_instance,
        ],
    )
    .await?;
    Ok(())
}

/// Records the alerts of the batch, each with its admission's disposition, in one statement.
async fn insert_alerts(tx: &Tx<'_>, admits: &[Admit], answers: &[Admitted]) -> Result<()> {
    let alerts: Vec<_> = admits
        .iter()
        .zip(answers)
        .filter_map(|(admit, admitted)| {
            let mut alert = admit.alert.clone()?;
            (alert.disposition, alert.run_id) = admitted.disposition(&admit.run.id, &admit.gate);
            Some(alert)
        })
        .collect();
    if alerts.is_empty() {
        return Ok(());
    }
    let col = |f: &dyn Fn(&crate::records::AlertRecord) -> Option<String>| -> Vec<Option<String>> {
        alerts.iter().map(f).collect()
    };
    let columns = [
        col(&|a| Some(a.received_at.clone())),
        col(&|a| Some(a.source.clone())),
        col(&|a| Some(a.alertname.clone())),
        col(&|a| Some(a.status.clone())),
        col(&|a| Some(a.fingerprint.clone())),
        col(&|a| Some(a.starts_at.clone())),
        col(&|a| Some(a.labels.to_string())),
        col(&|a| Some(a.disposition.as_str().to_string())),
        col(&|a| a.playbook.clone()),
        col(&|a| a.run_id.clone()),
        col(&|a| a.detail.clone()),
    ];
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = columns
        .iter()
        .map(|c| c as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    execute(
        tx,
        "INSERT INTO alerts (received_at, source, alertname, status, fingerprint, starts_at,
                             labels, disposition, playbook, run_id, detail)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                              $11::text[])",
        &params,
    )
    .await?;
    Ok(())
}
