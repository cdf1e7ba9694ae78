//! Per-run store data: the WASI context (with no ambient authority), the playbook's grants and
//! limits, and the timeline every capability writes to.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::CapError;
use crate::caps::docker::DockerEngine;
use crate::caps::fs_read::{FsRead, Protected};
use crate::caps::http::HttpClient;
use crate::caps::http::egress::EgressPolicy;
use crate::caps::notify::RunContext;
use crate::notify::Notifier;
use crate::policy::{Grants, Limits};
use crate::timeline::Timeline;

/// A run hit one of its limits. Raised as a trap so the run ends; the message names the limit.
#[derive(Debug, thiserror::Error)]
#[error("limit exceeded: {0}")]
pub struct LimitExceeded(pub String);

pub use crate::records::Artifact;

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

pub struct RunState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) memory: MemoryLimiter,
    pub(crate) dry_run: bool,
    pub(crate) grants: Arc<Grants>,
    pub(crate) limits: Limits,
    pub(crate) clock: Arc<RunClock>,
    pub(crate) timeline: Timeline,
    pub(crate) fs: Arc<FsRead>,
    pub(crate) notifier: Arc<Notifier>,
    pub(crate) context: RunContext,
    pub(crate) docker: Arc<DockerEngine>,
    pub(crate) http: Arc<HttpClient>,
    pub(crate) egress: Arc<EgressPolicy>,
    /// Questions to people; `None` where the host has no approvals (a fleet agent).
    pub(crate) approvals: Option<Arc<crate::approval::Approvals>>,
    pub(crate) artifacts: Vec<Artifact>,
    pub(crate) counters: Counters,
    /// Recording or replaying the capability calls (`crate::replay`); `None` for a plain run.
    pub(crate) tape: Option<crate::replay::Tape>,
    /// What the call being recorded reached, as the world named it (see `FixtureCall::target`).
    pub(crate) recorded_target: Option<Value>,
    guest_stderr: MemoryOutputPipe,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub calls: u64,
    pub logs: u64,
    pub notifications: u64,
    pub artifact_bytes: usize,
    pub http_calls: u64,
}

/// Guest stdout/stderr are kept (panics print there) but bounded.
const GUEST_OUTPUT_BYTES: usize = 256 << 10;

/// The backends a run's capabilities talk to; shared by every run of a host.
#[derive(Clone)]
pub struct Services {
    pub notifier: Arc<Notifier>,
    pub docker: Arc<DockerEngine>,
    pub http: Arc<HttpClient>,
    /// What no fs-read grant reaches: the host's config, secrets, store, cache, /proc entries.
    pub protected: Arc<Protected>,
    pub approvals: Option<Arc<crate::approval::Approvals>>,
}

impl RunState {
    pub fn new(
        grants: Arc<Grants>,
        limits: Limits,
        dry_run: bool,
        timeline: Timeline,
        services: Services,
    ) -> Self {
        // The run's deadline as fs-read work sees it (the run ends at the same moment).
        let clock = RunClock::new(limits.deadline);
        let (fs, warnings) = FsRead::new(&grants, services.protected, clock.clone());
        let egress = Arc::new(EgressPolicy::from_grants(&grants));
        let guest_stderr = MemoryOutputPipe::new(GUEST_OUTPUT_BYTES);
        // No preopens, no env, no args, no inherited stdio, no sockets: only our capabilities.
        let wasi = WasiCtxBuilder::new()
            .stdout(guest_stderr.clone())
            .stderr(guest_stderr.clone())
            .build();
        let mut state = Self {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryLimiter::new(limits.memory_bytes),
            dry_run,
            grants,
            limits,
            clock,
            timeline,
            fs: Arc::new(fs),
            notifier: services.notifier,
            context: RunContext::default(),
            docker: services.docker,
            http: services.http,
            egress,
            approvals: services.approvals,
            artifacts: Vec::new(),
            counters: Counters::default(),
            tape: None,
            recorded_target: None,
            guest_stderr,
        };
        for warning in warnings {
            state.timeline.log("warn", warning);
        }
        state
    }

