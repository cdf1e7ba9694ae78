//! Runs one playbook: load (compile cache), describe, validate parameters, instantiate with the
//! playbook's grants and limits, call `run`, and turn whatever happened — an outcome, an error,
//! a trap, a limit — into a `RunRecord`. A playbook failing is a result, never a host crash.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{Context, Result};
use futures::FutureExt;
use serde::Serialize;

use crate::bindings::{Alert, Description, VersionedPre};
use crate::caps::docker::DockerEngine;
use crate::caps::fs_read::Protected;
use crate::caps::http::HttpClient;
use crate::catalog::{Catalog, CatalogEntry, Origin, PluginSource};
use crate::config::Config;
use crate::description;
use crate::engine::{Allocation, LoadReport, PlaybookEngine};
use crate::notify::{ConsoleStream, Notifier};
use crate::panics::panic_message;
use crate::policy::{Grants, Limits};
use crate::severity::Priority;
use crate::state::{Artifact, LimitExceeded, RunState, Services};
use crate::store::{RunOutcome, Store as RunStore};
use crate::timeline::{Event, Sink, Timeline};

mod ending;
mod execute;
mod fixture;
mod inputs;
mod pending;
mod pinned;
mod prepare;
// The rails' cost at a real docker call: above both the rails and the capabilities.
#[cfg(test)]
mod safety_bench;

pub use ending::{MAX_ACTION_BYTES, MAX_ACTIONS, MAX_SUMMARY_BYTES, guard_run};
pub use inputs::{UsageError, resolve_params};
pub use pinned::ArtifactFallback;

/// A playbook loaded and linked, with what it says about itself.
pub struct Prepared {
    /// Name and origin; `wasm` is empty for a file (what runs is the compiled form, and a
    /// server need not keep a 17 MB Python component in memory per playbook).
    pub source: PluginSource,
    pub pre: VersionedPre<RunState>,
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
    /// Action budgets and the freeze switch (`crate::safety`), built on first use.
    safety: std::sync::OnceLock<Arc<crate::safety::Safety>>,
    /// `host agent`: where the server decides a node's mutating calls.
    safety_server: std::sync::OnceLock<(Arc<dyn crate::safety::remote::AskServer>, String)>,
    /// One resolution of a registry tag (and one host.lock write) at a time.
    pinning: tokio::sync::Mutex<()>,
    /// host.lock as this process uses it: read once, replaced by a SIGHUP (`reload_pins`),
    /// so a lock changed on disk changes what runs only when the operator says so.
    pins: std::sync::RwLock<Option<Arc<crate::oci::lock::LockFile>>>,
    /// `host agent`: the server hands over artifacts the registry does not.
    artifact_fallback: std::sync::OnceLock<Arc<dyn ArtifactFallback>>,
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
            safety: std::sync::OnceLock::new(),
            safety_server: std::sync::OnceLock::new(),
            pinning: tokio::sync::Mutex::new(()),
            pins: std::sync::RwLock::new(None),
            artifact_fallback: std::sync::OnceLock::new(),
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

    /// `host agent`: the server decides this node's mutating calls (after its own budgets).
    /// Set before the first run.
    /// `node` is the node's name (`per = "node"` counts under it).
    pub fn use_safety_server(
        &self,
        server: Arc<dyn crate::safety::remote::AskServer>,
        node: String,
    ) {
        let _ = self.safety_server.set((server, node));
    }

    /// The budgets in force and where they are decided: the run store; on a fleet node its
    /// own outbox store and then the server; with the store turned off, this process only.
    pub fn safety(&self) -> Arc<crate::safety::Safety> {
        use crate::safety::{Decider, Safety};
        self.safety
            .get_or_init(|| {
                // Checked when the config was read; a config built in code gets the default.
                let budgets = crate::safety::effective(&self.config.budgets)
                    .unwrap_or_else(|_| vec![crate::safety::default_budget()]);
                let mut node = crate::safety::this_node();
                let decider = match (&self.store, self.outbox.get(), self.safety_server.get()) {
                    (Some(store), _, _) => Decider::Store(store.clone()),
                    (None, Some(local), Some((server, name))) => {
                        node = name.clone();
                        Decider::Node {
                            local: local.clone(),
                            server: server.clone(),
                        }
                    }
                    (None, Some(local), None) => Decider::Store(local.clone()),
                    (None, None, _) => Decider::Store(self.notifier().store().clone()),
                };
                Arc::new(Safety::new(budgets, node, decider))
            })
            .clone()
    }

    fn services(&self) -> Services {
        Services {
            notifier: self.notifier(),
            docker: self.docker.clone(),
            http: self.http.clone(),
            protected: self.protected(),
            approvals: self.approvals(),
            safety: Some(self.safety()),
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
                    let approvals =
                        crate::approval::Approvals::new(notifier.store().clone(), notifier, groups);
                    approvals.audit_to(self.with_policy(|config| config.audit.clone()));
                    approvals
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
            approvals.audit_to(config.audit.clone());
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

    /// `run`, recording or replaying its capability calls (`crate::tape`). A recorded run
    /// keeps its fixture as the artifact `tape::FIXTURE_ARTIFACT`.
    pub async fn run_taped(
        &self,
        prepared: &Prepared,
        request: RunRequest,
        sink: Option<Sink>,
        tape: Option<crate::tape::Tape>,
    ) -> Result<(RunRecord, Option<crate::tape::Tape>)> {
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
}

pub use crate::records::Trigger;
