//! Admission and execution of webhook-triggered runs: dedup (same alert, same playbook, within
//! the window → the existing run), cooldowns, a bounded queue (503 beyond it), concurrency caps
//! per playbook (across every process on the store) and per process. A run is in the store
//! before its webhook is answered.
//!
//! Queued runs wait in the store, not here: a claim loop takes them (oldest first, with a free
//! slot of their playbook, skipping what another replica is taking) as this process has room,
//! woken by admissions here or elsewhere (LISTEN/NOTIFY on PostgreSQL) and by its own runs
//! ending. A claimed run is `running` under a lease this process renews; if it dies, another
//! process marks the run `lost` (rescue.rs), and a queued run is simply claimed by another.
//!
//! Runs execute on a runtime of their own: a playbook's slice of CPU between two epoch ticks
//! never sits in front of a webhook in a worker's queue; the system scheduler shares the cores
//! between the accepting threads and the running ones. (Not at a lower priority: run deadlines
//! are wall-clock, and a busy machine must not starve runs into them.)
//!
//! Admission takes no lock of its own: dedup, cooldown and the new run are decided and written
//! by the store in one transaction under unique keys (SQLite: in arrival order through its
//! group-commit writer); the server awaits the commit. Nothing per run is kept here once it
//! ended: run tasks are tracked, not joined, so a finished one is freed at once.
//!
//! A run's task never leaves it `running` and never leaks a gauge: a panic or host error marks
//! the run failed (`guard_run`), the gauges are drop guards, and a task aborted at shutdown
//! marks its run interrupted. A run not claimed at shutdown stays `queued` for the next host
//! or another replica.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::{Admission, Refusal};
use crate::catalog::FindError;
use crate::metrics::{GaugeGuard, Metrics};
use crate::nodes::NodeIntake;
use crate::records::Trigger;
use crate::run::{Host, Prepared, RunRecord, RunRequest, UsageError, guard_run};
use crate::safety::{Decision, Safety, Subject};
use crate::store::{Admit, Admitted, AlertRecord, QueuedRun, SlotLimits, Store as RunStore};

/// How long a broken playbook's reason is served before loading it again.
const RETRY_BROKEN_AFTER: Duration = Duration::from_secs(30);
/// How long a playbook found in the catalog is taken to be still there: the catalog lists
/// the plugin dirs, a cost not worth paying on every webhook.
const CATALOG_RECHECK: Duration = Duration::from_secs(1);
/// How often the claim loop looks at the store without being woken: runs another process
/// queued without a wake reaching here (a lost NOTIFY), or a slot whose lease ran out.
const CLAIM_POLL: Duration = Duration::from_secs(1);
/// How often the claim loop counts the store's queue (for `queue-limit` and the gauge).
const COUNT_EVERY: Duration = Duration::from_millis(500);

type PrepareResult = Result<Arc<Prepared>, String>;

struct PreparedSlot {
    cell: Arc<tokio::sync::OnceCell<PrepareResult>>,
    created: Instant,
    /// When the catalog last said the playbook exists.
    found: Instant,
}

impl PreparedSlot {
    fn new() -> Self {
        Self {
            cell: Arc::new(tokio::sync::OnceCell::new()),
            created: Instant::now(),
            found: Instant::now(),
        }
    }

    fn stale(&self) -> bool {
        self.cell.get().is_some_and(|r| r.is_err()) && self.created.elapsed() > RETRY_BROKEN_AFTER
    }
}

pub struct Dispatcher {
    host: Arc<Host>,
    /// The run store (the server's: always there), where runs are admitted and claimed.
    pub store: Arc<RunStore>,
    pub metrics: Arc<Metrics>,
    /// One slot per catalog entry; the lock is held only to find the slot, never across a
    /// load or describe(), so a slow playbook delays only its own webhooks.
    prepared: Mutex<HashMap<String, PreparedSlot>>,
    /// Runs this process executes at once (its instance pool is sized for them).
    capacity: Arc<Semaphore>,
    /// Runs of one playbook at once, across every process on the store.
    limits: SlotLimits,
    /// Queued runs in the store as last counted, plus admissions here since.
    queued: Arc<AtomicUsize>,
    queue_limit: usize,
    /// Runs bound to a node: known nodes only, under a bound of their own.
    nodes: NodeIntake,
    dedup_window: Duration,
    lease: Duration,
    /// A run of this process ended: there is room to claim another.
    room: Arc<Notify>,
    /// Run tasks, queued or running; a finished task is freed at once (a JoinSet would keep
    /// it until joined).
    tasks: TaskTracker,
    /// Set at shutdown: nothing more is claimed; queued runs stay queued.
    closing: watch::Sender<bool>,
    /// Cancelled when the shutdown grace is over: running runs are cut (marked interrupted).
    cut_short: CancellationToken,
    cut: Arc<AtomicUsize>,
    /// Where run tasks execute; `None` only once dropped.
    runs: Option<tokio::runtime::Runtime>,
    /// Circuit breakers and maintenance windows, decided before each admission.
    pub safety: Safety,
}

