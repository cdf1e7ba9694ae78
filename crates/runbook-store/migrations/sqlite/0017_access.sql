-- API tokens (`host tokens create`): the SHA-256 of the token, never the token; what it allows
-- and until when (unix ms, the store's clock).
CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER,
    revoked_ms  INTEGER,
    revoked_by  TEXT
);
-- The audit trail: every state-changing act, who, how proven, from where, on what.
CREATE TABLE audit_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms   INTEGER NOT NULL,
    act     TEXT NOT NULL,
    actor   TEXT NOT NULL,
    proof   TEXT NOT NULL,
    source  TEXT NOT NULL,
    target  TEXT,
    detail  TEXT
);
CREATE INDEX audit_at ON audit_events (at_ms);
