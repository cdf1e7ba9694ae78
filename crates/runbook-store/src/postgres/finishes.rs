//! Finishes on PostgreSQL, batched like admissions: one task per process takes the outcomes
//! waiting for it and writes them all in one statement (its own transaction): each run's
//! outcome, its timeline replacing the events appended while it ran, its artifacts, its
//! figures and its slot, or none of that run's parts. A run is written only while `running`
//! (and, when a holder is named, held by it under a live lease); the others in the batch are
//! untouched by it. A batch the database refuses as a whole is written again one outcome per
//! statement, so a bad outcome answers its own error and no other.

use std::collections::HashSet;

use anyhow::{Result, anyhow, bail};
use tokio::sync::{mpsc, oneshot};

use super::CALL_TIMEOUT;
use super::sql::{Connections, query, query_opt};
use crate::records::RunOutcome;

/// Most outcomes per statement: runs end at most as fast as a process executes them, so a
/// batch rarely holds more than the process's concurrent runs.
const BATCH: usize = 64;
/// Outcomes waiting for the writer; callers beyond it wait.
const QUEUE: usize = 4096;

/// An outcome, the holder that must still hold its run (None: whoever does), its answer.
type Job = (RunOutcome, Option<String>, oneshot::Sender<Result<bool>>);

pub(super) struct Finishes {
    jobs: mpsc::Sender<Job>,
    writer: tokio::task::AbortHandle,
}

impl Drop for Finishes {
    fn drop(&mut self) {
        self.writer.abort();
    }
}

impl Finishes {
    pub(super) fn start(pool: Connections) -> Finishes {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let writer = tokio::spawn(write_batches(pool, queue)).abort_handle();
        Finishes { jobs, writer }
    }

    /// Writes the outcome of a run still `running` (and, with `holder`, held by it under a
    /// live lease); false, nothing written, when a holder was named and does not hold it; an
    /// error when no holder was named and the run is not running.
    pub(super) async fn finish(&self, outcome: RunOutcome, holder: Option<String>) -> Result<bool> {
        let (answer, answered) = oneshot::channel();
        self.jobs
            .send((outcome, holder, answer))
            .await
            .map_err(|_| anyhow!("the finish writer has stopped"))?;
        answered
            .await
            .map_err(|_| anyhow!("the finish writer dropped the outcome"))?
    }
}

async fn write_batches(pool: Connections, mut queue: mpsc::Receiver<Job>) {
    let mut waiting: Vec<Job> = Vec::new();
    loop {
        if waiting.is_empty() {
            if queue.recv_many(&mut waiting, BATCH).await == 0 {
                return;
            }
        } else {
            while waiting.len() < BATCH {
                match queue.try_recv() {
                    Ok(job) => waiting.push(job),
                    Err(_) => break,
                }
            }
        }
        // One outcome per run in a statement (its parts would meet themselves): a second
        // outcome of the same run waits for the next batch.
        let (mut ids, mut batch, mut later) = (HashSet::new(), Vec::new(), Vec::new());
        for job in waiting.drain(..) {
            if batch.len() < BATCH && ids.insert(job.0.run_id.clone()) {
                batch.push(job);
            } else {
                later.push(job);
            }
        }
        waiting = later;
        write(&pool, batch).await;
    }
}

async fn write(pool: &Connections, batch: Vec<Job>) {
    let written = tokio::time::timeout(CALL_TIMEOUT, write_batch(pool, &batch)).await;
    match written {
        Ok(Ok(done)) => {
            for (outcome, holder, answer) in batch {
                let answered = if done.contains(&outcome.run_id) {
                    Ok(true)
                } else if holder.is_some() {
                    Ok(false)
                } else {
                    not_running(pool, &outcome.run_id).await
                };
                let _ = answer.send(answered);
            }
        }
        Ok(Err(e)) if batch.len() > 1 => {
            tracing::debug!("a batch of {} outcomes: {e:#}; one by one", batch.len());
            for job in batch {
                Box::pin(write(pool, vec![job])).await;
            }
        }
        Ok(Err(e)) => {
            if let Some((.., answer)) = batch.into_iter().next() {
                let _ = answer.send(Err(e));
            }
        }
        // Dropped answers: each caller hears the writer dropped it (and its own deadline).
        Err(_) => tracing::warn!("a batch of {} outcomes timed out", batch.len()),
    }
}

/// Why an outcome named no holder and found its run not running.
async fn not_running(pool: &Connections, id: &str) -> Result<bool> {
    let client = pool.get().await.map_err(|e| anyhow!("{e}"))?;
    let status = query_opt(&client, "SELECT status FROM runs WHERE id = $1", &[&id]).await?;
    match status {
        Some(row) => bail!(
            "run {id} is {}, not running: its outcome is not recorded",
            row.get::<_, String>(0)
        ),
        None => bail!("run {id} was never recorded as started"),
    }
}

/// The batch's columns, one element per outcome (`runs`), per event, per artifact and per
/// kind of action taken, each naming its run.
#[derive(Default)]
struct Columns {
    id: Vec<String>,
    status: Vec<String>,
    summary: Vec<String>,
    actions: Vec<String>,
    reason: Vec<Option<String>>,
    ended_at: Vec<String>,
    timings: Vec<String>,
    grants: Vec<String>,
    holder: Vec<Option<String>>,
    first_at: Vec<Option<String>>,
    events: Vec<i32>,
    act_run: Vec<String>,
    act_kind: Vec<String>,
    act_calls: Vec<i64>,
    ev_run: Vec<String>,
    ev_seq: Vec<i32>,
    ev_text: Vec<String>,
    art_run: Vec<String>,
    art_seq: Vec<i32>,
    art_name: Vec<String>,
    art_type: Vec<String>,
    art_sha: Vec<String>,
    art_content: Vec<Vec<u8>>,
}

