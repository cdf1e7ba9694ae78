//! The PostgreSQL store's schema: versioned migrations recorded in `schema_version`, applied
//! under a transaction-scoped advisory lock so replicas starting at once migrate once, and a
//! database newer than this host refused rather than written with an old idea of its tables.

use anyhow::{Context, Result, bail};

use super::pg_error;
use super::sql::{Conn, begin, commit, execute, query};

/// Serializes migrations across every process on the database (an arbitrary constant).
const MIGRATION_LOCK: i64 = 0x7275_6e62_6f6f_6b01;

/// One entry per schema version (migrations/postgres/, the file's number is its version);
/// never edit a shipped one, append a new one.
///
/// Mirrors the SQLite schema (migrations/sqlite/) with what replicas need: who runs a run and
/// until when (`runner`, `lease_until`), admission keys for dedup and cooldown under a unique
/// constraint, concurrency slots as rows, replay ids, outbox leases on the database clock.
/// Timestamps people see stay RFC 3339 text, written exactly as the SQLite store writes them;
/// leases and windows are `timestamptz` compared with `now()`.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_init.sql"),
    include_str!("../../migrations/postgres/0002_fleet.sql"),
    include_str!("../../migrations/postgres/0003_schedules.sql"),
    include_str!("../../migrations/postgres/0004_runs_page.sql"),
    include_str!("../../migrations/postgres/0005_approvals.sql"),
    include_str!("../../migrations/postgres/0006_running_since.sql"),
    include_str!("../../migrations/postgres/0007_budgets.sql"),
    include_str!("../../migrations/postgres/0008_safety.sql"),
    include_str!("../../migrations/postgres/0009_figures.sql"),
    include_str!("../../migrations/postgres/0011_access.sql"),
    include_str!("../../migrations/postgres/0013_sessions.sql"),
];

/// Creates or updates the schema; refuses a database whose schema is newer than this host.
pub(super) async fn migrate(client: &mut Conn, describe: &str) -> Result<()> {
    let tx = begin(client).await?;
    execute(&tx, "SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .await
        .map_err(pg_error)?;
    let version: i32 = query(
        &tx,
        "SELECT coalesce(max(version), 0) FROM schema_version",
        &[],
    )
    .await?[0]
        .get(0);
    let known = MIGRATIONS.len();
    if version as usize > known {
        bail!(
            "the run store {describe} has schema version {version}, newer than this host knows \
             ({known}); use a newer host"
        );
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(sql)
            .await
            .map_err(pg_error)
            .with_context(|| format!("migrating the run store to version {}", i + 1))?;
    }
    if version as usize != known {
        tx.batch_execute("DELETE FROM schema_version")
            .await
            .map_err(pg_error)?;
        execute(
            &tx,
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&(known as i32)],
        )
        .await?;
    }
    commit(tx).await
}
