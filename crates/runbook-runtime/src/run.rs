//! Runs one playbook: load (compile cache), describe, validate parameters, instantiate with the
//! playbook's grants and limits, call `run`, and turn whatever happened — an outcome, an error,
//! a trap, a limit — into a `RunRecord`. A playbook failing is a result, never a host crash.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};
use futures::FutureExt;
use serde::Serialize;
use tracing::Instrument;
use wasmtime::{Store, UpdateDeadline};

use crate::bindings::{Alert, Description, Incident, VersionedPre};
use crate::caps::docker::DockerEngine;
use crate::caps::fs_read::Protected;
use crate::caps::http::HttpClient;
use crate::caps::notify::RunContext;
use crate::catalog::{Catalog, CatalogEntry, Origin, PluginSource};
use crate::config::Config;
use crate::description;
use crate::engine::{Allocation, LoadReport, PlaybookEngine};
use crate::notify::{AlertRef, ConsoleStream, Notifier};
use crate::panics::panic_message;
use crate::policy::{Grants, Limits};
use crate::severity::Priority;
use crate::state::{Artifact, LimitExceeded, RunState, Services};
use crate::store::{QueuedRun, RunOutcome, Store as RunStore, UnfinishedRun};
use crate::timeline::{Event, Sink, Timeline, round_ms};

mod ending;
mod prepare;

pub use ending::{MAX_ACTION_BYTES, MAX_ACTIONS, MAX_SUMMARY_BYTES, guard_run};
use ending::{failed, outcome_size_problem, trap_reason};

/// Mistakes in what the operator asked for: the CLI exits 2 for these.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error(transparent)]
    Find(#[from] crate::catalog::FindError),
    #[error("playbook {playbook} has no parameter {name:?}; its parameters: {}", known.join(", "))]
    UnknownParam {
        playbook: String,
        name: String,
        known: Vec<String>,
    },
    #[error("parameter {name:?} is required by {playbook} (see `host inspect {playbook}`)")]
    MissingParam { playbook: String, name: String },
    #[error("parameter {0:?} is given more than once")]
    DuplicateParam(String),
    /// A value that is not of its parameter's type (crate::params).
    #[error("parameter {name:?} of {playbook} is a {ty}: {value:?} is not one ({why})")]
    BadValue {
        playbook: String,
        name: String,
        ty: crate::params::ParamType,
        value: String,
        why: String,
    },
}

/// A playbook loaded and linked, with what it says about itself.
pub struct Prepared {
    /// Name and origin; `wasm` is empty for a file (what runs is the compiled form, and a
    /// server need not keep a 17 MB Python component in memory per playbook).
    pub source: PluginSource,
    pub pre: VersionedPre,
    pub load: LoadReport,
    pub description: Description,
}

/// A run recorded as queued and not yet executed.
pub struct PendingRun {
    pub run_id: String,
    started_at: SystemTime,
    alert_json: Option<serde_json::Value>,
    params: Vec<(String, String)>,
    severity: Priority,
    request: RunRequest,
}

pub struct RunRequest {
    pub params: Vec<(String, String)>,
    pub alert: Option<Alert>,
    pub trigger: Trigger,
    /// Who asked for the run when a person did through the console (its `[ui]` user).
    pub by: Option<String>,
    pub dry_run: bool,
    /// Same key, same playbook: the webhook server answers with the existing run.
    pub dedup_key: Option<String>,
    /// Given by the trigger; else the alert's label decides, else P3.
    pub severity: Option<Priority>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub run_id: String,
    pub playbook: String,
    pub origin: String,
    pub trigger: &'static str,
    pub dry_run: bool,
    pub params: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<serde_json::Value>,
    pub started_at: String,
    pub ended_at: String,
    pub severity: Priority,
    /// resolved, mitigated, escalated, no-action or failed.
    pub status: &'static str,
    pub summary: String,
    pub actions: Vec<String>,
    /// Why a failed run failed (error kind, trap, limit), in one line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub grants: Grants,
    pub timeline: Vec<Event>,
    pub artifacts: Vec<Artifact>,
    pub timings: Timings,
}

