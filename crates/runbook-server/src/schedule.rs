//! Fires the `[[schedule]]`s of host.toml: one task per schedule sleeps until its next firing
//! (plus its jitter), then hands the firing to the store, which records it under its key
//! (schedule, firing time) and admits the run `queued` in the same transaction. The claim loop
//! runs it like any other queued run. So with several replicas on one store, each firing runs
//! once (the first to insert the key admits it); a restarted host never fires again what was
//! recorded; and a schedule whose previous run is still queued or running records the firing
//! as skipped instead of piling runs up.
//!
//! With `catch-up = true`, a schedule fires at start the latest firing before start, unless
//! it is recorded: a firing missed while no host ran runs once. A clock that jumps (or a
//! machine that slept) gets the same: one catch-up, never one run per missed firing
//! (`ScheduleConfig::due`). On SIGHUP the set is replaced: a removed schedule stops, an added
//! one starts, a changed one starts over with its new settings.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::dispatch::Dispatcher;
use crate::records::Trigger;
use crate::run::RunRequest;
use crate::store::{Fired, Firing};
use runbook_runtime::schedule::{Due, ScheduleConfig};

/// Tries to record one firing in a store that does not answer, `FIRE_RETRY_AFTER` apart.
const FIRE_ATTEMPTS: u32 = 3;
const FIRE_RETRY_AFTER: Duration = Duration::from_secs(2);
/// Longest sleep before the wall clock is read again.
const CLOCK_RECHECK: Duration = Duration::from_secs(60);
/// A sleep that finds this much more time left than it should has seen the clock go back.
const CLOCK_BACK: Duration = Duration::from_secs(1);

/// The schedules this server fires, by name.
pub struct Schedules {
    dispatcher: Arc<Dispatcher>,
    running: Mutex<BTreeMap<String, Running>>,
}

struct Running {
    config: ScheduleConfig,
    /// Stops the task between firings (a firing being recorded completes).
    stop: CancellationToken,
}

/// What a SIGHUP changed in the set of schedules.
#[derive(Debug, Default, PartialEq)]
pub struct Changed {
    pub started: Vec<String>,
    pub stopped: Vec<String>,
    pub restarted: Vec<String>,
}

impl Schedules {
    /// Starts the schedules of the config the server started with.
    pub async fn start(dispatcher: &Arc<Dispatcher>) -> Result<Schedules> {
        let schedules = Schedules {
            dispatcher: dispatcher.clone(),
            running: Mutex::new(BTreeMap::new()),
        };
        let configured = dispatcher.host().config.schedules.clone();
        schedules.check(&configured).await?;
        schedules.replace(configured);
        Ok(schedules)
    }

    /// Refuses a schedule naming a playbook the catalog does not have (a typo must not go
    /// unnoticed until the first firing, maybe days later). At start and before a reload
    /// changes anything.
    pub async fn check(&self, schedules: &[ScheduleConfig]) -> Result<()> {
        for schedule in schedules {
            self.dispatcher
                .host()
                .entry(&schedule.playbook)
                .await
                .map_err(|e| anyhow::anyhow!("[[schedule]] {}: {e}", schedule.name()))?;
        }
        Ok(())
    }

    /// Makes `schedules` the ones that fire: those gone stop, new ones start, changed ones
    /// start over; the unchanged keep their task (and their place in time).
    pub fn replace(&self, schedules: Vec<ScheduleConfig>) -> Changed {
        let mut running = self.running.lock().unwrap();
        let mut changed = Changed::default();
        let mut wanted: BTreeMap<String, ScheduleConfig> = schedules
            .into_iter()
            .map(|s| (s.name().to_string(), s))
            .collect();
        running.retain(|name, task| match wanted.get(name) {
            Some(config) if *config == task.config => {
                wanted.remove(name);
                true
            }
            Some(_) => {
                task.stop.cancel();
                changed.restarted.push(name.clone());
                false
            }
            None => {
                task.stop.cancel();
                changed.stopped.push(name.clone());
                false
            }
        });
        for (name, config) in wanted {
            if !changed.restarted.contains(&name) {
                changed.started.push(name.clone());
            }
            let stop = CancellationToken::new();
            tokio::spawn(keep_firing(
                self.dispatcher.clone(),
                config.clone(),
                stop.clone(),
            ));
            running.insert(name, Running { config, stop });
        }
        changed
    }

