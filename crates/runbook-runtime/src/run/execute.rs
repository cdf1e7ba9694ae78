//! Executing a pending run: the store with its limits and deadline, the playbook's `run`, the
//! run's ending (outcome, timeline, artifacts, fixture) and its record in the store.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};
use futures::FutureExt;
use tracing::Instrument;
use wasmtime::{Store, UpdateDeadline};

use super::ending::{escalated, failed, outcome_size_problem, trap_reason};
use super::{Host, PendingRun, Prepared, RunRecord, Timings};
use crate::bindings::Incident;
use crate::calls::RunContext;
use crate::engine::PlaybookEngine;
use crate::notify::AlertRef;
use crate::panics::panic_message;
use crate::records::rfc3339;
use crate::state::{LimitExceeded, RunState};
use crate::timeline::{Sink, Timeline, round_ms};

impl Host {
    pub async fn execute(
        &self,
        prepared: &Prepared,
        pending: PendingRun,
        sink: Option<Sink>,
    ) -> Result<RunRecord> {
        Ok(self.execute_taped(prepared, pending, sink, None).await?.0)
    }

    pub async fn execute_taped(
        &self,
        prepared: &Prepared,
        pending: PendingRun,
        sink: Option<Sink>,
        tape: Option<crate::tape::Tape>,
    ) -> Result<(RunRecord, Option<crate::tape::Tape>)> {
        let replaying = matches!(tape, Some(crate::tape::Tape::Replaying(_)));
        let PendingRun {
            run_id,
            started_at,
            alert_json,
            params,
            severity,
            request,
        } = pending;
        let name = prepared.source.name.clone();
        let grants = Arc::new(self.grants_for(&prepared.source));
        let limits = self.limits_for(&name);
        let started = Instant::now();
        if !grants.docker.is_empty() && !replaying {
            self.docker.connect_ahead();
        }

        let mut state = RunState::new(
            grants.clone(),
            limits.clone(),
            request.dry_run,
            Timeline::new(sink),
            self.services(),
        );
        if let Some(crate::tape::Tape::Replaying(replayer)) = &tape
            && let Some(ms) = replayer.wall_clock_ms
        {
            state = state.with_wall_clock(std::time::Duration::from_millis(ms));
        }
        if replaying {
            // A replay acts on nothing: no budget counts it, no freeze applies.
            state.calls.safety = None;
        }
        if let Some(tape) = tape {
            state.set_tape(tape);
        }
        state.calls.context = RunContext {
            run_id: run_id.clone(),
            playbook: name.clone(),
            priority: Some(severity),
            alert: request.alert.as_ref().map(|a| AlertRef {
                name: a.name.clone(),
                fingerprint: a.fingerprint.clone(),
                status: a.status.clone(),
            }),
        };
        let _slot = self.engine.instance_slot().await;
        let clock = state.calls.clock.clone();
        let mut store = new_store(&self.engine, state);
        let incident = Incident {
            run_id: run_id.clone(),
            trigger: request.trigger.into(),
            params: params.clone(),
            alert: request.alert,
            dry_run: request.dry_run,
        };

        let mut instantiate_ms = 0.0;
        let mut run_ms = 0.0;
        // The epoch deadline stops a guest spinning on the CPU; this timeout stops a run stuck
        // waiting on a capability call.
        // A panic inside a host call that the call itself did not catch unwinds out of the
        // guest: the run ends failed with what was recorded so far, the host goes on.
        let span = tracing::info_span!("run", run_id = %run_id, playbook = %name);
        // Asked to stop (crate::cancel): the run's future is dropped at its next await, a
        // capability call in flight or the yield at the next epoch tick.
        let cancel = crate::cancel::register(&run_id);
        let ran = until_deadline(
            &clock,
            std::panic::AssertUnwindSafe(async {
                let t = Instant::now();
                let playbook = prepared.pre.instantiate_async(&mut store).await?;
                instantiate_ms = round_ms(t.elapsed());
                let t = Instant::now();
                let result = playbook.call_run(&mut store, &incident).await;
                run_ms = round_ms(t.elapsed());
                result
            })
            .catch_unwind(),
        )
        .instrument(span);
        let (outcome, stopped_by) = tokio::select! {
            outcome = ran => (Some(outcome.map(|caught| caught.map_err(|panic| panic_message(&*panic)))), None),
            by = cancel.cancelled() => (None, Some(by)),
        };
        drop(cancel);

        let (status, summary, actions, reason) = match outcome {
            None => {
                let why = crate::records::cancelled_by(stopped_by.as_deref().unwrap_or_default());
                store
                    .data_mut()
                    .calls
                    .timeline
                    .log("warn", format!("run {why}"));
                ("cancelled", why.clone(), Vec::new(), Some(why))
            }
            Some(Err(_)) => {
                store.data_mut().note_abandoned_call();
                failed(format!(
                    "limit exceeded: deadline of {}s while waiting in the host (a capability or WASI call)",
                    limits.deadline.as_secs()
                ))
            }
            Some(Ok(outcome)) => match outcome {
                Err(panic) => failed(format!("host error: panic during the run: {panic}")),
                Ok(Ok(Ok(outcome))) => match outcome_size_problem(&outcome) {
                    None => (
                        outcome.status.as_str(),
                        outcome.summary,
                        outcome.actions,
                        None,
                    ),
                    Some(problem) => failed(format!("limit exceeded: {problem}")),
                },
                Ok(Ok(Err(error))) => {
                    let reason =
                        format!("the playbook returned {}: {}", error.kind(), error.detail());
                    // A budget refused an action and the playbook gave up: the rail worked and
                    // people must take over, so the run escalates rather than fails.
                    match &store.data().calls.over_budget {
                        Some(refused) => escalated(refused, reason),
                        None => failed(reason),
                    }
                }
                Ok(Err(trap)) => failed(trap_reason(&trap, &store.data().guest_output())),
            },
        };
        if let Some(by) = &stopped_by {
            crate::cancel::close_questions(self.approvals(), &run_id, by).await;
        }
        let summary = match &store.data().calls.frozen {
            Some((calls, reason)) => format!(
                "{summary} [frozen: {calls} mutating call{} not made ({reason})]",
                if *calls == 1 { " was" } else { "s were" }
            ),
            None => summary,
        };
        let t = Instant::now();
        let mut state = store.into_data();
        // Dropping the store frees the instance (back to the pool in `host serve`).
        let teardown_ms = round_ms(t.elapsed());
        let tape = state.take_tape();
        let (timeline, artifacts) = state.into_parts();
        let capability_calls_ms = round_ms(std::time::Duration::from_secs_f64(
            timeline.call_time_ms() / 1e3,
        ));
        let record = RunRecord {
            run_id,
            playbook: name,
            origin: prepared.source.origin.to_string(),
            trigger: request.trigger.as_str(),
            dry_run: request.dry_run,
            params: params.into_iter().collect(),
            alert: alert_json,
            started_at: rfc3339(started_at),
            ended_at: rfc3339(SystemTime::now()),
            severity,
            status,
            summary,
            actions,
            reason,
            grants: (*grants).clone(),
            timeline: timeline.into_events(),
            artifacts,
            timings: Timings {
                load: prepared.load.clone(),
                instantiate_ms,
                run_ms,
                teardown_ms,
                capability_calls_ms,
                total_ms: round_ms(started.elapsed()),
            },
        };
        let mut record = record;
        if let Some(crate::tape::Tape::Recording(calls)) = &tape {
            let fixture = crate::tape::Fixture::recorded(&record, calls.clone());
            record.artifacts.push(fixture.artifact()?);
        }
        if let Some(store) = &self.store {
            store
                .finish(record.outcome()?)
                .await
                .context("storing the run's outcome")?;
        }
        Ok((record, tape))
    }
}

/// `work` until it ends or the run's clock passes its deadline (which an approval wait moves
/// later while `work` runs).
async fn until_deadline<T>(
    clock: &crate::calls::RunClock,
    work: impl std::future::Future<Output = T>,
) -> Result<T, ()> {
    tokio::pin!(work);
    loop {
        let deadline = tokio::time::Instant::from_std(clock.deadline());
        tokio::select! {
            done = &mut work => return Ok(done),
            _ = tokio::time::sleep_until(deadline) => {
                if Instant::now() >= clock.deadline() {
                    return Err(());
                }
            }
        }
    }
}

pub(super) fn new_store(engine: &PlaybookEngine, state: RunState) -> Store<RunState> {
    let clock = state.calls.clock.clone();
    let mut store = Store::new(engine.engine(), state);
    store.limiter(|state| &mut state.memory);
    let seconds = clock.limit().as_secs();
    store.set_epoch_deadline(1);
    // Every tick: past the deadline ends the run, otherwise yield so other runs on this
    // executor make progress.
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= clock.deadline() {
            return Err(LimitExceeded(format!("deadline of {seconds}s")).into());
        }
        Ok(UpdateDeadline::Yield(1))
    });
    store
}
