//! The run store: every run, its timeline and its artifacts in one SQLite file (no server to
//! start). A run is written `queued` when accepted, `running` when it starts and completed when
//! it ends, so a host that dies leaves it `queued` or `running`; `host serve`'s start-up rescue
//! (server/rescue.rs) starts the first kind and marks the second `lost`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::run::RunRecord;
use crate::state::Artifact;
use crate::timeline::Event;

mod admission;
pub mod backend;
#[cfg(test)]
mod conformance;
mod outbox;
pub mod postgres;
mod recovery;
mod writer;
pub use admission::{Admit, Admitted, QueuedRun};
pub use outbox::{Claim, NewMessage, OutboxRow};
use recovery::CUT_OFF;
pub use recovery::{LOST_REASON, UnfinishedRun};

/// One entry per schema version; never edit a shipped one, append a new one.
const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE runs (
        id          TEXT PRIMARY KEY,
        playbook    TEXT NOT NULL,
        origin      TEXT NOT NULL,
        trigger     TEXT NOT NULL,
        params      TEXT NOT NULL,          -- JSON object
        alert       TEXT,                   -- JSON, the alert that triggered the run
        dry_run     INTEGER NOT NULL,
        status      TEXT NOT NULL,          -- queued, running, resolved, …, failed, interrupted, lost
        summary     TEXT NOT NULL DEFAULT '',
        actions     TEXT NOT NULL DEFAULT '[]',
        reason      TEXT,
        dedup_key   TEXT,
        started_at  TEXT NOT NULL,
        ended_at    TEXT,
        timings     TEXT,
        grants      TEXT
    );
    CREATE INDEX runs_started ON runs (started_at);
    CREATE INDEX runs_dedup ON runs (dedup_key);
    CREATE TABLE events (
        run_id  TEXT NOT NULL REFERENCES runs (id),
        seq     INTEGER NOT NULL,
        event   TEXT NOT NULL,              -- JSON of timeline::Event
        PRIMARY KEY (run_id, seq)
    );
    CREATE TABLE artifacts (
        run_id        TEXT NOT NULL REFERENCES runs (id),
        seq           INTEGER NOT NULL,
        name          TEXT NOT NULL,
        content_type  TEXT NOT NULL,
        sha256        TEXT NOT NULL,
        content       BLOB NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
"#,
    r#"
    CREATE TABLE alerts (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at  TEXT NOT NULL,
        source       TEXT NOT NULL,
        alertname    TEXT NOT NULL,
        status       TEXT NOT NULL,         -- firing, resolved
        fingerprint  TEXT NOT NULL,
        starts_at    TEXT NOT NULL,
        labels       TEXT NOT NULL,         -- JSON object
        disposition  TEXT NOT NULL,         -- started, deduplicated, cooldown, resolved, unrouted, rejected
        playbook     TEXT,
        run_id       TEXT,
        detail       TEXT
    );
    CREATE INDEX alerts_received ON alerts (received_at);
"#,
    r#"
    CREATE TABLE outbox (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id           TEXT,
        channel          TEXT NOT NULL,
        kind             TEXT NOT NULL,
        payload          TEXT NOT NULL,     -- JSON of notify::Notification
        dedup_key        TEXT,
        event_action     TEXT,              -- trigger / resolve (PagerDuty)
        state            TEXT NOT NULL,     -- pending, delivered, failed
        attempts         INTEGER NOT NULL DEFAULT 0,
        parts_sent       INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms  INTEGER NOT NULL,  -- unix milliseconds
        lease_until_ms   INTEGER,           -- a worker is delivering it until then
        last_error       TEXT,
        created_at       TEXT NOT NULL,
        delivered_at     TEXT
    );
    CREATE INDEX outbox_channel ON outbox (channel, state, id);
    CREATE INDEX outbox_run ON outbox (run_id);
"#,
    r#"
    ALTER TABLE runs ADD COLUMN severity TEXT NOT NULL DEFAULT 'P3';
"#,
    r#"
    -- The process executing the run (host name/pid/start time): a live one keeps its runs.
    ALTER TABLE runs ADD COLUMN runner TEXT;
    -- When ops were told that this run was lost (so a later restart does not tell again).
    ALTER TABLE runs ADD COLUMN lost_notified_at TEXT;
"#,
    r#"
    -- A route's cooldown key (the alert's fingerprint): a run with the same playbook and key
    -- within the route's cooldown skips the alert. In the store, so the check is part of the
    -- admission's transaction and no per-alert state lives in the server's memory.
    ALTER TABLE runs ADD COLUMN cooldown_key TEXT;
    CREATE INDEX runs_cooldown ON runs (playbook, cooldown_key, started_at)
        WHERE cooldown_key IS NOT NULL;
