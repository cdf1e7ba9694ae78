
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
