//! Admission and execution of webhook-triggered runs: dedup (same alert, same playbook, within
//! the window → the existing run), cooldowns, a bounded queue (503 beyond it), concurrency caps
//! per playbook and in total. A run is in the store before its webhook is answered.
//!
//! Runs execute on a runtime of their own: a playbook's slice of CPU between two epoch ticks
//! never sits in front of a webhook in a worker's queue; the system scheduler shares the cores
//! between the accepting threads and the running ones. (Not at a lower priority: run deadlines
//! are wall-clock, and a busy machine must not starve runs into them.)
//!
//! Admission takes no lock of its own: dedup, cooldown and the new run are decided and written
//! by the store's group-commit writer (store/admission.rs), in arrival order, many admissions
//! per transaction; the server awaits the commit. Nothing per run is kept here once it ended:
//! run tasks are tracked, not joined, so a finished one is freed at once.
//!
//! A run's task never leaves it `running` and never leaks a gauge: a panic or host error marks
//! the run failed (`guard_run`), the gauges are drop guards, and a task aborted at shutdown
//! marks its run interrupted on drop. A run still waiting for a slot at shutdown stays
//! `queued` for the next host.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::metrics::{GaugeGuard, Metrics};
use crate::catalog::FindError;
use crate::run::{Host, PendingRun, Prepared, RunRecord, RunRequest, UsageError, guard_run};
use crate::store::{Admit, Admitted, AlertRecord, Store as RunStore};

/// How long a broken playbook's reason is served before loading it again.
const RETRY_BROKEN_AFTER: Duration = Duration::from_secs(30);
/// How long a playbook found in the catalog is taken to be still there: the catalog lists
/// the plugin dirs, a cost not worth paying on every webhook.
const CATALOG_RECHECK: Duration = Duration::from_secs(1);

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

pub enum Admission {
    Started(String),
    Deduplicated(String),
    Cooldown,
}

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    UnknownPlaybook(String),
    #[error("{0}")]
    Invalid(String),
    /// The playbook exists but cannot load or describe itself: the reason, for the operator.
    #[error("{0}")]
    Broken(String),
    #[error("the run queue is full ({0} runs waiting); retry later")]
    Busy(usize),
    #[error("{0}")]
    Internal(String),
}

pub struct Dispatcher {
    host: Arc<Host>,
    pub metrics: Arc<Metrics>,
    /// One slot per catalog entry; the lock is held only to find the slot, never across a
    /// load or describe(), so a slow playbook delays only its own webhooks.
    prepared: Mutex<HashMap<String, PreparedSlot>>,
    total: Arc<Semaphore>,
    per_playbook: Mutex<HashMap<String, Arc<Semaphore>>>,
    waiting: Arc<AtomicUsize>,
    queue_limit: usize,
    dedup_window: Duration,
    /// Run tasks, queued or running; a finished task is freed at once (a JoinSet would keep
    /// it until joined).
    tasks: TaskTracker,
    /// Set at shutdown: runs still waiting for a slot give up and stay queued.
    closing: watch::Sender<bool>,
    /// Cancelled when the shutdown grace is over: running runs are cut (marked interrupted).
    cut_short: CancellationToken,
    cut: Arc<AtomicUsize>,
    /// Where run tasks execute; `None` only once dropped.
    runs: Option<tokio::runtime::Runtime>,
}

impl Dispatcher {
    pub fn new(host: Arc<Host>, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        let server = &host.config.server;
        Ok(Self {
            total: Arc::new(Semaphore::new(server.max_concurrent_runs.max(1))),
            queue_limit: server.queue_limit,
            dedup_window: Duration::from_secs(server.dedup_window_secs),
            host,
            metrics,
            prepared: Mutex::new(HashMap::new()),
            per_playbook: Mutex::new(HashMap::new()),
            waiting: Arc::new(AtomicUsize::new(0)),
            tasks: TaskTracker::new(),
            closing: watch::channel(false).0,
            cut_short: CancellationToken::new(),
            cut: Arc::new(AtomicUsize::new(0)),
            runs: Some(run_runtime()?),
        })
    }

    pub fn host(&self) -> &Host {
        &self.host
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
            self.host.catalog.entry(playbook).map_err(|e| match e {
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
                eprintln!("loading playbook {playbook}");
                let prepared = self.host.prepare(playbook).await;
                prepared.map(Arc::new).map_err(|e| {
                    let reason = format!("{e:#}");
                    // The reason can carry what the guest printed: escaped for the log.
                    eprintln!(
                        "playbook {playbook} is broken: {}",
                        crate::text::escape(&reason)
                    );
                    reason
                })
            })
            .await;
        prepared.clone().map_err(Refusal::Broken)
    }