"#,
];

/// One alert as the webhook received it, and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct AlertRecord {
    pub received_at: String,
    pub source: String,
    pub alertname: String,
    pub status: String,
    pub fingerprint: String,
    pub starts_at: String,
    pub labels: serde_json::Value,
    pub disposition: String,
    pub playbook: Option<String>,
    pub run_id: Option<String>,
    pub detail: Option<String>,
}

pub struct Store {
    /// Shared with the group-commit writer thread (writer.rs), which takes it per batch.
    conn: Arc<Mutex<Connection>>,
    writer: OnceLock<writer::Writer>,
    path: PathBuf,
}

/// What is known when a run starts.
pub struct NewRun<'a> {
    pub id: &'a str,
    pub playbook: &'a str,
    pub origin: &'a str,
    pub trigger: &'a str,
    pub params: &'a serde_json::Value,
    pub alert: Option<&'a serde_json::Value>,
    pub dry_run: bool,
    pub dedup_key: Option<&'a str>,
    pub started_at: &'a str,
    pub severity: &'a str,
}

#[derive(Debug, Serialize)]
pub struct RunSummary {
    pub id: String,
    pub playbook: String,
    pub trigger: String,
    pub status: String,
    pub summary: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub dry_run: bool,
    pub severity: String,
}

#[derive(Debug, Serialize)]
pub struct StoredRun {
    #[serde(flatten)]
    pub run: RunSummary,
    pub origin: String,
    pub params: serde_json::Value,
    pub alert: Option<serde_json::Value>,
    pub actions: serde_json::Value,
    pub reason: Option<String>,
    pub dedup_key: Option<String>,
    pub timings: Option<serde_json::Value>,
    pub grants: Option<serde_json::Value>,
    pub timeline: Vec<Event>,
    pub artifacts: Vec<Artifact>,
    /// The run's notifications as the outbox has them now.
    pub deliveries: Vec<OutboxRow>,
}

