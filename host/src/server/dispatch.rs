//! Admission and execution of webhook-triggered runs: dedup (same alert, same playbook, within
//! the window → the existing run), cooldowns, a bounded queue (503 beyond it), concurrency caps
//! per playbook and in total. A run is in the store before its webhook is answered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::metrics::Metrics;
use crate::catalog::FindError;
use crate::run::{Host, Prepared, RunRequest, UsageError};

/// How long a broken playbook's reason is served before loading it again.
const RETRY_BROKEN_AFTER: Duration = Duration::from_secs(30);

type PrepareResult = Result<Arc<Prepared>, String>;

struct PreparedSlot {
    cell: Arc<tokio::sync::OnceCell<PrepareResult>>,
    created: Instant,
}

impl PreparedSlot {
    fn new() -> Self {
        Self {
            cell: Arc::new(tokio::sync::OnceCell::new()),
            created: Instant::now(),
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
    /// Serialises dedup lookup + insert so two identical deliveries cannot both start a run.
    admission: tokio::sync::Mutex<()>,
    cooldowns: Mutex<HashMap<(String, String), Instant>>,
    tasks: Mutex<JoinSet<()>>,
}

impl Dispatcher {
    pub fn new(host: Arc<Host>, metrics: Arc<Metrics>) -> Self {
        let server = &host.config.server;
        Self {
            total: Arc::new(Semaphore::new(server.max_concurrent_runs.max(1))),
            queue_limit: server.queue_limit,
            dedup_window: Duration::from_secs(server.dedup_window_secs),
            host,
            metrics,
            prepared: Mutex::new(HashMap::new()),
            per_playbook: Mutex::new(HashMap::new()),
            waiting: Arc::new(AtomicUsize::new(0)),
            admission: tokio::sync::Mutex::new(()),
            cooldowns: Mutex::new(HashMap::new()),
            tasks: Mutex::new(JoinSet::new()),
        }
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Loaded, linked and described once per playbook (the InstancePre is reused by every run).
    /// A broken playbook's reason is kept for a while, then it is tried again.
    async fn prepared(&self, playbook: &str) -> Result<Arc<Prepared>, Refusal> {
        // Only names in the catalog get a slot: the map stays as small as the catalog.
        self.host.catalog.entry(playbook).map_err(|e| match e {
            FindError::Unknown { .. } => Refusal::UnknownPlaybook(e.to_string()),
            other => Refusal::Invalid(other.to_string()),
        })?;
        let cell = {
            let mut slots = self.prepared.lock().unwrap();
            let slot = slots
                .entry(playbook.to_string())
                .or_insert_with(PreparedSlot::new);
            if slot.stale() {
                *slot = PreparedSlot::new();
            }
            slot.cell.clone()
        };
        let prepared = cell
            .get_or_init(|| async {
                eprintln!("loading playbook {playbook}");
                let prepared = self.host.prepare(playbook).await;
                prepared.map(Arc::new).map_err(|e| {
                    let reason = format!("{e:#}");
                    eprintln!("playbook {playbook} is broken: {reason}");
                    reason
                })
            })
            .await;
        prepared.clone().map_err(Refusal::Broken)
    }

    /// Stores the run and queues it; `cooldown` is (key, period) for route cooldowns.
    pub async fn submit(
        &self,
        playbook: &str,
        request: RunRequest,
        cooldown: Option<(String, Duration)>,
    ) -> Result<Admission, Refusal> {
        let waiting = self.waiting.load(Ordering::Relaxed);
        if waiting >= self.queue_limit {
            return Err(Refusal::Busy(waiting));
        }
        let prepared = self.prepared(playbook).await?;
        let _admission = self.admission.lock().await;
        let store = self
            .host
            .store
            .clone()
            .ok_or_else(|| Refusal::Internal("no run store".into()))?;
        if let Some(key) = &request.dedup_key {
            let since =
                humantime::format_rfc3339_millis(SystemTime::now() - self.dedup_window).to_string();
            if let Some(id) = store
                .find_dedup(key, &since)
                .map_err(|e| Refusal::Internal(format!("{e:#}")))?
            {
                return Ok(Admission::Deduplicated(id));
            }
        }
        if let Some((key, period)) = &cooldown {
            let mut cooldowns = self.cooldowns.lock().unwrap();
            let slot = (playbook.to_string(), key.clone());
            if cooldowns
                .get(&slot)
                .is_some_and(|at| at.elapsed() < *period)
            {
                return Ok(Admission::Cooldown);
            }
            cooldowns.insert(slot, Instant::now());
        }
        let pending = self.host.begin(&prepared, request).map_err(|e| {
            if e.downcast_ref::<UsageError>().is_some() {
                Refusal::Invalid(format!("{e:#}"))
            } else {
                Refusal::Internal(format!("{e:#}"))
            }
        })?;
        let run_id = pending.run_id.clone();

        let per_playbook = self.playbook_slots(playbook);
        let total = self.total.clone();
        let waiting = self.waiting.clone();
        let metrics = self.metrics.clone();
        let host = self.host.clone();
        waiting.fetch_add(1, Ordering::Relaxed);
        metrics.queue_depth.inc();
        self.tasks.lock().unwrap().spawn(async move {
            let _mine = per_playbook.acquire_owned().await;
            let _any = total.acquire_owned().await;
            waiting.fetch_sub(1, Ordering::Relaxed);
            metrics.queue_depth.dec();
            metrics.running.inc();
            let id = pending.run_id.clone();
            match host.execute(&prepared, pending, None).await {
                Ok(record) => metrics.finished(&record),
                Err(e) => eprintln!("run {id}: {e:#}"),
            }
            metrics.running.dec();
        });
        Ok(Admission::Started(run_id))
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

    /// Lets running and queued runs finish within `grace`; what is left is aborted and marked
    /// interrupted in the store.
    pub async fn shutdown(&self, grace: Duration) -> usize {
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap());
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_ok() {
            return 0;
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        self.host
            .store
            .as_ref()
            .and_then(|s| s.mark_interrupted(&now).ok())
            .unwrap_or(0)
    }
}
