//! The run store: every run, its timeline and artifacts, alerts, the notification outbox, and
//! what replicas share (dedup and cooldown keys, concurrency slots, run leases, replay ids).
//! One interface (`backend::Backend`, the union of role traits in backend/: `RunQueue`,
//! `Leases`, `FleetStore`, `Outbox`, …), two backends: SQLite (`sqlite/`, the embedded default:
//! a file, no server) and PostgreSQL (`postgres/`, several `host serve` replicas).
//!
//! A run is written `queued` when accepted and `running` when a process claims it under a
//! lease, which that process renews while it runs; a process that dies stops renewing, and
//! any other marks its runs `lost` once the lease ends (runbook-server's rescue.rs). Queued runs
//! wait in the store, not in a process, so a crash loses none.
//!
//! Imports only `runbook-core` (the records it stores): never the runtime, the server or the CLI.

// The core modules under the names the store's files use.
pub(crate) use runbook_core::{access, figures, panics, records, redact, safety, text, timeline};

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;

pub mod backend;
mod clean;
#[cfg(test)]
mod conformance;
pub mod postgres;
mod sqlite;

pub use crate::records::{
    Admit, Admitted, AlertRecord, ApprovalRecord, Artifact, Claim, Decision, Disposition, Fired,
    Firing, FiringRecord, Gate, LOST_REASON, NewMessage, NodeRecord, OutboxRow, QueuedRun,
    RunOutcome, RunSummary, StoredRun, UnfinishedRun,
};
pub use crate::safety::{BreakerCheck, BreakerRule, BreakerState, NewWindow, WindowRecord};
pub use backend::{
    AccessStore, Alerts, Appended, ApprovalStore, Backend, Breakers, BudgetAnswer, BudgetTake,
    BudgetUse, Budgets, Cancels, EventsPage, FigureStore, FleetStore, Freeze, Leases, LinkSecurity,
    Maintenance, Outbox, QueueDepths, RunFilter, RunQueue, ScheduleStore, SharedState, SlotLimits,
    SslMode, StoreInfo, Timelines,
};
pub use sqlite::Sqlite;

/// The run store, whichever backend.
pub type Store = dyn Backend;

/// Where the store is: a SQLite file, or a PostgreSQL URL (`postgres://…`, `postgresql://…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Location {
    pub fn parse(text: &str) -> Location {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Location::Postgres(text.to_string())
        } else {
            Location::Sqlite(PathBuf::from(text))
        }
    }

    /// For messages: a path, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(path) => path.display().to_string(),
            Location::Postgres(url) => crate::redact::url(url),
        }
    }
}

/// Opens (creating and migrating) the store; `connections` sizes a PostgreSQL pool
/// (default [`postgres::DEFAULT_POOL_SIZE`]).
pub async fn open(location: &Location, connections: Option<usize>) -> Result<Arc<Store>> {
    open_tuned(location, connections, None).await
}

/// [`open`], with at most `admission_batch` admissions per PostgreSQL transaction (default
/// [`postgres::DEFAULT_ADMISSION_BATCH`]; SQLite group-commits on its own).
pub async fn open_tuned(
    location: &Location,
    connections: Option<usize>,
    admission_batch: Option<usize>,
) -> Result<Arc<Store>> {
    match location {
        Location::Sqlite(path) => {
            let path = path.clone();
            let store = tokio::task::spawn_blocking(move || Sqlite::open(&path)).await??;
            Ok(Arc::new(store))
        }
        Location::Postgres(url) => {
            let size = connections.unwrap_or(postgres::DEFAULT_POOL_SIZE);
            let batch = admission_batch.unwrap_or(postgres::DEFAULT_ADMISSION_BATCH);
            if batch == 0 {
                anyhow::bail!("admission-batch must be at least 1 (it is 0)");
            }
            Ok(Arc::new(
                postgres::Postgres::connect_tuned(url, size, batch).await?,
            ))
        }
    }
}

/// A store that lives as long as the process: delivery still goes through the outbox when
/// the operator turned the run store off.
pub fn open_in_memory() -> Result<Arc<Store>> {
    Ok(Arc::new(Sqlite::open_in_memory()?))
}

/// `$XDG_STATE_HOME/runbook-host/runs.sqlite3` (or `~/.local/state/…`).
pub fn default_store_path() -> Option<PathBuf> {
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .map(|d| d.join("runbook-host").join("runs.sqlite3"))
}

/// This process as a holder of run leases: host name, pid and the process's start time (a pid
/// reused after a restart, pid 1 in a container say, is another runner).
pub fn this_runner() -> &'static str {
    static RUNNER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    RUNNER.get_or_init(|| {
        let pid = std::process::id().to_string();
        let started = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let (_, after_name) = stat.rsplit_once(')')?;
                after_name.split_whitespace().nth(19).map(String::from)
            })
            .unwrap_or_default();
        let host = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        format!("{host}/{pid}/{started}")
    })
}

/// Renews this process's run leases every sixth of `lease` until aborted: a process that
/// stops (or loses the store for a whole lease) loses its runs to `lost`.
pub fn keep_leases(store: Arc<Store>, lease: std::time::Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(lease / 6);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if let Err(e) = store.renew_leases(this_runner(), lease).await {
                tracing::warn!("renewing run leases in the store: {e:#}");
            }
        }
    })
}

/// Statuses of runs that ended without a result: they never count for dedup or cooldown, so
/// the alert's next delivery starts a new run.
pub const CUT_OFF: &str = "('interrupted', 'lost', 'undeliverable')";

/// Runs ops are told about once (`take_lost_unnotified`, `take_undeliverable_unnotified`):
/// a fixed set, spelled into statements so each status's partial index serves its query.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Untold {
    Lost,
    Undeliverable,
}

impl Untold {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Untold::Lost => "lost",
            Untold::Undeliverable => "undeliverable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_select_postgres_and_anything_else_is_a_sqlite_file() {
        assert_eq!(
            Location::parse("postgres://u:secret@db/runs").describe(),
            "postgres://u:***@db/runs"
        );
        assert!(matches!(
            Location::parse("postgresql://db/x"),
            Location::Postgres(_)
        ));
        assert_eq!(
            Location::parse("/var/lib/runs.sqlite3"),
            Location::Sqlite("/var/lib/runs.sqlite3".into())
        );
    }
}
