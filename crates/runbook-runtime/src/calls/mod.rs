//! What every capability call of a run touches, whichever interface it is: the grants, limits
//! and dry-run flag, the run's clock and timeline, the call counters, the artifacts and the
//! tape. Each capability sees this plus its own backend through a narrow view (`DockerView`,
//! `HttpView` …, built by the run's state); none of them sees the whole `RunState`.

pub(crate) mod seam;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bindings::CapError;
use crate::notify::AlertRef;
use crate::policy::{Grants, Limits};
use crate::records::Artifact;
use crate::tape::Tape;
use crate::timeline::Timeline;

/// A run hit one of its limits. Raised as a trap so the run ends; the message names the limit.
#[derive(Debug, thiserror::Error)]
#[error("limit exceeded: {0}")]
pub struct LimitExceeded(pub String);

/// Who is sending: put into every message so a resolve finds its trigger.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    pub run_id: String,
    pub playbook: String,
    pub alert: Option<AlertRef>,
    pub priority: Option<crate::severity::Priority>,
}

/// A run's deadline, which time spent waiting for people (`approval.ask`) moves later:
/// the epoch callback, the host-side timeout and fs-read work all read it here.
pub struct RunClock {
    started: Instant,
    limit: Duration,
    /// (time paused so far, since when it is paused now).
    paused: std::sync::Mutex<(Duration, Option<Instant>)>,
}

impl RunClock {
    pub fn new(limit: Duration) -> Arc<RunClock> {
        Arc::new(RunClock {
            started: Instant::now(),
            limit,
            paused: std::sync::Mutex::new((Duration::ZERO, None)),
        })
    }

    /// While paused, the deadline moves with the clock: it is always as far away as when
    /// the pause began.
    pub fn deadline(&self) -> Instant {
        let (paused, since) = *self.paused.lock().unwrap();
        let now_paused = since.map_or(Duration::ZERO, |since| since.elapsed());
        self.started + self.limit + paused + now_paused
    }

    /// Stops the run's clock until the guard drops (a wait for people's answer).
    pub fn pause(self: &Arc<Self>) -> ClockPaused {
        self.paused
            .lock()
            .unwrap()
            .1
            .get_or_insert_with(Instant::now);
        ClockPaused(self.clone())
    }

    pub fn limit(&self) -> Duration {
        self.limit
    }
}

pub struct ClockPaused(Arc<RunClock>);

impl Drop for ClockPaused {
    fn drop(&mut self) {
        let mut paused = self.0.paused.lock().unwrap();
        if let Some(since) = paused.1.take() {
            paused.0 += since.elapsed();
        }
    }
}

/// The run's side of every capability call (see the module comment).
pub struct Calls {
    pub(crate) dry_run: bool,
    pub(crate) grants: Arc<Grants>,
    pub(crate) limits: Limits,
    pub(crate) clock: Arc<RunClock>,
    pub(crate) timeline: Timeline,
    /// Which run this is (its id, playbook, alert, priority): notifications and replay use it.
    pub(crate) context: RunContext,
    pub(crate) artifacts: Vec<Artifact>,
    pub(crate) counters: Counters,
    /// Recording or replaying the capability calls (`crate::tape`); `None` for a plain run.
    pub(crate) tape: Option<Tape>,
    /// What the call being recorded reached, as the world named it (see `FixtureCall::target`).
    pub(crate) recorded_target: Option<Value>,
    /// Action budgets and the freeze switch (`crate::safety`); `None` where nothing is
    /// enforced (replays, tests).
    pub(crate) safety: Option<Arc<crate::safety::Safety>>,
    /// Mutating calls the freeze switch turned into "would …", and its reason.
    pub(crate) frozen: Option<(u32, String)>,
    /// The last mutating call the budgets refused: a run that then ends in an error escalates.
    pub(crate) over_budget: Option<String>,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub calls: u64,
    pub logs: u64,
    pub notifications: u64,
    pub artifact_bytes: usize,
    pub http_calls: u64,
}

impl Calls {
    pub(crate) fn new(
        grants: Arc<Grants>,
        limits: Limits,
        dry_run: bool,
        timeline: Timeline,
    ) -> Self {
        // The run's deadline as fs-read work sees it (the run ends at the same moment).
        let clock = RunClock::new(limits.deadline);
        Self {
            dry_run,
            grants,
            limits,
            clock,
            timeline,
            context: RunContext::default(),
            artifacts: Vec::new(),
            counters: Counters::default(),
            tape: None,
            recorded_target: None,
            safety: None,
            frozen: None,
            over_budget: None,
        }
    }

    /// Asks the safety rails about a mutating call about to be made for real (granted,
    /// resolved, not a dry run): `action` is `interface.function`, `container` the resolved
    /// container's name.
    pub(crate) async fn gate(
        &mut self,
        action: &str,
        container: Option<&str>,
    ) -> crate::safety::Verdict {
        let Some(safety) = self.safety.clone() else {
            return crate::safety::Verdict::Go;
        };
        let gate = safety
            .gate(&crate::safety::Action {
                run_id: self.context.run_id.clone(),
                playbook: self.context.playbook.clone(),
                action: action.to_string(),
                container: container.map(String::from),
            })
            .await;
        if let crate::safety::Verdict::Frozen { reason } = &gate {
            let frozen = self.frozen.get_or_insert((0, String::new()));
            frozen.0 += 1;
            frozen.1 = reason.clone();
        }
        gate
    }