impl Store {
    /// Opens (creating and migrating) the store.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the run store's directory {}", dir.display()))?;
        }
        let conn = Connection::open(path)
            .with_context(|| format!("opening the run store {}", path.display()))?;
        // First, so that a process opening the store while another migrates it waits.
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.set_prepared_statement_cache_capacity(64);
        let store = Store {
            conn: Arc::new(Mutex::new(conn)),
            writer: OnceLock::new(),
            path: path.to_path_buf(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// A store that lives as long as the process: delivery still goes through the outbox when
    /// the operator turned the run store off.
    pub fn open_in_memory() -> Result<Store> {
        let conn = Connection::open_in_memory()?;
        let store = Store {
            conn: Arc::new(Mutex::new(conn)),
            writer: OnceLock::new(),
            path: PathBuf::from(":memory:"),
        };
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
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

    pub fn insert_queued(&self, run: &NewRun<'_>) -> Result<()> {
        insert_run(&self.conn.lock().unwrap(), run, None)
    }

    /// The run already started for this dedup key since `since` (RFC 3339), if any. A run cut
    /// off by a host stopping (interrupted, lost) does not count: the alert must run again.
    pub fn find_dedup(&self, key: &str, since: &str) -> Result<Option<String>> {
        dedup_run(&self.conn.lock().unwrap(), key, since)
    }

    pub fn record_alert(&self, alert: &AlertRecord) -> Result<()> {
        insert_alert(&self.conn.lock().unwrap(), alert)
    }

    pub fn alerts(&self, limit: usize) -> Result<Vec<AlertRecord>> {
        let conn = self.conn.lock().unwrap();
        let mut stmt = conn.prepare(
            "SELECT received_at, source, alertname, status, fingerprint, starts_at, labels,
                    disposition, playbook, run_id, detail
             FROM alerts ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![limit as i64], |r| {
            let labels: String = r.get(6)?;
            Ok(AlertRecord {
                received_at: r.get(0)?,
                source: r.get(1)?,
                alertname: r.get(2)?,
                status: r.get(3)?,
                fingerprint: r.get(4)?,
                starts_at: r.get(5)?,
                labels: serde_json::from_str(&labels).unwrap_or_default(),
                disposition: r.get(7)?,
                playbook: r.get(8)?,
                run_id: r.get(9)?,
                detail: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn mark_running(&self, id: &str) -> Result<()> {
        set_running(&self.conn.lock().unwrap(), id)
    }

    /// Writes the outcome, timeline and artifacts in one transaction.
    pub fn finish(&self, record: &RunRecord) -> Result<()> {
        let mut conn = self.conn.lock().unwrap();
        let tx = conn.transaction()?;
        write_outcome(&tx, record)?;
        tx.commit()?;
        Ok(())
    }

    pub fn list(&self, limit: usize, playbook: Option<&str>) -> Result<Vec<RunSummary>> {
        let conn = self.conn.lock().unwrap();
        let mut stmt = conn.prepare(
            "SELECT id, playbook, trigger, status, summary, started_at, ended_at, dry_run, severity
             FROM runs WHERE ?1 IS NULL OR playbook = ?1
             ORDER BY started_at DESC, id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![playbook, limit as i64], summary_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn get(&self, id: &str) -> Result<Option<StoredRun>> {
        let conn = self.conn.lock().unwrap();
        let run = conn
            .query_row(
                "SELECT id, playbook, trigger, status, summary, started_at, ended_at, dry_run,
                        severity, origin, params, alert, actions, reason, dedup_key, timings,
                        grants
                 FROM runs WHERE id = ?1",
                params![id],
                |r| {
                    let json = |i: usize| -> rusqlite::Result<Option<serde_json::Value>> {
                        let text: Option<String> = r.get(i)?;
                        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
                    };
                    Ok(StoredRun {
                        run: summary_row(r)?,
                        origin: r.get(9)?,
                        params: json(10)?.unwrap_or_default(),
                        alert: json(11)?,
                        actions: json(12)?.unwrap_or_default(),
                        reason: r.get(13)?,
                        dedup_key: r.get(14)?,
                        timings: json(15)?,
                        grants: json(16)?,
                        timeline: Vec::new(),
                        artifacts: Vec::new(),
                        deliveries: Vec::new(),
                    })
                },
            )
            .optional()?;
        let Some(mut run) = run else { return Ok(None) };
        let mut stmt = conn.prepare("SELECT event FROM events WHERE run_id = ?1 ORDER BY seq")?;
        for text in stmt.query_map(params![id], |r| r.get::<_, String>(0))? {
            run.timeline.push(serde_json::from_str(&text?)?);
        }
        let mut stmt = conn.prepare(
            "SELECT name, content_type, sha256, content FROM artifacts WHERE run_id = ?1 ORDER BY seq",
        )?;
        let artifacts = stmt.query_map(params![id], |r| {
            let content: Vec<u8> = r.get(3)?;
            Ok(Artifact {
                name: r.get(0)?,
                content_type: r.get(1)?,
                sha256: r.get(2)?,
                bytes: content.len(),
                text: String::from_utf8_lossy(&content).into_owned(),
            })
        })?;
        run.artifacts = artifacts.collect::<rusqlite::Result<_>>()?;
        run.deliveries = outbox::rows_for_run(&conn, id)?;
        Ok(Some(run))
    }
}

fn dedup_run(conn: &Connection, key: &str, since: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT id FROM runs WHERE dedup_key = ?1 AND started_at >= ?2
               AND status NOT IN {CUT_OFF}
             ORDER BY started_at DESC LIMIT 1"
        ))?
        .query_row(params![key, since], |r| r.get(0))
        .optional()?)
}

fn insert_run(conn: &Connection, run: &NewRun<'_>, cooldown_key: Option<&str>) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO runs (id, playbook, origin, trigger, params, alert, dry_run, status,
                           dedup_key, started_at, severity, cooldown_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        run.id,
        run.playbook,
        run.origin,
        run.trigger,
        run.params.to_string(),
        run.alert.map(|a| a.to_string()),
        run.dry_run,
        run.dedup_key,
        run.started_at,
        run.severity,
        cooldown_key,
    ])?;
    Ok(())
}

fn insert_alert(conn: &Connection, alert: &AlertRecord) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO alerts (received_at, source, alertname, status, fingerprint, starts_at,
                             labels, disposition, playbook, run_id, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        alert.received_at,
        alert.source,
        alert.alertname,
        alert.status,
        alert.fingerprint,
        alert.starts_at,
        alert.labels.to_string(),
        alert.disposition,
        alert.playbook,
        alert.run_id,
        alert.detail,
    ])?;
    Ok(())
}

fn set_running(conn: &Connection, id: &str) -> Result<()> {
    conn.prepare_cached("UPDATE runs SET status = 'running', runner = ?2 WHERE id = ?1")?
        .execute(params![id, recovery::this_runner()])?;
    Ok(())
}

/// The run's outcome, timeline and artifacts, inside the caller's transaction.
fn write_outcome(conn: &Connection, record: &RunRecord) -> Result<()> {
    let updated = conn
        .prepare_cached(
            "UPDATE runs SET status = ?2, summary = ?3, actions = ?4, reason = ?5, ended_at = ?6,
                 timings = ?7, grants = ?8
             WHERE id = ?1",
        )?
        .execute(params![
            record.run_id,
            record.status,
            record.summary,
            serde_json::to_string(&record.actions)?,
            record.reason,
            record.ended_at,
            serde_json::to_string(&record.timings)?,
            serde_json::to_string(&record.grants)?,
        ])?;
    anyhow::ensure!(
        updated == 1,
        "run {} was never recorded as started",
        record.run_id
    );
    let mut events =
        conn.prepare_cached("INSERT INTO events (run_id, seq, event) VALUES (?1, ?2, ?3)")?;
    for (seq, event) in record.timeline.iter().enumerate() {
        events.execute(params![record.run_id, seq, serde_json::to_string(event)?])?;
    }
    let mut artifacts = conn.prepare_cached(
        "INSERT INTO artifacts (run_id, seq, name, content_type, sha256, content)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (seq, artifact) in record.artifacts.iter().enumerate() {
        artifacts.execute(params![
            record.run_id,
            seq,
            artifact.name,
            artifact.content_type,
            artifact.sha256,
            artifact.text.as_bytes()
        ])?;
    }
    Ok(())
}

fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunSummary> {
    Ok(RunSummary {
        id: r.get(0)?,
        playbook: r.get(1)?,
        trigger: r.get(2)?,
        status: r.get(3)?,
        summary: r.get(4)?,
        started_at: r.get(5)?,
        ended_at: r.get(6)?,
        dry_run: r.get(7)?,
        severity: r.get(8)?,
    })
}

/// `$XDG_STATE_HOME/runbook-host/runs.sqlite3` (or `~/.local/state/…`).
pub fn default_store_path() -> Option<PathBuf> {
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .map(|d| d.join("runbook-host").join("runs.sqlite3"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_store_opened_by_several_processes_at_once_is_migrated_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.sqlite3");
        let opened: Vec<_> = std::thread::scope(|s| {
            let opens: Vec<_> = (0..8)
                .map(|_| s.spawn(|| Store::open(&path).map(drop)))
                .collect();
            opens.into_iter().map(|o| o.join().unwrap()).collect()
        });
        for result in opened {
            result.unwrap();
        }
    }

    #[test]
    fn schema_version_newer_than_the_host_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.sqlite3");
        Store::open(&path).unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = Store::open(&path).err().unwrap().to_string();
        assert!(err.contains("schema version 99"), "{err}");
    }
}
