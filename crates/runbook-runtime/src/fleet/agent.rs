//! `host agent --server URL --node NAME`: executes the runs targeted at this node with this
//! machine's engine, compile cache, catalog and host.toml (the ceiling: the server names a
//! playbook and parameters, the node's grants and limits decide what the run may do), and
//! sends the timeline back as it happens, then the outcome and artifacts.
//!
//! Three loops: polling (long-poll for runs while there is room), heartbeat (every third of
//! the lease: renews the leases of the runs executing here, and stops any the server says are
//! no longer ours), and one task per run. The agent holds no database credentials; its only
//! state is its compile cache and its notification outbox (a local SQLite file).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use futures::FutureExt;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::uplink::{Refused, Uplink};
use super::{
    AgentId, EventsUpload, FinishUpload, HeartbeatRequest, HeartbeatResponse, PollRequest,
    PollResponse, new_session,
};
use crate::records::{QueuedRun, now_rfc3339};
use crate::run::{Host, Prepared, RunRecord};
use crate::timeline::Event;

/// How long a poll may be held by the server when nothing is queued for the node.
const POLL_WAIT: Duration = Duration::from_secs(25);
/// Between attempts when no server answers.
const RETRY_MIN: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Events sent in one upload.
const EVENTS_PER_UPLOAD: usize = 512;
/// An outcome is retried this long (a server restarting) before it is given up: by then the
/// run's lease has long ended and the server calls it lost. Shorter once the agent is stopping.
const FINISH_PATIENCE: Duration = Duration::from_secs(600);
const FINISH_PATIENCE_STOPPING: Duration = Duration::from_secs(10);

pub struct AgentOptions {
    pub servers: Vec<url::Url>,
    pub node: String,
    /// None: the client certificate alone (`[fleet] node-auth = "certificate"`).
    pub token: Option<String>,
    /// Runs executing here at once.
    pub max_runs: usize,
}

struct Agent {
    host: Arc<Host>,
    uplink: Arc<Uplink>,
    /// Runs executing here, each with the token that stops it.
    running: Mutex<HashMap<String, CancellationToken>>,
    room: Arc<Semaphore>,
    prepared: tokio::sync::Mutex<HashMap<String, Arc<Prepared>>>,
    lease: Mutex<Duration>,
    /// Set at SIGTERM: nothing more is taken.
    closing: CancellationToken,
    /// Set when the shutdown grace is over: running runs are cut (ended `interrupted`).
    cut: CancellationToken,
}