    /// Shutdown: every schedule stops.
    pub fn stop(&self) {
        for task in self.running.lock().unwrap().values() {
            task.stop.cancel();
        }
    }
}

async fn keep_firing(
    dispatcher: Arc<Dispatcher>,
    schedule: ScheduleConfig,
    stop: CancellationToken,
) {
    // Loaded and described now, not at the first firing: compiling a component can take
    // seconds, and a firing's run is admitted on time.
    if let Err(refusal) = dispatcher.prepared(&schedule.playbook).await {
        tracing::warn!("schedule {}: {refusal}", schedule.name());
    }
    let started = Timestamp::now();
    if schedule.catch_up
        && !stop.is_cancelled()
        && let Some(missed) = schedule.latest_at(started)
    {
        fire(&dispatcher, &schedule, missed, true).await;
    }
    let mut after = started;
    loop {
        if stop.is_cancelled() {
            return;
        }
        match schedule.due(after, Timestamp::now()) {
            Due::Sleep(at) => {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = sleep_until(at) => {}
                }
            }
            Due::Fire { at, catch_up } => {
                if catch_up {
                    tracing::warn!(
                        "schedule {}: the clock passed several firings (it jumped, or the \
                         machine slept): only the latest, at {at}, runs",
                        schedule.name()
                    );
                }
                fire(&dispatcher, &schedule, at, catch_up).await;
                after = at;
            }
            Due::Rewind(now) => {
                tracing::warn!(
                    "schedule {}: the clock went back to {now}, before its last firing at \
                     {after}; it goes on from now (firings recorded already do not run again)",
                    schedule.name()
                );
                after = now;
            }
            Due::Never => {
                tracing::warn!(
                    "schedule {}: {:?} never fires again",
                    schedule.name(),
                    schedule.cron.text
                );
                return;
            }
        }
    }
}

/// Sleeps until the wall clock reads `at`, looking at it again at least every
/// `CLOCK_RECHECK`: tokio's timers are monotonic, and a clock stepped by NTP or a suspended
/// machine must not shift a daily firing by the step. Returns early when the clock went back
/// (more time left than before the sleep): the caller plans again from the new time.
async fn sleep_until(at: Timestamp) {
    let mut expected: Option<Duration> = None;
    loop {
        let Ok(left) = Duration::try_from(at.duration_since(Timestamp::now())) else {
            return; // negative: due
        };
        if left.is_zero() || expected.is_some_and(|e| left > e + CLOCK_BACK) {
            return;
        }
        let nap = left.min(CLOCK_RECHECK);
        expected = Some(left - nap);
        tokio::time::sleep(nap).await;
    }
}

async fn fire(dispatcher: &Dispatcher, schedule: &ScheduleConfig, at: Timestamp, catch_up: bool) {
    let name = schedule.name();
    let host = dispatcher.host();
    let store = dispatcher.store.clone();
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
    // A scheduled run is seen by maintenance windows with these labels.
    let labels = [
        ("schedule".to_string(), name.to_string()),
        ("playbook".to_string(), schedule.playbook.clone()),
    ];
    let subject = crate::safety::Subject {
        playbook: &schedule.playbook,
        labels: &labels,
        node: None,
        run_id: &run_id,
    };
    let decision = match dispatcher
        .safety
        .decide(&store, &host.notifier(), &subject)
        .await
    {
        Ok(decision) => decision,
        Err(e) => {
            tracing::warn!("schedule {name}: firing at {at} not run: {e:#}");
            return;
        }
    };
    let firing = Firing {
        schedule: name.to_string(),
        at_ms: at.as_millisecond(),
        catch_up,
        run,
        gate: decision.gate(),
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
        Ok(Fired::Started) if decision != crate::safety::Decision::Run => {
            dispatcher.metrics.gated(&decision);
            let gate = decision.gate();
            tracing::info!(
                "schedule {name}: {what} at {at}: run {run_id} {}: {}",
                gate.status(),
                crate::text::escape(gate.reason().unwrap_or_default())
            )
        }
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