    /// The safety rails for a mutating call about to be made for real: `None` to go ahead;
    /// else the call is recorded here ("frozen": `would` happened, "over-budget": refused)
    /// and the answer for the playbook returned (`nothing` is what a frozen call returns).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn gated<T>(
        &mut self,
        (interface, function): (&str, &str),
        args: &Value,
        container: Option<&str>,
        would: String,
        started: Instant,
        nothing: T,
    ) -> Option<Result<T, CapError>> {
        use crate::safety::Verdict;
        match self
            .gate(&format!("{interface}.{function}"), container)
            .await
        {
            Verdict::Go => None,
            Verdict::Frozen { reason } => {
                let detail = format!("frozen ({reason}): {would}");
                self.timeline.call(
                    interface,
                    function,
                    args.clone(),
                    "frozen",
                    Some(detail),
                    started.elapsed(),
                );
                Some(Ok(nothing))
            }
            // The playbook gets `over-budget` (an older contract `denied` with the same text,
            // `bindings::legacy`); a rail that could not be checked is `denied`.
            Verdict::OverBudget {
                budget,
                message,
                key,
                frees_in_secs,
            } => {
                self.timeline.call(
                    interface,
                    function,
                    args.clone(),
                    "over-budget",
                    Some(message.clone()),
                    started.elapsed(),
                );
                self.over_budget = Some(message.clone());
                Some(Err(match frees_in_secs {
                    Some(frees_in_secs) => CapError::OverBudget(crate::bindings::OverBudgetInfo {
                        budget,
                        key,
                        frees_in_secs,
                        message,
                    }),
                    None => CapError::Denied(message),
                }))
            }
        }
    }

    /// The deadline cut a run short inside the host: if a capability call had begun and not
    /// been recorded, the audit log says so (its arguments died with the call).
    pub(crate) fn note_abandoned_call(&mut self) {
        let recorded = self
            .timeline
            .events()
            .iter()
            .filter(|e| matches!(e.kind, crate::timeline::EventKind::Call { .. }))
            .count() as u64;
        if self.counters.calls > recorded {
            self.timeline.log(
                "error",
                format!(
                    "capability call #{} was still running at the deadline and was abandoned",
                    self.counters.calls
                ),
            );
        }
    }

    /// Counts a capability call against the per-run cap.
    pub(crate) fn begin_call(&mut self) -> wasmtime::Result<()> {
        self.check_timeline_size()?;
        self.counters.calls += 1;
        if self.counters.calls > self.limits.max_calls {
            return Err(LimitExceeded(format!(
                "more than {} capability calls in one run",
                self.limits.max_calls
            ))
            .into());
        }
        Ok(())
    }

    /// The timeline is checked before each call and log line, so it overshoots its cap by at
    /// most one (capped) event.
    pub(crate) fn check_timeline_size(&self) -> wasmtime::Result<()> {
        let stored = self.timeline.stored_bytes();
        if let Some(why) = crate::timeline::over_cap(stored, self.limits.max_timeline_bytes) {
            return Err(LimitExceeded(why).into());
        }
        Ok(())
    }

    /// One timeline entry for a finished capability call.
    pub(crate) fn record_call<T>(
        &mut self,
        interface: &str,
        function: &str,
        args: Value,
        result: &Result<T, CapError>,
        summary: impl FnOnce(&T) -> String,
        duration: Duration,
    ) {
        let (kind, detail) = match result {
            Ok(value) => ("ok", summary(value)),
            Err(e) => (e.kind(), e.detail().to_string()),
        };
        let detail = (!detail.is_empty()).then_some(detail);
        // Inside the run's span (its id and playbook); the arguments stay in the timeline.
        tracing::debug!(
            interface,
            function,
            result = kind,
            duration_ms = crate::timeline::round_ms(duration),
            "capability call"
        );
        self.timeline
            .call(interface, function, args, kind, detail, duration);
    }
}

/// `Deref` of a capability's view to the run's `Calls`, so the capability reads `self.grants`
/// and `self.timeline` as before and `self.docker` (its own backend) beside them.
macro_rules! view_of_calls {
    ($view:ident) => {
        impl std::ops::Deref for $view<'_> {
            type Target = $crate::calls::Calls;
            fn deref(&self) -> &$crate::calls::Calls {
                self.calls
            }
        }
        impl std::ops::DerefMut for $view<'_> {
            fn deref_mut(&mut self) -> &mut $crate::calls::Calls {
                self.calls
            }
        }
    };
}
pub(crate) use view_of_calls;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paused_clock_keeps_its_deadline_as_far_away_as_when_it_paused() {
        let clock = RunClock::new(Duration::from_millis(200));
        let before = clock.deadline();
        let paused = clock.pause();
        std::thread::sleep(Duration::from_millis(50));
        let during = clock.deadline();
        assert!(
            during >= before + Duration::from_millis(50),
            "moves while paused"
        );
        drop(paused);
        let after = clock.deadline();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(clock.deadline(), after, "fixed again once resumed");
        assert!(after >= before + Duration::from_millis(50));
    }
}
