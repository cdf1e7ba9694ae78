//! The SQLite backend: everything in one file, no server to start. The server's hot writes
//! (admissions, claims, outcomes) go through one group-commit writer thread (writer.rs); reads
//! and the rest run on blocking threads, never on the async runtime's.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::Connection;
use tokio::sync::Notify;

use crate::backend::{SharedState, StoreInfo};

mod access;
mod approvals;
mod budgets;
mod cancel;
mod figures;
mod fleet;
mod outbox;
mod queue;
mod reads;
mod runs;
mod safety;
mod schedules;
mod writer;

/// One entry per schema version (migrations/sqlite/, the file's number is its version);
/// never edit a shipped one, append a new one.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_runs.sql"),
    include_str!("../../migrations/sqlite/0002_alerts.sql"),
    include_str!("../../migrations/sqlite/0003_outbox.sql"),
    include_str!("../../migrations/sqlite/0004_severity.sql"),
    include_str!("../../migrations/sqlite/0005_runners.sql"),
    include_str!("../../migrations/sqlite/0006_cooldown.sql"),
    include_str!("../../migrations/sqlite/0007_leases.sql"),
    include_str!("../../migrations/sqlite/0008_fleet.sql"),
    include_str!("../../migrations/sqlite/0009_schedules.sql"),
    include_str!("../../migrations/sqlite/0010_runs_page.sql"),
    include_str!("../../migrations/sqlite/0011_approvals.sql"),
    include_str!("../../migrations/sqlite/0012_running_since.sql"),
    include_str!("../../migrations/sqlite/0013_budgets.sql"),
    include_str!("../../migrations/sqlite/0014_safety.sql"),
    include_str!("../../migrations/sqlite/0015_figures.sql"),
    include_str!("../../migrations/sqlite/0017_access.sql"),
    include_str!("../../migrations/sqlite/0019_sessions.sql"),
];

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// `op` again while another process holds the lock it needs, for up to 10 s (the busy
/// timeout every other statement gets).
fn retry_busy<T>(mut op: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut pause = Duration::from_millis(5);
    loop {
        match op() {
            Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

pub struct Sqlite {
    /// Shared with the group-commit writer thread (writer.rs), which takes it per batch.
    conn: Arc<Mutex<Connection>>,
    writer: OnceLock<writer::Writer>,
    path: PathBuf,
    /// Woken when this process queued a run or freed a slot (one process per file).
    queued: Notify,
    /// Action budgets' own connection (budgets.rs), opened on first use.
    budget_conn: OnceLock<Option<Arc<Mutex<Connection>>>>,
}

impl Sqlite {
    /// Every claimer waiting now (this process's claim loop and the agents' held polls), and
    /// the next one to wait if none is: one woken claimer is not enough when several wait.
    fn wake_claimers(&self) {
        self.queued.notify_waiters();
        self.queued.notify_one();
    }

    /// Opens (creating and migrating) the store.
    pub fn open(path: &Path) -> Result<Sqlite> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the run store's directory {}", dir.display()))?;
        }
        let conn = Connection::open(path)
            .with_context(|| format!("opening the run store {}", path.display()))?;
        // First, so that a process opening the store while another migrates it waits.
        conn.busy_timeout(Duration::from_secs(10))?;
        // Switching to WAL may answer "database is locked" without calling the busy handler: a
        // `host run` and a `host approvals` opening a store at once must both get it (a run
        // whose store failed to open goes on without it). Retried like a busy write.
        retry_busy(|| conn.pragma_update(None, "journal_mode", "WAL"))?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Self::with(conn, path.to_path_buf())
    }

    pub fn open_in_memory() -> Result<Sqlite> {
        Self::with(Connection::open_in_memory()?, PathBuf::from(":memory:"))
    }

    fn with(conn: Connection, path: PathBuf) -> Result<Sqlite> {
        conn.set_prepared_statement_cache_capacity(64);
        let store = Sqlite {
            conn: Arc::new(Mutex::new(conn)),
            writer: OnceLock::new(),
            path,
            queued: Notify::new(),
            budget_conn: OnceLock::new(),
        };
        retry_busy(|| match store.migrate() {
            Err(e) => match e.downcast::<rusqlite::Error>() {
                Ok(sqlite) => Err(sqlite),
                Err(other) => Ok(Err(other)),
            },
            Ok(()) => Ok(Ok(())),
        })??;
        // Statistics for the planner (bounded work: a sample per index), so the runs page with
        // two filters picks the index of the rarer one. A no-op when they are fresh.
        store
            .conn
            .lock()
            .unwrap()
            .execute_batch("PRAGMA analysis_limit = 1000; PRAGMA optimize = 0x10002;")
            // A read upgraded to a write while another process writes is refused at once
            // (no busy handler): statistics can wait for the next open.
            .or_else(|e| if is_busy(&e) { Ok(()) } else { Err(e) })?;
        Ok(store)
    }

    fn migrate(&self) -> Result<()> {
        let mut conn = self.conn.lock().unwrap();
        // One write transaction, version read inside it: two processes opening a new store at
        // once (`host serve` and a `host run`) must not both migrate it.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: usize = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > MIGRATIONS.len() {
            anyhow::bail!(
                "the run store {} has schema version {version}, newer than this host knows ({}); \
                 use a newer host",
                self.path.display(),
                MIGRATIONS.len()
            );
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            tx.execute_batch(sql)
                .with_context(|| format!("migrating the run store to version {}", i + 1))?;
            tx.pragma_update(None, "user_version", i + 1)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn writer(&self) -> &writer::Writer {
        self.writer.get_or_init(|| {
            writer::Writer::start(self.conn.clone())
                .expect("starting the run store's writer thread")
        })
    }

    /// A statement on a blocking thread: the connection may be busy with the writer's commit.
    async fn blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || op(&mut conn.lock().unwrap_or_else(|p| p.into_inner())))
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("run store: {e}")))
    }
}

fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

#[async_trait::async_trait]
impl StoreInfo for Sqlite {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn local_file(&self) -> Option<PathBuf> {
        (self.path != Path::new(":memory:")).then(|| self.path.clone())
    }

    async fn ping(&self) -> Result<Duration> {
        let started = std::time::Instant::now();
        self.blocking(|conn| Ok(conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .await?;
        Ok(started.elapsed())
    }
}

#[async_trait::async_trait]
impl SharedState for Sqlite {
    async fn shared_secret(&self, name: &str, candidate: &str) -> Result<String> {
        let (name, candidate) = (name.to_string(), candidate.to_string());
        self.blocking(move |conn| {
            conn.execute(
                "INSERT INTO shared_secrets (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO NOTHING",
                rusqlite::params![name, candidate],
            )?;
            Ok(conn.query_row(
                "SELECT value FROM shared_secrets WHERE name = ?1",
                [&name],
                |row| row.get(0),
            )?)
        })
        .await
    }

    async fn first_delivery(&self, id: &str, window: Duration) -> Result<bool> {
        let id = id.to_string();
        self.writer()
            .write(move |tx| runs::first_delivery(tx, &id, millis(window)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SlotLimits;
    use crate::backend::{FleetStore, RunQueue};

    #[test]
    fn a_new_store_opened_by_several_processes_at_once_is_migrated_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.sqlite3");
        let opened: Vec<_> = std::thread::scope(|s| {
            let opens: Vec<_> = (0..8)
                .map(|_| s.spawn(|| Sqlite::open(&path).map(drop)))
                .collect();
            opens.into_iter().map(|o| o.join().unwrap()).collect()
        });
        for result in opened {
            result.unwrap();
        }
    }

    /// A store written before the fleet (version 7) opens: its queued run is a server's.
    #[tokio::test]
    async fn a_store_from_before_the_fleet_keeps_its_runs_as_server_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.sqlite3");
        let conn = Connection::open(&path).unwrap();
        for sql in &MIGRATIONS[..7] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 7).unwrap();
        conn.execute(
            "INSERT INTO runs (id, playbook, origin, trigger, params, dry_run, status, started_at,
                               accepted_ms)
             VALUES ('old', 'pb', 'plugin-dir', 'alert', '{}', 0, 'queued',
                     '2026-11-25T10:00:00.000Z', 0)",
            [],
        )
        .unwrap();
        drop(conn);
        let store = Sqlite::open(&path).unwrap();
        let limits = SlotLimits {
            default: 1,
            per_playbook: Default::default(),
        };
        let lease = Duration::from_secs(60);
        assert!(store.expire_undelivered(Duration::ZERO).await.unwrap() == 0);
        let claimed = store.claim_queued("me", 1, &limits, lease).await.unwrap();
        assert_eq!((claimed[0].id.as_str(), &claimed[0].node), ("old", &None));
    }

    #[test]
    fn schema_version_newer_than_the_host_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.sqlite3");
        Sqlite::open(&path).unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = Sqlite::open(&path).err().unwrap().to_string();
        assert!(err.contains("schema version 99"), "{err}");
    }
}

/// The store contract (store/conformance/) on SQLite: a file in a temp dir; a second instance
/// is a second connection to the same file (another process on it).
#[cfg(test)]
mod conformance {
    use std::sync::Arc;

    use super::Sqlite;
    use crate::backend::Backend;
    use crate::conformance::{Subject, conformance_tests};

    async fn subject() -> Option<Subject> {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let path = dir.path().join("runs.sqlite3");
        let backend: Arc<dyn Backend> = Arc::new(Sqlite::open(&path).unwrap());
        let (again, versioned) = (path.clone(), path.clone());
        Some(Subject {
            backend,
            open_again: Arc::new(move || {
                let path = again.clone();
                Box::pin(async move { Ok(Arc::new(Sqlite::open(&path)?) as Arc<dyn Backend>) })
            }),
            set_schema_version: Arc::new(move |version| {
                let path = versioned.clone();
                Box::pin(async move {
                    rusqlite::Connection::open(&path)?.pragma_update(
                        None,
                        "user_version",
                        version,
                    )?;
                    Ok(())
                })
            }),
            cleanup: Some(Arc::new(move || {
                let dir = dir.clone();
                Box::pin(async move { drop(dir) })
            })),
        })
    }

    conformance_tests!(subject());
}