    /// Replay: the guest's wall clock starts where the recorded run's did (a playbook that
    /// ages files against "now" sees the same ages), and runs on from there.
    pub fn with_wall_clock(mut self, since_epoch: Duration) -> Self {
        struct Offset(Duration, Instant);
        impl wasmtime_wasi::HostWallClock for Offset {
            fn resolution(&self) -> Duration {
                Duration::from_nanos(1)
            }
            fn now(&self) -> Duration {
                self.0 + self.1.elapsed()
            }
        }
        self.wasi = WasiCtxBuilder::new()
            .stdout(self.guest_stderr.clone())
            .stderr(self.guest_stderr.clone())
            .wall_clock(Offset(since_epoch, Instant::now()))
            .build();
        self
    }

    /// What the guest printed (a Rust panic message lands here).
    pub fn guest_output(&self) -> String {
        String::from_utf8_lossy(&self.guest_stderr.contents()).into_owned()
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

    /// Records or replays the run's capability calls.
    pub fn set_tape(&mut self, tape: crate::replay::Tape) {
        self.tape = Some(tape);
    }

    pub fn take_tape(&mut self) -> Option<crate::replay::Tape> {
        self.tape.take()
    }

    pub fn into_parts(self) -> (Timeline, Vec<Artifact>) {
        (self.timeline, self.artifacts)
    }
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps linear memory and tables; growing past the cap ends the run naming the limit. The cap
/// is on the sum over every memory of the store: a component can hold many core instances,
/// each with a memory of its own.
pub(crate) struct MemoryLimiter {
    max_memory: usize,
    /// Bytes of linear memory granted so far, over all memories.
    total: usize,
    table_elements: usize,
}

const MAX_TABLE_ELEMENTS: usize = 100_000;
const MAX_TOTAL_TABLE_ELEMENTS: usize = 1_000_000;

impl MemoryLimiter {
    fn new(max_memory: usize) -> Self {
        Self {
            max_memory,
            total: 0,
            table_elements: 0,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    /// Called for every growth and, with `current` 0, for every memory created.
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|m| desired > m) {
            return Ok(false); // fails anyway; not counted
        }
        let total = self.total + desired.saturating_sub(current);
        if total > self.max_memory {
            return Err(LimitExceeded(format!(
                "linear memory of {} MiB (the playbook asked for {} MiB)",
                self.max_memory >> 20,
                total.div_ceil(1 << 20)
            ))
            .into());
        }
        self.total = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|m| desired > m) {
            return Ok(false);
        }
        if desired > MAX_TABLE_ELEMENTS {
            return Err(LimitExceeded(format!("table of {MAX_TABLE_ELEMENTS} elements")).into());
        }
        let total = self.table_elements + desired.saturating_sub(current);
        if total > MAX_TOTAL_TABLE_ELEMENTS {
            return Err(LimitExceeded(format!(
                "{MAX_TOTAL_TABLE_ELEMENTS} table elements over all tables"
            ))
            .into());
        }
        self.table_elements = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        100
    }
    fn tables(&self) -> usize {
        100
    }
    fn memories(&self) -> usize {
        100
    }
}

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

    #[test]
    fn the_memory_cap_covers_all_memories_together() {
        let mib = 1 << 20;
        let mut limiter = MemoryLimiter::new(64 * mib);
        assert!(limiter.memory_growing(0, 40 * mib, None).unwrap());
        assert!(limiter.memory_growing(40 * mib, 50 * mib, None).unwrap());
        // A second memory of 20 MiB would make 70 MiB in all.
        let err = limiter.memory_growing(0, 20 * mib, None).unwrap_err();
        assert!(
            err.to_string()
                .contains("linear memory of 64 MiB (the playbook asked for 70 MiB)"),
            "{err}"
        );
        assert!(limiter.memory_growing(0, 14 * mib, None).unwrap());
        assert!(!limiter.memory_growing(0, 2 * mib, Some(mib)).unwrap());

        for _ in 0..10 {
            assert!(limiter.table_growing(0, 100_000, None).unwrap());
        }
        assert!(limiter.table_growing(0, 1, None).is_err());
    }
}