impl RunRecord {
    /// What the store keeps of the run's end.
    pub fn outcome(&self) -> Result<RunOutcome> {
        Ok(RunOutcome {
            run_id: self.run_id.clone(),
            status: self.status.to_string(),
            summary: self.summary.clone(),
            actions: self.actions.clone(),
            reason: self.reason.clone(),
            ended_at: self.ended_at.clone(),
            timings: serde_json::to_value(&self.timings)?,
            grants: serde_json::to_value(&self.grants)?,
            events: self
                .timeline
                .iter()
                .map(serde_json::to_string)
                .collect::<Result<_, _>>()?,
            artifacts: self.artifacts.clone(),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Timings {
    pub load: LoadReport,
    pub instantiate_ms: f64,
    /// Inside the playbook's `run`, capability calls included.
    pub run_ms: f64,
    /// Dropping the run's store and instance.
    pub teardown_ms: f64,
    /// Of `run_ms`, the time spent inside capability calls.
    pub capability_calls_ms: f64,
    pub total_ms: f64,
}

/// The host as a library: one engine, the config and the catalog. The CLI and the server
/// both drive runs through this.
pub struct Host {
    pub engine: PlaybookEngine,
    pub config: Config,
    pub catalog: Catalog,
    docker: Arc<DockerEngine>,
    http: Arc<HttpClient>,
    /// Where runs are kept; `None` only when the operator turned it off.
    pub store: Option<Arc<RunStore>>,
    /// Where console notifications print (stderr when stdout carries a JSON document).
    pub console: ConsoleStream,
    notifier: std::sync::OnceLock<Arc<Notifier>>,
    approvals: std::sync::OnceLock<Arc<crate::approval::Approvals>>,
    /// `host agent`: the node's own outbox, when runs are stored by a server (`store` None).
    outbox: std::sync::OnceLock<Arc<RunStore>>,
    /// The config a SIGHUP reloaded, for grants and limits (`config` keeps what a restart
    /// changes: listen address, store, plugin dirs).
    reloaded: std::sync::RwLock<Option<Arc<Config>>>,
    cache_dir: Option<std::path::PathBuf>,
    protected: std::sync::OnceLock<Arc<Protected>>,
    /// The describe() name of each plugin-dir file this process has looked at (`None`: it
    /// could not be described), for as long as the file is unchanged: a broken file costs its
    /// describe() deadline once, not on every lookup of every name.
    file_names: std::sync::Mutex<std::collections::HashMap<std::path::PathBuf, prepare::NamedFile>>,
}

impl Host {
    pub fn new(config: Config, cache_dir: Option<std::path::PathBuf>) -> Result<Self> {
        Self::with_allocation(config, cache_dir, Allocation::OnDemand)
    }

    /// `host serve`: instances come from a pool sized from the config (see `engine::PoolPlan`).
    pub fn for_server(config: Config, cache_dir: Option<std::path::PathBuf>) -> Result<Self> {
        let plan = crate::engine::PoolPlan::for_config(&config);
        Self::with_allocation(config, cache_dir, Allocation::Pooled(plan))
    }

    pub fn with_allocation(
        config: Config,
        cache_dir: Option<std::path::PathBuf>,
        allocation: Allocation,
    ) -> Result<Self> {
        let engine = PlaybookEngine::with_allocation(cache_dir.clone(), allocation)?;
        let catalog = Catalog::new(config.plugin_dirs.clone(), config.max_component_mib());
        Ok(Self {
            engine,
            config,
            catalog,
            docker: Arc::new(DockerEngine::from_env()),
            http: Arc::new(HttpClient::new()?),
            store: None,
            console: ConsoleStream::Stdout,
            notifier: std::sync::OnceLock::new(),
            approvals: std::sync::OnceLock::new(),
            outbox: std::sync::OnceLock::new(),
            reloaded: std::sync::RwLock::new(None),
            cache_dir,
            protected: std::sync::OnceLock::new(),
            file_names: Default::default(),
        })
    }

    /// The notification channels and their outbox, built on first use over the run store (or
    /// an in-memory one when runs are not stored). Set `store` and `console` before.
    pub fn notifier(&self) -> Arc<Notifier> {
        self.notifier
            .get_or_init(|| {
                let store = match self.store.as_ref().or(self.outbox.get()) {
                    Some(store) => store.clone(),
                    None => crate::store::open_in_memory().expect("in-memory SQLite opens"),
                };
                Arc::new(Notifier::new(&self.config.notify, store, self.console))
            })
            .clone()
    }

    /// The host's own files, which no fs-read grant reaches: built on first use, so set
    /// `store` before.
    pub fn protected(&self) -> Arc<Protected> {
        self.protected
            .get_or_init(|| {
                Arc::new(Protected::new(
                    self.config.host_files(),
                    self.store
                        .as_ref()
                        .or(self.outbox.get())
                        .and_then(|s| s.local_file())
                        .as_deref(),
                    self.cache_dir.clone(),
                ))
            })
            .clone()
    }

    /// `host agent`: the server stores the runs, the node queues its notifications in a
    /// store of its own (a local SQLite file, which no fs-read grant reaches). Set before the
    /// notifier or the protected files are first used.
    pub fn use_outbox(&self, outbox: Arc<RunStore>) {
        let _ = self.outbox.set(outbox);
    }

    fn services(&self) -> Services {
        Services {
            notifier: self.notifier(),
            docker: self.docker.clone(),
            http: self.http.clone(),
            protected: self.protected(),
            approvals: self.approvals(),
        }
    }

    /// Questions to people, over the notifier's store (the run store, or an in-memory one
    /// when runs are not stored: then only this process sees the answers). `None` on a fleet
    /// agent, whose runs the server stores.
    pub fn approvals(&self) -> Option<Arc<crate::approval::Approvals>> {
        if self.outbox.get().is_some() {
            return None;
        }
        Some(
            self.approvals
                .get_or_init(|| {
                    let notifier = self.notifier();
                    let groups = self.with_policy(|config| config.approvers.clone());
                    crate::approval::Approvals::new(notifier.store().clone(), notifier, groups)
                })
                .clone(),
        )
    }

    pub fn grants_for(&self, source: &PluginSource) -> Grants {
        let builtin = source.origin == crate::catalog::Origin::BuiltIn;
        self.with_policy(|config| config.grants_for(&source.name, builtin))
    }

    pub fn limits_for(&self, name: &str) -> Limits {
        self.with_policy(|config| config.limits_for(name))
    }

    /// Grants and limits come from the config `host serve` last (re)loaded: a SIGHUP applies
    /// them to runs that start after it.
    pub fn with_policy<R>(&self, read: impl FnOnce(&Config) -> R) -> R {
        match &*self.reloaded.read().unwrap() {
            Some(config) => read(config),
            None => read(&self.config),
        }
    }

    /// `host serve` on SIGHUP: the grants and limits of this config apply from the next run.
    pub fn reload_policy(&self, config: Arc<Config>) {
        if let Some(approvals) = self.approvals.get() {
            approvals.reload(config.approvers.clone());
        }
        *self.reloaded.write().unwrap() = Some(config);
    }

    /// Runs a prepared playbook to its end. `sink` sees timeline events live. Whatever goes
    /// wrong in the host, the run ends `failed` in the store (see `guard_run`).
    pub async fn run(
        &self,
        prepared: &Prepared,
        request: RunRequest,
        sink: Option<Sink>,
    ) -> Result<RunRecord> {
        Ok(self.run_taped(prepared, request, sink, None).await?.0)
    }

    /// `run`, recording or replaying its capability calls (`crate::replay`). A recorded run
    /// keeps its fixture as the artifact `replay::FIXTURE_ARTIFACT`.
    pub async fn run_taped(
        &self,
        prepared: &Prepared,
        request: RunRequest,
        sink: Option<Sink>,
        tape: Option<crate::replay::Tape>,
    ) -> Result<(RunRecord, Option<crate::replay::Tape>)> {
        let pending = self.begin(prepared, request).await?;
        let run_id = pending.run_id.clone();
        // Renewed while it runs, so a `host serve` on the same store never takes it for lost.
        let leases = self
            .store
            .clone()
            .map(|store| crate::store::keep_leases(store, self.config.server.lease()));
        // A `host runs cancel` from another process reaches this run through the store.
        let cancels = self.store.clone().map(crate::cancel::watch);
        let mut tape_back = None;
        let work = async {
            let (record, tape) = self.execute_taped(prepared, pending, sink, tape).await?;
            tape_back = tape;
            Ok(record)
        };
        let record = guard_run(self.store.as_deref(), &run_id, work).await;
        for task in [leases, cancels].into_iter().flatten() {
            task.abort();
        }
        Ok((record?, tape_back))
    }

    /// A run a previous host accepted and never started (status `queued` in the store), ready
    /// for `execute` under its original id, parameters, alert and dedup key.
    pub fn resume(&self, prepared: &Prepared, stored: &UnfinishedRun) -> Result<PendingRun> {
        let given: Vec<(String, String)> = match &stored.params {
            serde_json::Value::Object(map) => map
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), String::from),
                    )
                })
                .collect(),
            _ => Vec::new(),
        };
        // Checked again: the playbook may have changed since the run was accepted.
        let params = resolve_params(&prepared.description, &prepared.source.name, &given)?;
        let alert = match &stored.alert {
            Some(json) => {
                let mut alert = crate::incident::parse_alert(json.clone())?;
                if let Some(name) = json["name"].as_str() {
                    alert.name = name.to_string();
                }
                Some(alert)
            }
            None => None,
        };
        let trigger = match Trigger::parse(&stored.trigger) {
            Some(
                t @ (Trigger::Alert | Trigger::Webhook | Trigger::Schedule | Trigger::Console),
            ) => t,
            _ => anyhow::bail!("a {} run is not resumed by another host", stored.trigger),
        };
        let severity = Priority::parse(&stored.severity).unwrap_or(Priority::P3);
        Ok(PendingRun {
            run_id: stored.id.clone(),
            started_at: humantime::parse_rfc3339(&stored.started_at)
                .unwrap_or_else(|_| SystemTime::now()),
            alert_json: stored.alert.clone(),
            params: params.clone(),
            severity,
            request: RunRequest {
                params,
                alert,
                trigger,
                by: stored.by.clone(),
                dry_run: stored.dry_run,
                dedup_key: stored.dedup_key.clone(),
                severity: Some(severity),
            },
        })
    }

    /// Validates the parameters and records the run as running, held by this process: once
    /// this returns, the run exists in the store whatever happens to the host.
    pub async fn begin(&self, prepared: &Prepared, request: RunRequest) -> Result<PendingRun> {
        let pending = self.new_pending(prepared, request)?;
        if let Some(store) = &self.store {
            let row = self.queued_row(prepared, &pending);
            store
                .insert_running(row, crate::store::this_runner(), self.config.server.lease())
                .await
                .context("recording the run in the store")?;
        }
        Ok(pending)
    }

    /// Validates the parameters and gives the run its id; nothing is stored yet (the server
    /// stores it through its group-commit admission, see `queued_row`).
    pub fn new_pending(&self, prepared: &Prepared, request: RunRequest) -> Result<PendingRun> {
        let name = &prepared.source.name;
        let params = resolve_params(&prepared.description, name, &request.params)?;
        Ok(PendingRun {
            run_id: new_run_id(),
            started_at: SystemTime::now(),
            alert_json: request.alert.as_ref().map(crate::incident::alert_json),
            params,
            severity: request
                .severity
                .or_else(|| {
                    request
                        .alert
                        .as_ref()
                        .and_then(|a| Priority::from_labels(&a.labels))
                })
                .unwrap_or(Priority::P3),
            request,
        })
    }

    /// The store's row for a pending run.
    pub fn queued_row(&self, prepared: &Prepared, pending: &PendingRun) -> QueuedRun {
        let params: serde_json::Map<_, _> = pending
            .params
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        QueuedRun {
            id: pending.run_id.clone(),
            playbook: prepared.source.name.clone(),
            origin: prepared.source.origin.to_string(),
            trigger: pending.request.trigger.as_str().to_string(),
            by: pending.request.by.clone(),
            params: params.into(),
            alert: pending.alert_json.clone(),
            dry_run: pending.request.dry_run,
            dedup_key: pending.request.dedup_key.clone(),
            started_at: rfc3339(pending.started_at),
            severity: pending.severity.as_str().to_string(),
            node: None,
        }
    }

    /// The store's row for a run on a fleet node whose playbook this host does not have (or
    /// cannot load): the node checks the parameters against its own copy when it starts it.
    pub fn node_row(&self, playbook: &str, request: RunRequest, node: String) -> Result<QueuedRun> {
        crate::catalog::check_name(playbook).map_err(UsageError::from)?;
        let mut params = serde_json::Map::new();
        for (name, value) in request.params {
            if params.contains_key(&name) {
                return Err(UsageError::DuplicateParam(name).into());
            }
            params.insert(name, serde_json::Value::String(value));
        }
        let severity = request
            .severity
            .or_else(|| {
                request
                    .alert
                    .as_ref()
                    .and_then(|a| Priority::from_labels(&a.labels))
            })
            .unwrap_or(Priority::P3);
        Ok(QueuedRun {
            id: new_run_id(),
            playbook: playbook.to_string(),
            origin: format!("node {node}"),
            trigger: request.trigger.as_str().to_string(),
            by: request.by,
            params: params.into(),
            alert: request.alert.as_ref().map(crate::incident::alert_json),
            dry_run: request.dry_run,
            dedup_key: request.dedup_key,
            started_at: rfc3339(SystemTime::now()),
            severity: severity.as_str().to_string(),
            node: Some(node),
        })
    }

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
        tape: Option<crate::replay::Tape>,
    ) -> Result<(RunRecord, Option<crate::replay::Tape>)> {
        let replaying = matches!(tape, Some(crate::replay::Tape::Replaying(_)));
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
        if let Some(crate::replay::Tape::Replaying(replayer)) = &tape
            && let Some(ms) = replayer.wall_clock_ms
        {
            state = state.with_wall_clock(std::time::Duration::from_millis(ms));
        }
        if let Some(tape) = tape {
            state.set_tape(tape);
        }
        state.context = RunContext {
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
        let clock = state.clock.clone();
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
                store.data_mut().timeline.log("warn", format!("run {why}"));
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
                Ok(Ok(Err(error))) => failed(format!(
                    "the playbook returned {}: {}",
                    error.kind(),
                    error.detail()
                )),
                Ok(Err(trap)) => failed(trap_reason(&trap, &store.data().guest_output())),
            },
        };
        if let Some(by) = &stopped_by {
            crate::cancel::close_questions(self.approvals(), &run_id, by).await;
        }
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
        if let Some(crate::replay::Tape::Recording(calls)) = &tape {
            let fixture = crate::replay::Fixture::recorded(&record, calls.clone());
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
    clock: &crate::state::RunClock,
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

fn new_store(engine: &PlaybookEngine, state: RunState) -> Store<RunState> {
    let clock = state.clock.clone();
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

/// Every declared parameter: given, else default; unknown or missing-required ones refused.
pub fn resolve_params(
    description: &Description,
    playbook: &str,
    given: &[(String, String)],
) -> Result<Vec<(String, String)>, UsageError> {
    let known: Vec<String> = description.params.iter().map(|p| p.name.clone()).collect();
    let mut seen = std::collections::HashSet::new();
    for (name, _) in given {
        if !known.contains(name) {
            return Err(UsageError::UnknownParam {
                playbook: playbook.to_string(),
                name: name.clone(),
                known,
            });
        }
        if !seen.insert(name) {
            return Err(UsageError::DuplicateParam(name.clone()));
        }
    }
    for (name, value) in given {
        let spec = description.params.iter().find(|p| p.name == *name);
        let ty = spec.map_or(crate::params::ParamType::String, crate::params::type_of);
        if let Some(why) = crate::params::problem(&ty, value) {
            return Err(UsageError::BadValue {
                playbook: playbook.to_string(),
                name: name.clone(),
                ty,
                value: crate::text::echo(value).into_owned(),
                why,
            });
        }
    }
    let mut resolved = Vec::new();
    for spec in &description.params {
        let value = given
            .iter()
            .find(|(n, _)| *n == spec.name)
            .map(|(_, v)| v.clone())
            .or_else(|| spec.default.clone());
        match value {
            Some(value) => resolved.push((spec.name.clone(), value)),
            None if spec.required => {
                return Err(UsageError::MissingParam {
                    playbook: playbook.to_string(),
                    name: spec.name.clone(),
                });
            }
            None => {}
        }
    }
    Ok(resolved)
}

pub use crate::records::Trigger;
use crate::records::rfc3339;

/// Sortable and unique enough across processes: time, pid and a counter.
fn new_run_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "r{:x}{:05x}{:03x}",
        now.as_millis(),
        std::process::id() & 0xfffff,
        COUNTER.fetch_add(1, Ordering::Relaxed) & 0xfff
    )
}
