//! The PostgreSQL store's schema: versioned migrations recorded in `schema_version`, applied
//! under a transaction-scoped advisory lock so replicas starting at once migrate once, and a
//! database newer than this host refused rather than written with an old idea of its tables.

use anyhow::{Context, Result, bail};

use super::pg_error;

/// Serializes migrations across every process on the database (an arbitrary constant).
const MIGRATION_LOCK: i64 = 0x7275_6e62_6f6f_6b01;

/// One entry per schema version; never edit a shipped one, append a new one.
///
/// Mirrors the SQLite schema (store/mod.rs) with what replicas need: who runs a run and until
/// when (`runner`, `lease_until`), admission keys for dedup and cooldown under a unique
/// constraint, concurrency slots as rows, replay ids, outbox leases on the database clock.
/// Timestamps people see stay RFC 3339 text, written exactly as the SQLite store writes them;
/// leases and windows are `timestamptz` compared with `now()`.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
    -- The database clock as the text the records carry (RFC 3339, milliseconds, UTC).
    CREATE FUNCTION runbook_now_text() RETURNS text LANGUAGE sql STABLE AS
        $$ SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

    CREATE TABLE runs (
        id                TEXT PRIMARY KEY,
        playbook          TEXT NOT NULL,
        origin            TEXT NOT NULL,
        trigger           TEXT NOT NULL,
        params            TEXT NOT NULL,      -- JSON object
        alert             TEXT,               -- JSON, the alert that triggered the run
        dry_run           BOOLEAN NOT NULL,
        status            TEXT NOT NULL,      -- queued, running, resolved, …, failed, interrupted, lost
        summary           TEXT NOT NULL DEFAULT '',
        actions           TEXT NOT NULL DEFAULT '[]',
        reason            TEXT,
        dedup_key         TEXT,
        started_at        TEXT NOT NULL,
        ended_at          TEXT,
        timings           TEXT,
        grants            TEXT,
        severity          TEXT NOT NULL DEFAULT 'P3',
        runner            TEXT,               -- the process executing it
        lease_until       TIMESTAMPTZ,        -- its runner renews this; past it the run is lost
        lost_notified_at  TEXT,
        cooldown_key      TEXT
    );
    CREATE INDEX runs_started ON runs (started_at, id);
    CREATE INDEX runs_playbook ON runs (playbook, started_at, id);
    CREATE INDEX runs_queued ON runs (started_at, id) WHERE status = 'queued';
    CREATE INDEX runs_running ON runs (runner) WHERE status = 'running';
    CREATE INDEX runs_lease ON runs (lease_until) WHERE status = 'running';
    CREATE INDEX runs_lost_untold ON runs (started_at, id)
        WHERE status = 'lost' AND lost_notified_at IS NULL;

    CREATE TABLE events (
        run_id  TEXT NOT NULL REFERENCES runs (id),
        seq     INTEGER NOT NULL,
        event   TEXT NOT NULL,                -- JSON of timeline::Event
        PRIMARY KEY (run_id, seq)
    );
    CREATE TABLE artifacts (
        run_id        TEXT NOT NULL REFERENCES runs (id),
        seq           INTEGER NOT NULL,
        name          TEXT NOT NULL,
        content_type  TEXT NOT NULL,
        sha256        TEXT NOT NULL,
        content       BYTEA NOT NULL,
        PRIMARY KEY (run_id, seq)
    );

    CREATE TABLE alerts (
        id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        received_at  TEXT NOT NULL,
        source       TEXT NOT NULL,
        alertname    TEXT NOT NULL,
        status       TEXT NOT NULL,
        fingerprint  TEXT NOT NULL,
        starts_at    TEXT NOT NULL,
        labels       TEXT NOT NULL,           -- JSON object
        disposition  TEXT NOT NULL,
        playbook     TEXT,
        run_id       TEXT,
        detail       TEXT
    );

    -- Dedup ('dedup') and cooldown ('cooldown:<playbook>') keys: one row per key, so two
    -- replicas admitting the same alert at once meet on the primary key. A key is live until
    -- `until` unless the run it names was cut off (interrupted, lost).
    CREATE TABLE admission_keys (
        kind    TEXT NOT NULL,
        key     TEXT NOT NULL,
        run_id  TEXT NOT NULL,
        until   TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (kind, key)
    );

    -- Per-playbook concurrency: slot n of a playbook is free when no run holds it or the
    -- holder's lease ended. Rows are created on demand up to the playbook's limit.
    CREATE TABLE slots (
        playbook     TEXT NOT NULL,
        n            INTEGER NOT NULL,
        run_id       TEXT,
        lease_until  TIMESTAMPTZ,
        PRIMARY KEY (playbook, n)
    );
    CREATE INDEX slots_run ON slots (run_id) WHERE run_id IS NOT NULL;

    -- Standard Webhooks `webhook-id`s seen.
    CREATE TABLE replay_ids (
        id       TEXT PRIMARY KEY,
        seen_at  TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX replay_ids_seen ON replay_ids (seen_at);

    CREATE TABLE outbox (
        id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        run_id        TEXT,
        channel       TEXT NOT NULL,
        kind          TEXT NOT NULL,
        payload       TEXT NOT NULL,          -- JSON of notify::Notification
        dedup_key     TEXT,
        event_action  TEXT,                   -- trigger / resolve (PagerDuty)
        state         TEXT NOT NULL,          -- pending, delivered, failed
        attempts      BIGINT NOT NULL DEFAULT 0,
        parts_sent    BIGINT NOT NULL DEFAULT 0,
        next_attempt  TIMESTAMPTZ NOT NULL DEFAULT now(),
        lease_until   TIMESTAMPTZ,            -- a worker of some replica is delivering it
        last_error    TEXT,
        created_at    TEXT NOT NULL,
        delivered_at  TEXT,
        once_key      TEXT                    -- a message queued by two replicas goes out once
                                              -- (index_key: long ones as their digest)
    );
    CREATE UNIQUE INDEX outbox_once ON outbox (once_key) WHERE once_key IS NOT NULL;
    CREATE INDEX outbox_pending ON outbox (channel, id) WHERE state = 'pending';
    CREATE INDEX outbox_run ON outbox (run_id);
    -- Hash: a dedup key of any length (a B-tree entry is bounded).
    CREATE INDEX outbox_dedup ON outbox USING hash (dedup_key);
"#,
    r#"
    -- The fleet: a run for a node (NULL: a `host serve` replica runs it) is claimed only by
    -- that node's agent; one waiting longer than the wait since it was accepted (on the
    -- database clock: rows before this version get the migration's time) is undeliverable.
    ALTER TABLE runs ADD COLUMN node TEXT;
    ALTER TABLE runs ADD COLUMN accepted_at TIMESTAMPTZ NOT NULL DEFAULT now();
    CREATE INDEX runs_node_queued ON runs (node, started_at, id)
        WHERE status = 'queued' AND node IS NOT NULL;
    CREATE INDEX runs_undeliverable_untold ON runs (started_at, id)
        WHERE status = 'undeliverable' AND lost_notified_at IS NULL;

    -- Each node's agent as last heard from.
    CREATE TABLE nodes (
        name          TEXT PRIMARY KEY,
        session       TEXT NOT NULL,
        version       TEXT NOT NULL,
        connected_at  TEXT NOT NULL,          -- RFC 3339, when this session first connected
        last_seen     TIMESTAMPTZ NOT NULL
    );
"#,
    r#"
    -- One row per firing of a `[[schedule]]` (its name, the firing's time in unix ms): the
    -- primary key makes each firing run once across every replica and restart. run_id: the
    -- run it admitted; skipped_for: the schedule's run that was still going.
    CREATE TABLE schedule_firings (
        schedule     TEXT NOT NULL,
        at_ms        BIGINT NOT NULL,
        catch_up     BOOLEAN NOT NULL,
        run_id       TEXT,
        skipped_for  TEXT,
        recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (schedule, at_ms)
    );
"#,
    r#"
    -- The console's runs page (as SQLite's): keyset on (started_at, id) (runs_started), one
    -- index per filter (runs_playbook exists).
    CREATE INDEX runs_page_status ON runs (status, started_at, id);
    CREATE INDEX runs_page_severity ON runs (severity, started_at, id);
    CREATE INDEX runs_page_trigger ON runs (trigger, started_at, id);
    CREATE INDEX runs_page_node ON runs (node, started_at, id);
"#,
    r#"
    -- Questions runs asked people (approval.ask), as in SQLite.
    CREATE TABLE approvals (
        id            TEXT PRIMARY KEY,
        run_id        TEXT NOT NULL,
        playbook      TEXT NOT NULL,
        grp           TEXT NOT NULL,
        title         TEXT NOT NULL,
        body          TEXT NOT NULL,
        actions       TEXT NOT NULL,
        state         TEXT NOT NULL,
        asked_at      TEXT NOT NULL,
        expires_at    TEXT NOT NULL,
        answered_by   TEXT,
        answered_via  TEXT,
        answered_at   TEXT,
        reason        TEXT,
        messages      TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX approvals_run ON approvals (run_id);
    CREATE INDEX approvals_pending ON approvals (asked_at) WHERE state = 'pending';
"#,
    r#"
    -- When a run began running (claimed by a process or a node's agent): the time it waited
    -- is started_at to running_since, the time it ran running_since to ended_at.
    ALTER TABLE runs ADD COLUMN running_since TEXT;
    -- Who asked a running run to stop, as in SQLite.
    ALTER TABLE runs ADD COLUMN cancel_by TEXT;
    CREATE INDEX runs_cancel ON runs (runner) WHERE status = 'running' AND cancel_by IS NOT NULL;
    -- Who asked for a run, when a person did (the console's user; trigger `console`).
    ALTER TABLE runs ADD COLUMN requested_by TEXT;
    -- When a worker last took a message to deliver it (RFC 3339), for the console.
    ALTER TABLE outbox ADD COLUMN attempted_at TEXT;
    -- Secrets every process on the store shares (the console's CSRF key), created once.
    CREATE TABLE shared_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"#,
];

/// Creates or updates the schema; refuses a database whose schema is newer than this host.
pub(super) async fn migrate(client: &mut deadpool_postgres::Object, describe: &str) -> Result<()> {
    let tx = client.transaction().await.map_err(pg_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_error)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .await
        .map_err(pg_error)?;
    let version: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .await
        .map_err(pg_error)?
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
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&(known as i32)],
        )
        .await
        .map_err(pg_error)?;
    }
    tx.commit().await.map_err(pg_error)?;
    Ok(())
}
