    -- Circuit breakers per playbook, as in SQLite; times are unix ms on the database clock.
    CREATE TABLE breakers (
        playbook         TEXT PRIMARY KEY,
        opened_ms        BIGINT NOT NULL,
        until_ms         BIGINT NOT NULL,
        counted_from_ms  BIGINT NOT NULL,
        failures         INTEGER NOT NULL,
        openings         BIGINT NOT NULL DEFAULT 1,
        reset_by         TEXT
    );
    CREATE INDEX runs_breaker ON runs (playbook, ended_at) WHERE status IN ('failed', 'escalated');
    CREATE TABLE maintenance_windows (
        id          TEXT PRIMARY KEY,
        matchers    TEXT NOT NULL,
        nodes       TEXT NOT NULL,
        reason      TEXT,
        created_by  TEXT NOT NULL,
        starts_ms   BIGINT NOT NULL,
        ends_ms     BIGINT NOT NULL,
        ended_by    TEXT
    );
    CREATE INDEX maintenance_ends ON maintenance_windows (ends_ms);