/// Runs the agent until SIGTERM/SIGINT; running runs get `[server] shutdown-grace-secs`.
pub async fn run(host: Host, options: AgentOptions) -> Result<()> {
    super::check_node_name(&options.node).map_err(|e| anyhow::anyhow!("--node: {e}"))?;
    let grace = Duration::from_secs(host.config.server.shutdown_grace_secs);
    let agent = AgentId {
        node: options.node.clone(),
        session: new_session(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let notifier = host.notifier();
    notifier.start();
    let uplink = Arc::new(Uplink::new(options.servers, options.token, agent)?);
    // Before the first run: every mutating call of a run here asks the server too.
    host.use_safety_server(
        Arc::new(super::act::ServerGate(uplink.clone())),
        options.node.clone(),
    );
    // A playbook the server names by digest comes from the registry, else from the server.
    host.use_artifact_fallback(Arc::new(super::artifacts::ServerArtifacts(uplink.clone())));
    let agent = Arc::new(Agent {
        host: Arc::new(host),
        uplink,
        running: Mutex::new(HashMap::new()),
        room: Arc::new(Semaphore::new(options.max_runs.max(1))),
        prepared: tokio::sync::Mutex::new(HashMap::new()),
        lease: Mutex::new(Duration::from_secs(30)),
        closing: CancellationToken::new(),
        cut: CancellationToken::new(),
    });
    tracing::info!(
        "agent of node {} (session {}) taking runs from {}",
        options.node,
        agent.uplink.agent.session,
        crate::redact::url(agent.uplink.server().as_str())
    );
    let tasks = TaskTracker::new();
    let heartbeat = tokio::spawn(agent.clone().heartbeats());
    let polling = tokio::spawn(agent.clone().poll_loop(tasks.clone()));
    shutdown_signal().await;
    tracing::info!("agent stopping: no new runs; waiting for running runs");
    agent.closing.cancel();
    let _ = polling.await;
    tasks.close();
    if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
        agent.cut.cancel();
        tasks.wait().await;
    }
    heartbeat.abort();
    notifier.stop(Duration::from_secs(10)).await;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn backoff(failures: u32) -> Duration {
    (RETRY_MIN * 2u32.saturating_pow(failures.min(5))).min(RETRY_MAX)
}

impl Agent {
    fn id(&self) -> AgentId {
        self.uplink.agent.clone()
    }

    fn lease(&self) -> Duration {
        *self.lease.lock().unwrap()
    }

    async fn poll_loop(self: Arc<Self>, tasks: TaskTracker) {
        let mut failures = 0;
        loop {
            // Waits for room: a poll asks only for what can start now.
            let first = tokio::select! {
                permit = self.room.clone().acquire_owned() => permit.expect("never closed"),
                _ = self.closing.cancelled() => return,
            };
            let room = 1 + self.room.available_permits();
            let request = PollRequest {
                agent: self.id(),
                room,
                wait_ms: POLL_WAIT.as_millis() as u64,
            };
            let answer = tokio::select! {
                answer = self.uplink.post::<PollResponse>(
                    &["agent", "v1", "poll"],
                    &request,
                    POLL_WAIT + Duration::from_secs(10),
                ) => answer,
                _ = self.closing.cancelled() => return,
            };
            let runs = match answer {
                Ok(Ok(answer)) => {
                    failures = 0;
                    *self.lease.lock().unwrap() = Duration::from_millis(answer.lease_ms.max(1000));
                    answer.runs
                }
                Ok(Err(refused)) => {
                    tracing::warn!(
                        "the server refused this agent ({}): {}",
                        refused.status,
                        refused.message
                    );
                    failures += 1;
                    self.pause(RETRY_MAX).await;
                    continue;
                }
                Err(e) => {
                    if failures == 0 {
                        tracing::warn!("polling for runs: {e:#} (retrying)");
                    }
                    failures += 1;
                    self.pause(backoff(failures)).await;
                    continue;
                }
            };
            let mut first = Some(first);
            for run in runs {
                let permit = match first.take() {
                    Some(permit) => permit,
                    None => match self.room.clone().try_acquire_owned() {
                        Ok(permit) => permit,
                        // More than asked for: still ours to run (the server holds it for us).
                        Err(_) => match self.room.clone().acquire_owned().await {
                            Ok(permit) => permit,
                            Err(_) => return,
                        },
                    },
                };
                let stop = CancellationToken::new();
                self.running
                    .lock()
                    .unwrap()
                    .insert(run.id.clone(), stop.clone());
                let agent = self.clone();
                tasks.spawn(async move {
                    let id = run.id.clone();
                    agent.execute(run, stop).await;
                    agent.running.lock().unwrap().remove(&id);
                    drop(permit);
                });
            }
        }
    }

    async fn pause(&self, how_long: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(how_long) => {}
            _ = self.closing.cancelled() => {}
        }
    }

    /// Renews the leases of the runs executing here; a run the server no longer counts as
    /// ours (lost after its lease, e.g. while this node was cut off) is stopped.
    async fn heartbeats(self: Arc<Self>) {
        let mut failures = 0;
        loop {
            let running: Vec<String> = self.running.lock().unwrap().keys().cloned().collect();
            let request = HeartbeatRequest {
                agent: self.id(),
                running: running.clone(),
            };
            let answer = self
                .uplink
                .post::<HeartbeatResponse>(
                    &["agent", "v1", "heartbeat"],
                    &request,
                    Duration::from_secs(10),
                )
                .await;
            let wait = match answer {
                Ok(Ok(answer)) => {
                    failures = 0;
                    *self.lease.lock().unwrap() = Duration::from_millis(answer.lease_ms.max(1000));
                    for id in running.iter().filter(|id| !answer.held.contains(id)) {
                        self.stop_stale(id);
                    }
                    self.lease() / 3
                }
                Ok(Err(refused)) => {
                    tracing::warn!(
                        "heartbeat refused ({}): {}",
                        refused.status,
                        refused.message
                    );
                    RETRY_MAX
                }
                Err(e) => {
                    if failures == 0 {
                        tracing::warn!("heartbeat: {e:#} (retrying)");
                    }
                    failures += 1;
                    backoff(failures)
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    fn stop_stale(&self, id: &str) {
        if let Some(stop) = self.running.lock().unwrap().get(id) {
            tracing::warn!(
                "run {}: the server no longer counts it as this agent's (cancelled, or lost \
                 after its lease); stopping it, nothing more is written",
                crate::text::escape(id)
            );
            stop.cancel();
        }
    }

    /// The playbook as this node has it: its catalog, its compile cache. When the server
    /// named a registry digest (`origin`), exactly that artifact, pulled if need be, under
    /// this node's own trust keys, grants and limits.
    async fn prepared(&self, name: &str, origin: &str) -> Result<Arc<Prepared>> {
        let pinned = crate::catalog::Pinned::parse(origin).filter(|p| p.digest.is_some());
        let key = match &pinned {
            Some(p) => format!("{name} {}", p.digest.as_deref().unwrap_or_default()),
            None => name.to_string(),
        };
        let mut cache = self.prepared.lock().await;
        if let Some(prepared) = cache.get(&key) {
            return Ok(prepared.clone());
        }
        let prepared = match pinned {
            Some(_) => self.host.prepare_named_digest(name, origin).await?,
            None => self.host.prepare(name).await?,
        };
        let prepared = Arc::new(prepared);
        cache.insert(key, prepared.clone());
        Ok(prepared)
    }

    /// One run: executed here, its events sent as they happen, its outcome sent at the end.
    /// `stop` cancelled: the run is no longer ours, nothing more is written.
    async fn execute(self: &Arc<Self>, run: QueuedRun, stop: CancellationToken) {
        tracing::info!(
            "run {} ({}): started",
            crate::text::escape(&run.id),
            crate::text::escape(&run.playbook)
        );
        let (events, outbound) = mpsc::unbounded_channel::<Event>();
        let sender = tokio::spawn(
            self.clone()
                .send_events(run.id.clone(), outbound, stop.clone()),
        );
        let sink: crate::timeline::Sink = Box::new(move |event: &Event| {
            let _ = events.send(event.clone());
        });
        let node = &self.uplink.agent.node;
        let work = async {
            let prepared = self
                .prepared(&run.playbook, &run.origin)
                .await
                .map_err(|e| {
                    anyhow::anyhow!("node {node} cannot run playbook {}: {e:#}", run.playbook)
                })?;
            let pending = self
                .host
                .resume(&prepared, &run)
                .map_err(|e| anyhow::anyhow!("on node {node}: {e:#}"))?;
            self.host.execute(&prepared, pending, Some(sink)).await
        };
        // A panic in the host ends the run failed, never leaves it renewed here forever.
        let work = std::panic::AssertUnwindSafe(work).catch_unwind();
        let ended = tokio::select! {
            record = work => Ended::Ran(Box::new(record.unwrap_or_else(|panic| {
                Err(anyhow::anyhow!(
                    "host error: panic: {}",
                    crate::panics::panic_message(&*panic)
                ))
            }))),
            _ = stop.cancelled() => Ended::Taken,
            _ = self.cut.cancelled() => Ended::Cut,
        };
        // Every live event goes out before the outcome (which replaces them all).
        let _ = sender.await;
        let upload = match ended {
            Ended::Taken => return,
            Ended::Ran(record) => match *record {
                Ok(record) => self.upload_of(record),
                Err(e) => self.failure(&run, "failed", format!("{e:#}")),
            },
            Ended::Cut => self.failure(
                &run,
                "interrupted",
                format!("the agent of node {node} stopped (shutdown) while the run was executing"),
            ),
        };
        self.send_outcome(&run.id, &upload, &stop).await;
    }

    fn upload_of(&self, record: RunRecord) -> FinishUpload {
        FinishUpload {
            agent: self.id(),
            status: record.status.to_string(),
            summary: record.summary,
            actions: record.actions,
            reason: record.reason,
            ended_at: record.ended_at,
            timings: json!(record.timings),
            grants: json!(record.grants),
            events: record.timeline,
            artifacts: record.artifacts,
        }
    }

    fn failure(&self, run: &QueuedRun, status: &str, reason: String) -> FinishUpload {
        tracing::warn!(
            "run {} ({}): {status}: {}",
            run.id,
            run.playbook,
            crate::text::escape(&reason)
        );
        capped(FinishUpload {
            agent: self.id(),
            status: status.to_string(),
            summary: format!("run {status}: {reason}"),
            actions: Vec::new(),
            reason: Some(reason),
            ended_at: now_rfc3339(),
            timings: json!({}),
            grants: json!({}),
            events: Vec::new(),
            artifacts: Vec::new(),
        })
    }

    /// Sends the run's events in order as they come; ends when the run drops its sink.
    async fn send_events(
        self: Arc<Self>,
        run_id: String,
        mut outbound: mpsc::UnboundedReceiver<Event>,
        stop: CancellationToken,
    ) {
        let mut sent = 0;
        while let Some(first) = outbound.recv().await {
            let mut batch = vec![first];
            while batch.len() < EVENTS_PER_UPLOAD {
                match outbound.try_recv() {
                    Ok(event) => batch.push(event),
                    Err(_) => break,
                }
            }
            if stop.is_cancelled() {
                continue;
            }
            let upload = EventsUpload {
                agent: self.id(),
                from: sent,
                events: batch,
            };
            let path = ["agent", "v1", "runs", run_id.as_str(), "events"];
            // Live events are a view: a few tries, then the outcome carries them anyway.
            for attempt in 0..3 {
                match self
                    .uplink
                    .post::<serde_json::Value>(&path, &upload, Duration::from_secs(10))
                    .await
                {
                    Ok(Ok(_)) => break,
                    Ok(Err(Refused { status: 409, .. })) => {
                        self.stop_stale(&run_id);
                        break;
                    }
                    Ok(Err(refused)) => {
                        tracing::warn!(
                            "run {run_id}: events refused ({}): {}",
                            refused.status,
                            refused.message
                        );
                        break;
                    }
                    Err(_) => tokio::time::sleep(backoff(attempt)).await,
                }
            }
            sent += upload.events.len();
        }
    }

    /// The outcome, retried while no server answers (one may be restarting); a refusal (the
    /// run was taken from us) ends it.
    async fn send_outcome(&self, run_id: &str, upload: &FinishUpload, stop: &CancellationToken) {
        let path = ["agent", "v1", "runs", run_id, "finish"];
        let started = tokio::time::Instant::now();
        let mut failures = 0;
        let patience = || {
            if self.closing.is_cancelled() {
                FINISH_PATIENCE_STOPPING
            } else {
                FINISH_PATIENCE
            }
        };
        while started.elapsed() < patience() && !stop.is_cancelled() {
            match self
                .uplink
                .post::<serde_json::Value>(&path, upload, Duration::from_secs(30))
                .await
            {
                Ok(Ok(_)) => {
                    tracing::info!("run {run_id}: {} (stored by the server)", upload.status);
                    return;
                }
                Ok(Err(refused)) => {
                    tracing::warn!(
                        "run {run_id}: the server refused its outcome ({}): {}",
                        refused.status,
                        refused.message
                    );
                    return;
                }
                Err(e) => {
                    if failures == 0 {
                        tracing::warn!("run {run_id}: sending its outcome: {e:#} (retrying)");
                    }
                    failures += 1;
                    tokio::time::sleep(backoff(failures)).await;
                }
            }
        }
        tracing::warn!("run {run_id}: its outcome was not delivered; the server will call it lost");
    }
}

enum Ended {
    Ran(Box<Result<RunRecord>>),
    /// The server took the run from this agent: write nothing.
    Taken,
    /// Shutdown grace over.
    Cut,
}

/// A host error's words can be long (a playbook's output): within the server's caps.
fn capped(mut upload: FinishUpload) -> FinishUpload {
    let cap = |text: &mut String, max: usize| {
        if text.len() > max {
            let mut end = max;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
    };
    cap(&mut upload.summary, crate::run::MAX_SUMMARY_BYTES);
    if let Some(reason) = &mut upload.reason {
        cap(reason, 8 << 10);
    }
    upload
}
