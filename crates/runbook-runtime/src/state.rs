//! Per-run store data: the WASI context (with no ambient authority), the run's side of every
//! capability call (`Calls`: grants, limits, clock, timeline, tape) and the backends the
//! capabilities talk to. Each capability is linked to a narrow view of it (`RunState::docker`
//! and so on): a capability never sees another's backend, nor the WASI context.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use wasmtime::ResourceLimiter;
use wasmtime::component::{HasSelf, Linker, LinkerInstance, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::approval::Approvals;
use crate::calls::Calls;
use crate::caps::approval::{Approval, ApprovalView};
use crate::caps::docker::{Docker, DockerEngine, DockerView};
use crate::caps::fs_read::{FsRead, FsReadView, FsReads, Protected};
use crate::caps::http::egress::EgressPolicy;
use crate::caps::http::{Http, HttpClient, HttpView};
use crate::caps::notify::{Notify, NotifyView};
use crate::notify::Notifier;
use crate::policy::{Grants, Limits};
use crate::timeline::Timeline;

pub use crate::calls::{ClockPaused, LimitExceeded, RunClock, RunContext};
pub use crate::records::Artifact;

pub struct RunState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) memory: MemoryLimiter,
    /// What every capability call touches.
    pub(crate) calls: Calls,
    fs: Arc<FsRead>,
    notifier: Arc<Notifier>,
    docker: Arc<DockerEngine>,
    http: Arc<HttpClient>,
    egress: Arc<EgressPolicy>,
    /// Questions to people; `None` where the host has no approvals (a fleet agent).
    approvals: Option<Arc<Approvals>>,
    guest_stderr: MemoryOutputPipe,
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
    pub approvals: Option<Arc<Approvals>>,
    /// Action budgets and the freeze switch; `None`: nothing enforced.
    pub safety: Option<Arc<crate::safety::Safety>>,
}

/// Binds every supported contract version's capability interfaces, each to its view.
pub fn add_to_linker(linker: &mut Linker<RunState>) -> Result<()> {
    crate::bindings::versions::add_to_linker(linker, link_interface)
}

/// One capability interface (by its WIT name) bound to its view of the run, returning the
/// `errors` variant of its contract version.
fn link_interface(
    instance: &mut LinkerInstance<'_, RunState>,
    interface: &str,
    errors: crate::bindings::Errors,
) -> wasmtime::Result<()> {
    use crate::bindings::runbook::host as wit;
    if errors == crate::bindings::Errors::Denied {
        return link_legacy(instance, interface);
    }
    match interface {
        "docker" => wit::docker::add_to_linker_instance::<_, Docker>(instance, RunState::docker),
        "http" => wit::http::add_to_linker_instance::<_, Http>(instance, RunState::http),
        "fs-read" => {
            wit::fs_read::add_to_linker_instance::<_, FsReads>(instance, RunState::fs_read)
        }
        "notify" => wit::notify::add_to_linker_instance::<_, Notify>(instance, RunState::notify),
        "report" => {
            wit::report::add_to_linker_instance::<_, HasSelf<Calls>>(instance, |s| &mut s.calls)
        }
        "approval" => {
            wit::approval::add_to_linker_instance::<_, Approval>(instance, RunState::approval)
        }
        other => Err(wasmtime::Error::msg(format!(
            "no capability interface {other:?} to link"
        ))),
    }
}

/// `link_interface` for contracts 0.1.0–0.3.0 (no `over-budget` in their error variant).
fn link_legacy(
    instance: &mut LinkerInstance<'_, RunState>,
    interface: &str,
) -> wasmtime::Result<()> {
    use crate::bindings::legacy;
    match interface {
        "docker" => legacy::docker::<_, Docker>(instance, RunState::docker),
        "http" => legacy::http::<_, Http>(instance, RunState::http),
        "fs-read" => legacy::fs_read::<_, FsReads>(instance, RunState::fs_read),
        "notify" => legacy::notify::<_, Notify>(instance, RunState::notify),
        "report" => legacy::report::<_, HasSelf<Calls>>(instance, |s| &mut s.calls),
        "approval" => legacy::approval::<_, Approval>(instance, RunState::approval),
        other => Err(wasmtime::Error::msg(format!(
            "no capability interface {other:?} to link"
        ))),
    }
}

impl RunState {
    pub fn new(
        grants: Arc<Grants>,
        limits: Limits,
        dry_run: bool,
        timeline: Timeline,
        services: Services,
    ) -> Self {
        let memory = MemoryLimiter::new(limits.memory_bytes);
        let mut calls = Calls::new(grants, limits, dry_run, timeline);
        calls.safety = services.safety.clone();
        let (fs, warnings) = FsRead::new(&calls.grants, services.protected, calls.clock.clone());
        let egress = Arc::new(EgressPolicy::from_grants(&calls.grants));
        let guest_stderr = MemoryOutputPipe::new(GUEST_OUTPUT_BYTES);
        // No preopens, no env, no args, no inherited stdio, no sockets: only our capabilities.
        let wasi = WasiCtxBuilder::new()
            .stdout(guest_stderr.clone())
            .stderr(guest_stderr.clone())
            .build();
        for warning in warnings {
            calls.timeline.log("warn", warning);
        }
        Self {
            wasi,
            table: ResourceTable::new(),
            memory,
            calls,
            fs: Arc::new(fs),
            notifier: services.notifier,
            docker: services.docker,
            http: services.http,
            egress,
            approvals: services.approvals,
            guest_stderr,
        }
    }

    pub(crate) fn docker(&mut self) -> DockerView<'_> {
        DockerView {
            calls: &mut self.calls,
            docker: &self.docker,
        }
    }

    pub(crate) fn http(&mut self) -> HttpView<'_> {
        HttpView {
            calls: &mut self.calls,
            http: &self.http,
            egress: &self.egress,
        }
    }

    pub(crate) fn fs_read(&mut self) -> FsReadView<'_> {
        FsReadView {
            calls: &mut self.calls,
            fs: &self.fs,
        }
    }

    pub(crate) fn notify(&mut self) -> NotifyView<'_> {
        NotifyView {
            calls: &mut self.calls,
            notifier: &self.notifier,
        }
    }

    pub(crate) fn approval(&mut self) -> ApprovalView<'_> {
        ApprovalView {
            calls: &mut self.calls,
            approvals: &self.approvals,
        }
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

    /// The deadline cut a run short inside the host (see `Calls::note_abandoned_call`).
    pub(crate) fn note_abandoned_call(&mut self) {
        self.calls.note_abandoned_call();
    }

    /// Records or replays the run's capability calls.
    pub fn set_tape(&mut self, tape: crate::tape::Tape) {
        self.calls.tape = Some(tape);
    }

    pub fn take_tape(&mut self) -> Option<crate::tape::Tape> {
        self.calls.tape.take()
    }

    pub fn into_parts(self) -> (Timeline, Vec<Artifact>) {
        (self.calls.timeline, self.calls.artifacts)
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