impl Columns {
    fn push(&mut self, outcome: &RunOutcome, holder: Option<&str>) -> Result<()> {
        let id = &outcome.run_id;
        // The figures' part (first mutating call, its kinds) goes in with the outcome.
        let acted = runbook_core::figures::actions_of(&outcome.events);
        self.id.push(id.clone());
        self.status.push(outcome.status.clone());
        self.summary.push(outcome.summary.clone());
        self.actions.push(serde_json::to_string(&outcome.actions)?);
        self.reason.push(outcome.reason.clone());
        self.ended_at.push(outcome.ended_at.clone());
        self.timings.push(outcome.timings.to_string());
        self.grants.push(outcome.grants.to_string());
        self.holder.push(holder.map(str::to_string));
        self.first_at.push(acted.first_at);
        self.events.push(i32::try_from(outcome.events.len())?);
        for (kind, calls) in acted.kinds {
            self.act_run.push(id.clone());
            self.act_kind.push(kind);
            self.act_calls.push(calls as i64);
        }
        for (seq, event) in outcome.events.iter().enumerate() {
            self.ev_run.push(id.clone());
            self.ev_seq.push(i32::try_from(seq)?);
            self.ev_text.push(event.clone());
        }
        for (seq, artifact) in outcome.artifacts.iter().enumerate() {
            self.art_run.push(id.clone());
            self.art_seq.push(i32::try_from(seq)?);
            self.art_name.push(artifact.name.clone());
            self.art_type.push(artifact.content_type.clone());
            self.art_sha.push(artifact.sha256.clone());
            self.art_content.push(artifact.text.as_bytes().to_vec());
        }
        Ok(())
    }
}

/// Writes the batch in one statement; the runs whose outcome was written.
async fn write_batch(pool: &Connections, batch: &[Job]) -> Result<HashSet<String>> {
    let mut c = Columns::default();
    for (outcome, holder, _) in batch {
        c.push(outcome, holder.as_deref())?;
    }
    let client = pool.get().await.map_err(|e| anyhow!("{e}"))?;
    // The timeline replaces the events appended while the run ran: rows past its end
    // deleted, the others overwritten (two parts of one statement never touch the same row).
    let rows = query(
        &client,
        "WITH o AS (
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                  $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                                  $11::int[])
                 AS o(id, status, summary, actions, reason, ended_at, timings, grants, holder,
                      first_at, events)),
         done AS (
             UPDATE runs SET status = o.status, summary = o.summary, actions = o.actions,
                 reason = o.reason, ended_at = o.ended_at, timings = o.timings,
                 grants = o.grants, lease_until = NULL, first_action_at = o.first_at,
                 to_start_ms = runbook_ms(runs.running_since)
                     - runbook_ms(COALESCE(runs.alert_starts_at, runs.started_at)),
                 to_action_ms = runbook_ms(o.first_at)
                     - runbook_ms(COALESCE(runs.alert_starts_at, runs.started_at)),
                 to_end_ms = runbook_ms(o.ended_at)
                     - runbook_ms(COALESCE(runs.alert_starts_at, runs.started_at))
             FROM o
             WHERE runs.id = o.id AND runs.status = 'running'
               AND (o.holder IS NULL OR (runs.runner = o.holder AND runs.lease_until >= now()))
             RETURNING runs.id, runs.started_at, o.events),
         acted AS (
             INSERT INTO run_actions (run_id, kind, calls, started_at)
             SELECT done.id, k.kind, k.calls, done.started_at
             FROM unnest($12::text[], $13::text[], $14::bigint[]) k(run_id, kind, calls)
             JOIN done ON done.id = k.run_id
             ON CONFLICT (run_id, kind) DO UPDATE SET calls = EXCLUDED.calls),
         timeline AS (
             INSERT INTO events (run_id, seq, event)
             SELECT done.id, e.seq, e.event
             FROM unnest($15::text[], $16::int[], $17::text[]) e(run_id, seq, event)
             JOIN done ON done.id = e.run_id
             ON CONFLICT (run_id, seq) DO UPDATE SET event = EXCLUDED.event),
         past_end AS (
             DELETE FROM events USING done
             WHERE events.run_id = done.id AND events.seq >= done.events),
         kept AS (
             INSERT INTO artifacts (run_id, seq, name, content_type, sha256, content)
             SELECT done.id, a.seq, a.name, a.content_type, a.sha256, a.content
             FROM unnest($18::text[], $19::int[], $20::text[], $21::text[], $22::text[],
                         $23::bytea[]) a(run_id, seq, name, content_type, sha256, content)
             JOIN done ON done.id = a.run_id),
         freed AS (
             UPDATE slots SET run_id = NULL, lease_until = NULL
             WHERE run_id IN (SELECT id FROM done))
         SELECT id FROM done",
        &[
            &c.id,
            &c.status,
            &c.summary,
            &c.actions,
            &c.reason,
            &c.ended_at,
            &c.timings,
            &c.grants,
            &c.holder,
            &c.first_at,
            &c.events,
            &c.act_run,
            &c.act_kind,
            &c.act_calls,
            &c.ev_run,
            &c.ev_seq,
            &c.ev_text,
            &c.art_run,
            &c.art_seq,
            &c.art_name,
            &c.art_type,
            &c.art_sha,
            &c.art_content,
        ],
    )
    .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
