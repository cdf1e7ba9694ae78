    -- API tokens and the audit trail, as in SQLite; times are unix ms on the database clock.
    CREATE TABLE api_tokens (
        id          TEXT PRIMARY KEY,
        hash        TEXT NOT NULL UNIQUE,
        name        TEXT NOT NULL,
        role        TEXT NOT NULL,
        created_by  TEXT NOT NULL,
        created_ms  BIGINT NOT NULL,
        expires_ms  BIGINT,
        revoked_ms  BIGINT,
        revoked_by  TEXT
    );
    CREATE TABLE audit_events (
        id      BIGSERIAL PRIMARY KEY,
        at_ms   BIGINT NOT NULL,
        act     TEXT NOT NULL,
        actor   TEXT NOT NULL,
        proof   TEXT NOT NULL,
        source  TEXT NOT NULL,
        target  TEXT,
        detail  TEXT
    );
    CREATE INDEX audit_at ON audit_events (at_ms);
