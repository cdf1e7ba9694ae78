
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