impl Dispatcher {
    pub fn new(
        host: Arc<Host>,
        store: Arc<RunStore>,
        metrics: Arc<Metrics>,
        nodes: NodeIntake,
        safety: Safety,
    ) -> std::io::Result<Self> {
        let server = &host.config.server;
        let limits = SlotLimits {
            default: 2,
            per_playbook: host
                .config
                .plugins
                .iter()
                .filter_map(|(name, p)| Some((name.clone(), p.max_concurrent?)))
                .collect(),
        };
        Ok(Self {
            capacity: Arc::new(Semaphore::new(server.max_concurrent_runs.max(1))),
            limits,
            queue_limit: server.queue_limit,
            nodes,
            dedup_window: Duration::from_secs(server.dedup_window_secs),
            lease: server.lease(),
            room: Arc::new(Notify::new()),
            host,
            store,
            metrics,
            prepared: Mutex::new(HashMap::new()),
            queued: Arc::new(AtomicUsize::new(0)),
            tasks: TaskTracker::new(),
            closing: watch::channel(false).0,
            cut_short: CancellationToken::new(),
            cut: Arc::new(AtomicUsize::new(0)),
            runs: Some(run_runtime()?),
            safety,
        })
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Runs of one playbook at once, across every process and node on the store.
    pub fn slot_limits(&self) -> &SlotLimits {
        &self.limits
    }

    /// How long a claimed run is held without a renewal.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Loaded, linked and described once per playbook (the InstancePre is reused by every run).
    /// A broken playbook's reason is kept for a while, then it is tried again.
    pub async fn prepared(&self, playbook: &str) -> Result<Arc<Prepared>, Refusal> {
        let recently_found = self
            .prepared
            .lock()
            .unwrap()
            .get(playbook)
            .is_some_and(|slot| slot.found.elapsed() < CATALOG_RECHECK);
        // Only names in the catalog get a slot: the map stays as small as the catalog.
        if !recently_found {
            self.host.entry(playbook).await.map_err(|e| match e {
                FindError::Unknown { .. } => Refusal::UnknownPlaybook(e.to_string()),
                other => Refusal::Invalid(other.to_string()),
            })?;
        }
        let cell = {
            let mut slots = self.prepared.lock().unwrap();
            let slot = slots
                .entry(playbook.to_string())
                .or_insert_with(PreparedSlot::new);
            if slot.stale() {
                *slot = PreparedSlot::new();
            }
            if !recently_found {
                slot.found = Instant::now();
            }
            slot.cell.clone()
        };
        let prepared = cell
            .get_or_init(|| async {
                tracing::info!("loading playbook {playbook}");
                let prepared = self.host.prepare(playbook).await;
                prepared.map(Arc::new).map_err(|e| {
                    let reason = format!("{e:#}");
                    // The reason can carry what the guest printed: escaped for the log.
                    tracing::warn!(
                        "playbook {playbook} is broken: {}",
                        crate::text::escape(&reason)
                    );
                    reason
                })
            })
            .await;
        prepared.clone().map_err(Refusal::Broken)
    }

    /// Drops the loaded copies of `playbooks` (their pins changed on SIGHUP): the next run
    /// loads what they name now; runs already started keep theirs.
    pub fn forget(&self, playbooks: &[String]) {
        let mut slots = self.prepared.lock().unwrap();
        for name in playbooks {
            slots.remove(name);
        }
    }

    /// Stores the run as queued (the claim loop of this or another process starts it);
    /// `cooldown` is (key, period) for route cooldowns; `alert` is the alert's record, stored
    /// with the admission's disposition.
    ///
    /// Not cancel-safe: once the admission is sent to the store it may commit. Callers run it
    /// in a task of its own, not in a request's future.
    pub async fn submit(
        &self,
        playbook: &str,
        request: RunRequest,
        node: Option<String>,
        cooldown: Option<(String, Duration)>,
        alert: Option<AlertRecord>,
    ) -> Result<Admission, Refusal> {
        let store = &self.store;
        // Each class of waiting work against its own bound: a node that is down fills only
        // the fleet's, never this server's.
        match &node {
            Some(node) => self.nodes.check(&**store, node).await?,
            None => {
                let queued = self.queued.load(Ordering::Relaxed);
                if queued >= self.queue_limit {
                    return Err(Refusal::Busy(queued));
                }
            }
        }
        let local = node.is_none();
        let deduplicated = request.dedup_key.is_some();
        // A person asking through the console or the CLI is breaking glass: not gated.
        let gated = !matches!(request.trigger, Trigger::Console | Trigger::Cli);
        let labels = request
            .alert
            .as_ref()
            .map(|a| a.labels.clone())
            .unwrap_or_default();
        let usage = |e: anyhow::Error| match e.downcast_ref::<UsageError>() {
            Some(UsageError::BadValue { .. }) => Refusal::BadValue(format!("{e:#}")),
            Some(_) => Refusal::Invalid(format!("{e:#}")),
            None => Refusal::Internal(format!("{e:#}")),
        };
        // Checked here when this host has the playbook; a run for a node whose playbook only
        // the node has is checked there (the node's copy is what runs).
        let run = match (self.prepared(playbook).await, node) {
            (Ok(prepared), node) => {
                let pending = self.host.new_pending(&prepared, request).map_err(usage)?;
                let mut run = self.host.queued_row(&prepared, &pending);
                run.node = node;
                run
            }
            (Err(Refusal::UnknownPlaybook(_) | Refusal::Broken(_)), Some(node)) => {
                self.host.node_row(playbook, request, node).map_err(usage)?
            }
            (Err(refusal), _) => return Err(refusal),
        };
        let run_id = run.id.clone();
        let decision = if gated {
            let subject = Subject {
                playbook,
                labels: &labels,
                node: run.node.as_deref(),
                run_id: &run_id,
            };
            self.safety
                .decide(store, &self.host.notifier(), &subject)
                .await
                .map_err(|e| Refusal::store("deciding the safety gates", e))?
        } else {
            Decision::Run
        };
        let gate = decision.gate();
        // The alert's record says why its run will not execute.
        let alert = alert.map(|mut record| {
            record.detail = gate.reason().map(String::from).or(record.detail);
            record
        });
        let admit = Admit {
            run,
            dedup_window: deduplicated.then_some(self.dedup_window),
            cooldown,
            alert,
            gate,
        };
        match store.admit(admit).await {
            Ok(Admitted::Started) if decision != Decision::Run => {
                self.metrics.gated(&decision);
                Ok(Admission::Gated(run_id, decision))
            }
            Ok(Admitted::Started) => {
                if local {
                    self.queued_now(self.queued.fetch_add(1, Ordering::Relaxed) + 1);
                }
                Ok(Admission::Started(run_id))
            }
            Ok(Admitted::Deduplicated(id)) => Ok(Admission::Deduplicated(id)),
            Ok(Admitted::Cooldown) => Ok(Admission::Cooldown),
            Err(e) => Err(Refusal::store("admitting a run", e)),
        }
    }

    /// Claims queued runs from the store as this process has room, until shutdown. Spawned
    /// once by the server.
    pub async fn claim_loop(self: Arc<Self>) {
        let store = self.store.clone();
        let mut closing = self.closing.subscribe();
        let mut counted = Instant::now()
            .checked_sub(COUNT_EVERY)
            .unwrap_or_else(Instant::now);
        loop {
            if *closing.borrow() {
                return;
            }
            let room = self.capacity.available_permits();
            let mut full = room == 0;
            if room > 0 {
                match store
                    .claim_queued(crate::store::this_runner(), room, &self.limits, self.lease)
                    .await
                {
                    Ok(claimed) => {
                        full = claimed.len() == room;
                        // No longer queued: the estimate follows until the next count.
                        let taken = claimed.len();
                        let before = self
                            .queued
                            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                                Some(n.saturating_sub(taken))
                            })
                            .unwrap_or_default();
                        self.queued_now(before.saturating_sub(taken));
                        for run in claimed {
                            self.start(run);
                        }
                    }
                    Err(e) => tracing::warn!("claiming queued runs from the store: {e:#}"),
                }
                // A count over the whole queue: not at every claim under a backlog.
                if counted.elapsed() >= COUNT_EVERY
                    && let Ok(depths) = store.queue_depths(None).await
                {
                    let queued = depths.local;
                    counted = Instant::now();
                    self.queued.store(queued, Ordering::Relaxed);
                    self.queued_now(queued);
                }
            }
            // Full: only a run of ours ending makes room. Otherwise a new run anywhere, or a
            // slot freed, is worth a look.
            tokio::select! {
                _ = self.room.notified() => {}
                _ = store.wait_for_queued(CLAIM_POLL), if !full => {}
                _ = tokio::time::sleep(CLAIM_POLL), if full => {}
                _ = closing.changed() => {}
            }
        }
    }

    /// The queue's estimate as the gauge shows it (one number, one source).
    fn queued_now(&self, queued: usize) {
        self.metrics.queue_depth.set(queued as i64);
    }

    /// Executes a claimed run on the run runtime; it holds a unit of this process's capacity
    /// until it ends. The unit is taken here, before the claim loop counts its room again
    /// (it never claims beyond the room it counted, so one is free).
    fn start(self: &Arc<Self>, run: QueuedRun) {
        let permit = self.capacity.clone().try_acquire_owned().ok();
        let dispatcher = self.clone();
        let runs = self
            .runs
            .as_ref()
            .expect("the run runtime lives as long as the dispatcher");
        let task = async move {
            let _permit = match permit {
                Some(permit) => permit,
                None => match dispatcher.capacity.clone().acquire_owned().await {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            dispatcher.execute(run).await;
            dispatcher.room.notify_one();
        };
        self.tasks.spawn_on(task, runs.handle());
    }

    async fn execute(&self, run: QueuedRun) {
        let store = self.store.clone();
        let prepared = match self.prepared(&run.playbook).await {
            Ok(prepared) => prepared,
            Err(e) => return self.not_startable(&run, e.to_string()).await,
        };
        let pending = match self.host.resume(&prepared, &run) {
            Ok(pending) => pending,
            Err(e) => return self.not_startable(&run, format!("{e:#}")).await,
        };
        let work = Box::pin(run_task(
            &self.metrics,
            store.clone(),
            run.id.clone(),
            // Live events reach the store as they happen: the console follows the run.
            self.host.execute(
                &prepared,
                pending,
                Some(crate::sink::store_sink(store.clone(), run.id.clone())),
            ),
        ));
        tokio::select! {
            () = work => {}
            () = self.cut_short.cancelled() => {
                self.cut.fetch_add(1, Ordering::Relaxed);
                let reason = "the host stopped (shutdown grace over) before the run ended";
                if let Err(e) = store.end_unfinished(&run.id, "interrupted", reason).await {
                    tracing::warn!("run {}: recording that it was interrupted: {e:#}", run.id);
                }
            }
        }
    }

    /// A claimed run whose playbook cannot load any more (removed, broken): it fails with why.
    async fn not_startable(&self, run: &QueuedRun, why: String) {
        let reason = format!("could not be started: {why}");
        // The row may come from another replica's store: everything in it is escaped.
        tracing::warn!(
            "run {} ({}) {}",
            crate::text::escape(&run.id),
            crate::text::escape(&run.playbook),
            crate::text::escape(&reason)
        );
        if let Err(e) = self.store.end_unfinished(&run.id, "failed", &reason).await {
            tracing::warn!("run {}: recording that it failed: {e:#}", run.id);
        }
    }

    /// Nothing more is claimed: queued runs stay queued for the next host or another replica.
    /// The claim loop ends after starting what it already claimed.
    pub fn stop_claiming(&self) {
        let _ = self.closing.send(true);
    }

    /// Stops claiming; running runs may finish within `grace`, then are cut and marked
    /// interrupted. Returns how many were cut.
    pub async fn shutdown(&self, grace: Duration) -> usize {
        let _ = self.closing.send(true);
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_ok() {
            return 0;
        }
        self.cut_short.cancel();
        self.tasks.wait().await;
        self.cut.load(Ordering::Relaxed)
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        // Dropped inside the server's runtime, where a runtime may not block to shut down.
        if let Some(runs) = self.runs.take() {
            runs.shutdown_background();
        }
    }
}

/// The runtime run tasks execute on: as many threads as cores.
fn run_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .thread_name("run")
        .enable_all()
        .build()
}

/// The execution part of a run's task: counted as running while it lasts; a panic or error
/// fails the run.
async fn run_task(
    metrics: &Metrics,
    store: Arc<RunStore>,
    run_id: String,
    work: impl Future<Output = anyhow::Result<RunRecord>>,
) {
    let running = GaugeGuard::hold(&metrics.running);
    tracing::info!(run_id = %run_id, "run started");
    match guard_run(Some(&*store), &run_id, work).await {
        Ok(record) => {
            tracing::info!(
                run_id = %run_id,
                playbook = %record.playbook,
                status = record.status,
                duration_ms = record.timings.total_ms,
                "run ended"
            );
            metrics.finished(&record)
        }
        Err(e) => tracing::warn!(
            run_id = %run_id,
            status = "failed",
            "run ended: {}",
            crate::text::escape(&format!("{e:#}"))
        ),
    }
    drop(running);
    if metrics.running.get() == 0 && metrics.queue_depth.get() <= 0 {
        tokio::task::spawn_blocking(return_freed_memory);
    }
}

/// glibc keeps what runs freed in its per-thread arenas; when the server goes idle, hand it
/// back to the system so its resident size returns to where it was before a burst.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}
