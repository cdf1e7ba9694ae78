
    -- Questions runs asked people (approval.ask): state pending until the first answer,
    -- the timeout, or the run's end. messages: where each channel posted it (JSON).
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