    /// Stores the run and queues it; `cooldown` is (key, period) for route cooldowns; `alert`
    /// is the alert's record, stored with the admission's disposition.
    ///
    /// Not cancel-safe: once the admission is sent to the store it may commit, and then the
    /// run must be queued. Callers run it in a task of its own, not in a request's future.
    pub async fn submit(
        &self,
        playbook: &str,
        request: RunRequest,
        cooldown: Option<(String, Duration)>,
        alert: Option<AlertRecord>,
    ) -> Result<Admission, Refusal> {
        // Taken before the admission, so admissions in flight together cannot overshoot the
        // queue limit; given back unless a run is queued.
        let place = Place::take(&self.waiting, self.queue_limit).map_err(Refusal::Busy)?;
        let prepared = self.prepared(playbook).await?;
        let store = self
            .host
            .store
            .clone()
            .ok_or_else(|| Refusal::Internal("no run store".into()))?;
        let deduplicated = request.dedup_key.is_some();
        let pending = self.host.new_pending(&prepared, request).map_err(|e| {
            if e.downcast_ref::<UsageError>().is_some() {
                Refusal::Invalid(format!("{e:#}"))
            } else {
                Refusal::Internal(format!("{e:#}"))
            }
        })?;
        let now = SystemTime::now();
        let since = |ago: Duration| {
            humantime::format_rfc3339_millis(now.checked_sub(ago).unwrap_or(SystemTime::UNIX_EPOCH))
                .to_string()
        };
        let admit = Admit {
            run: self.host.queued_row(&prepared, &pending),
            dedup_since: deduplicated.then(|| since(self.dedup_window)),
            cooldown: cooldown.map(|(key, period)| (key, since(period))),
            alert,
        };
        match store.admit(admit).await {
            Ok(Admitted::Started) => {
                let run_id = pending.run_id.clone();
                self.enqueue_in(place, prepared, pending);
                Ok(Admission::Started(run_id))
            }
            Ok(Admitted::Deduplicated(id)) => Ok(Admission::Deduplicated(id)),
            Ok(Admitted::Cooldown) => Ok(Admission::Cooldown),
            Err(e) => Err(Refusal::Internal(format!("{e:#}"))),
        }
    }

    /// Queues a run recorded in the store (new, or left `queued` by a previous host) for a
    /// slot; it starts when both its playbook's and the total limits allow.
    pub fn enqueue(&self, prepared: Arc<Prepared>, pending: PendingRun) {
        self.enqueue_in(Place::beyond_limit(&self.waiting), prepared, pending);
    }

    fn enqueue_in(&self, place: Place, prepared: Arc<Prepared>, pending: PendingRun) {
        let queued = Waiting::enter(place, &self.metrics);
        let per_playbook = self.playbook_slots(&prepared.source.name);
        let total = self.total.clone();
        let mut closing = self.closing.subscribe();
        let metrics = self.metrics.clone();
        let host = self.host.clone();
        let cut_short = self.cut_short.clone();
        let cut = self.cut.clone();
        let runs = self
            .runs
            .as_ref()
            .expect("the run runtime lives as long as the dispatcher");
        let task = async move {
            let slots = async {
                let mine = per_playbook.acquire_owned().await;
                let any = total.acquire_owned().await;
                (mine, any)
            };
            let _slots = tokio::select! {
                // Not started when the host stops: it stays queued for the next host.
                _ = closing.wait_for(|closing| *closing) => return,
                slots = slots => slots,
            };
            drop(queued);
            let store = host.store.clone();
            let run_id = pending.run_id.clone();
            // Boxed when it starts: a queued task then holds only its inputs, not the room
            // for a whole run's state (~10 KB a queued run otherwise).
            let work = Box::pin(run_task(
                &metrics,
                store,
                run_id,
                host.execute(&prepared, pending, None),
            ));
            tokio::select! {
                () = work => {}
                // Dropping the run's future marks it interrupted (InterruptOnDrop).
                () = cut_short.cancelled() => {
                    cut.fetch_add(1, Ordering::Relaxed);
                }
            }
        };
        self.tasks.spawn_on(task, runs.handle());
    }

    fn playbook_slots(&self, playbook: &str) -> Arc<Semaphore> {
        let limit = self
            .host
            .config
            .plugins
            .get(playbook)
            .and_then(|p| p.max_concurrent)
            .unwrap_or(2)
            .max(1);
        self.per_playbook
            .lock()
            .unwrap()
            .entry(playbook.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(limit)))
            .clone()
    }

    /// Runs not started yet stay queued for the next host; running runs may finish within
    /// `grace`, then are aborted and marked interrupted. Returns how many were cut.
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

/// One of the queue's places (counted against `queue-limit`), given back on drop.
struct Place {
    count: Arc<AtomicUsize>,
}

