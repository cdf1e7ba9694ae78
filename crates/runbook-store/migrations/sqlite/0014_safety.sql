-- Circuit breakers per playbook: the latest opening, until when it holds runs, and from when
-- failures count again (its close: the cool-down's end, or a reset).
CREATE TABLE breakers (
    playbook         TEXT PRIMARY KEY,
    opened_ms        INTEGER NOT NULL,
    until_ms         INTEGER NOT NULL,
    counted_from_ms  INTEGER NOT NULL,
    failures         INTEGER NOT NULL,
    openings         INTEGER NOT NULL DEFAULT 1,
    reset_by         TEXT
);
-- The breaker's count on the admission path: a playbook's failed or escalated runs by end.
CREATE INDEX runs_breaker ON runs (playbook, ended_at) WHERE status IN ('failed', 'escalated');
-- Operators' ad hoc maintenance windows (config windows live in host.toml).
CREATE TABLE maintenance_windows (
    id          TEXT PRIMARY KEY,
    matchers    TEXT NOT NULL,      -- JSON array of label matchers
    nodes       TEXT NOT NULL,      -- JSON array of node names
    reason      TEXT,
    created_by  TEXT NOT NULL,
    starts_ms   INTEGER NOT NULL,
    ends_ms     INTEGER NOT NULL,
    ended_by    TEXT
);
CREATE INDEX maintenance_ends ON maintenance_windows (ends_ms);
