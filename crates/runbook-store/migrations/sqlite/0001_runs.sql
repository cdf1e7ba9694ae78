
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