impl Place {
    /// A place if fewer than `limit` are taken, else how many are.
    fn take(count: &Arc<AtomicUsize>, limit: usize) -> Result<Place, usize> {
        count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < limit).then_some(n + 1)
            })
            .map(|_| Place {
                count: count.clone(),
            })
    }

    /// For runs already accepted (by a previous host): they are queued whatever the limit.
    fn beyond_limit(count: &Arc<AtomicUsize>) -> Place {
        count.fetch_add(1, Ordering::Relaxed);
        Place {
            count: count.clone(),
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A queued run's place and its share of the queue-depth gauge, until dropped.
struct Waiting {
    _place: Place,
    _gauge: GaugeGuard,
}

impl Waiting {
    fn enter(place: Place, metrics: &Metrics) -> Self {
        Self {
            _place: place,
            _gauge: GaugeGuard::hold(&metrics.queue_depth),
        }
    }
}

/// The execution part of a run's task, once it holds its slots: counted as running while it
/// lasts; a panic or error fails the run; dropped midway (aborted at shutdown), it marks the
/// run interrupted.
async fn run_task(
    metrics: &Metrics,
    store: Option<Arc<RunStore>>,
    run_id: String,
    work: impl Future<Output = anyhow::Result<RunRecord>>,
) {
    let _running = GaugeGuard::hold(&metrics.running);
    let mut cut = InterruptOnDrop {
        store: store.clone(),
        run_id: run_id.clone(),
        armed: true,
    };
    let result = guard_run(store.as_deref(), &run_id, work).await;
    cut.armed = false;
    match result {
        Ok(record) => metrics.finished(&record),
        Err(e) => eprintln!("{}", crate::text::escape(&format!("{e:#}"))),
    }
    drop(_running);
    if metrics.running.get() == 0 && metrics.queue_depth.get() == 0 {
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

/// Marks a run interrupted if its task is dropped before it ended (aborted at shutdown).
struct InterruptOnDrop {
    store: Option<Arc<RunStore>>,
    run_id: String,
    armed: bool,
}

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        let (true, Some(store)) = (self.armed, &self.store) else {
            return;
        };
        let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let reason = "the host stopped (shutdown grace over) before the run ended";
        if let Err(e) = store.end_unfinished(&self.run_id, "interrupted", reason, &now) {
            eprintln!(
                "run {}: recording that it was interrupted: {e:#}",
                self.run_id
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewRun;

    fn running_run(store: &RunStore, id: &str) {
        let params = serde_json::json!({});
        store
            .insert_queued(&NewRun {
                id,
                playbook: "hostile",
                origin: "plugin-dir",
                trigger: "webhook",
                params: &params,
                alert: None,
                dry_run: false,
                dedup_key: None,
                started_at: "2026-11-25T10:00:00Z",
                severity: "P3",
            })
            .unwrap();
        store.mark_running(id).unwrap();
    }

    #[tokio::test]
    async fn a_panicking_run_task_fails_the_run_and_gives_its_gauge_back() {
        let store = Arc::new(RunStore::open_in_memory().unwrap());
        running_run(&store, "r1");
        let metrics = Metrics::new();
        fn panics() -> anyhow::Result<RunRecord> {
            panic!("boom in the host")
        }
        run_task(&metrics, Some(store.clone()), "r1".into(), async {
            panics()
        })
        .await;
        let run = store.get("r1").unwrap().unwrap();
        assert_eq!(run.run.status, "failed");
        let reason = run.reason.unwrap();
        assert!(
            reason.contains("host error: panic: boom in the host"),
            "{reason}"
        );
        assert_eq!(metrics.running.get(), 0);
    }

    #[tokio::test]
    async fn a_run_task_aborted_midway_marks_the_run_interrupted() {
        let store = Arc::new(RunStore::open_in_memory().unwrap());
        running_run(&store, "r2");
        let metrics = Arc::new(Metrics::new());
        let (started, mut seen) = watch::channel(false);
        let task = tokio::spawn({
            let (metrics, store) = (metrics.clone(), store.clone());
            async move {
                let work = async move {
                    let _ = started.send(true);
                    std::future::pending::<anyhow::Result<RunRecord>>().await
                };
                run_task(&metrics, Some(store), "r2".into(), work).await
            }
        });
        seen.wait_for(|s| *s).await.unwrap();
        assert_eq!(metrics.running.get(), 1);
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        assert_eq!(store.get("r2").unwrap().unwrap().run.status, "interrupted");
        assert_eq!(metrics.running.get(), 0);
    }

    #[test]
    fn a_queue_place_is_given_back_on_drop() {
        let metrics = Metrics::new();
        let count = Arc::new(AtomicUsize::new(0));
        let place = Waiting::enter(Place::take(&count, 1).unwrap(), &metrics);
        assert_eq!(
            (count.load(Ordering::Relaxed), metrics.queue_depth.get()),
            (1, 1)
        );
        drop(place);
        assert_eq!(
            (count.load(Ordering::Relaxed), metrics.queue_depth.get()),
            (0, 0)
        );
    }

    #[test]
    fn admissions_at_once_never_take_more_places_than_the_limit() {
        let count = Arc::new(AtomicUsize::new(0));
        let taken: Vec<Place> = std::thread::scope(|s| {
            let takers: Vec<_> = (0..16)
                .map(|_| {
                    s.spawn(|| {
                        (0..100)
                            .filter_map(|_| Place::take(&count, 50).ok())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            takers.into_iter().flat_map(|t| t.join().unwrap()).collect()
        });
        assert_eq!((taken.len(), count.load(Ordering::Relaxed)), (50, 50));
        assert_eq!(Place::take(&count, 50).err(), Some(50));
        drop(taken);
        assert_eq!(count.load(Ordering::Relaxed), 0);
    }
}
