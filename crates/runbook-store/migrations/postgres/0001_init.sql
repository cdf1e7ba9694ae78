
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
