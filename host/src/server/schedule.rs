//! Fires the `[[schedule]]`s of host.toml: one task per schedule sleeps until its next firing
//! (plus its jitter), then hands the firing to the store, which records it under its key
//! (schedule, firing time) and admits the run `queued` in the same transaction. The claim loop
//! runs it like any other queued run. So with several replicas on one store, each firing runs
//! once (the first to insert the key admits it); a restarted host never fires again what was
//! recorded; and a schedule whose previous run is still queued or running records the firing
//! as skipped instead of piling runs up.
//!
//! With `catch-up = true`, a schedule fires at start the latest firing before start, unless
//! it is recorded: a firing missed while no host ran runs once.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use jiff::Timestamp;

use super::dispatch::Dispatcher;
use crate::records::Trigger;
use crate::run::RunRequest;
use crate::schedule::ScheduleConfig;
use crate::store::{Fired, Firing};

/// Tries to record one firing in a store that does not answer, `FIRE_RETRY_AFTER` apart.
const FIRE_ATTEMPTS: u32 = 3;
const FIRE_RETRY_AFTER: Duration = Duration::from_secs(2);
/// Longest sleep before the wall clock is read again.
const CLOCK_RECHECK: Duration = Duration::from_secs(60);

/// Starts one task per schedule; refuses a schedule naming a playbook the catalog does not
/// have (a typo must not go unnoticed until the first firing, maybe days later).
pub async fn start(dispatcher: &Arc<Dispatcher>) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let schedules = dispatcher.host().config.schedules.clone();
    for schedule in &schedules {
        dispatcher
            .host()
            .entry(&schedule.playbook)
            .await
            .map_err(|e| anyhow::anyhow!("[[schedule]] {}: {e}", schedule.name()))?;
    }
    Ok(schedules
        .into_iter()
        .map(|schedule| tokio::spawn(keep_firing(dispatcher.clone(), schedule)))
        .collect())
}

async fn keep_firing(dispatcher: Arc<Dispatcher>, schedule: ScheduleConfig) {
    // Loaded and described now, not at the first firing: compiling a component can take
    // seconds, and a firing's run is admitted on time.
    if let Err(refusal) = dispatcher.prepared(&schedule.playbook).await {
        tracing::warn!("schedule {}: {refusal}", schedule.name());
    }
    let started = Timestamp::now();
    if schedule.catch_up
        && let Some(missed) = schedule.latest_at(started)
    {
        fire(&dispatcher, &schedule, missed, true).await;
    }
    let mut after = started;
    loop {
        let Some(next) = schedule.next_after(after) else {
            tracing::warn!(
                "schedule {}: {:?} never fires again",
                schedule.name(),
                schedule.cron.text
            );
            return;
        };
        sleep_until(next + schedule.jitter(next)).await;
        fire(&dispatcher, &schedule, next, false).await;
        after = next;
    }
}

/// Sleeps until the wall clock reads `at`, looking at it again at least every
/// `CLOCK_RECHECK`: tokio's timers are monotonic, and a clock stepped by NTP or a suspended
/// machine must not shift a daily firing by the step.
async fn sleep_until(at: Timestamp) {
    loop {
        let left = at.duration_since(Timestamp::now());
        let Ok(left) = Duration::try_from(left) else {
            return; // negative: due
        };
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left.min(CLOCK_RECHECK)).await;
    }
}

async fn fire(dispatcher: &Dispatcher, schedule: &ScheduleConfig, at: Timestamp, catch_up: bool) {
    let name = schedule.name();
    let host = dispatcher.host();
    let Some(store) = host.store.clone() else {
        return;
    };
    let prepared = match dispatcher.prepared(&schedule.playbook).await {
        Ok(prepared) => prepared,
        Err(refusal) => {
            tracing::warn!("schedule {name}: firing at {at} not run: {refusal}");
            return;
        }
    };
    let request = RunRequest {
        params: schedule
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        alert: None,
        trigger: Trigger::Schedule,
        by: None,
        dry_run: schedule.dry_run,
        dedup_key: None,
        severity: schedule.severity,
    };
    let run = match host.new_pending(&prepared, request) {
        Ok(pending) => host.queued_row(&prepared, &pending),
        Err(e) => {
            tracing::warn!("schedule {name}: firing at {at} not run: {e:#}");
            return;
        }
    };
    let run_id = run.id.clone();
    let firing = Firing {
        schedule: name.to_string(),
        at_ms: at.as_millisecond(),
        catch_up,
        run,
    };
    let what = if catch_up { "missed firing" } else { "firing" };
    // A store that did not answer is asked again a few times: the firing's key makes a retry
    // of a commit whose answer was lost `AlreadyFired`, never a second run.
    let mut attempt = 1;
    let fired = loop {
        match store.fire(firing.clone()).await {
            Err(e) if attempt < FIRE_ATTEMPTS => {
                tracing::warn!("schedule {name}: {what} at {at} not recorded yet: {e:#}; retrying");
                tokio::time::sleep(FIRE_RETRY_AFTER).await;
                attempt += 1;
            }
            result => break result,
        }
    };
    match fired {
        Ok(Fired::Started) => {
            tracing::info!("schedule {name}: {what} at {at}: run {run_id} queued")
        }
        Ok(Fired::Skipped(previous)) => {
            tracing::info!(
                "schedule {name}: {what} at {at} skipped: its run {previous} is still going"
            )
        }
        Ok(Fired::AlreadyFired) => {}
        Err(e) => tracing::warn!("schedule {name}: {what} at {at} not recorded: {e:#}"),
    }
}
