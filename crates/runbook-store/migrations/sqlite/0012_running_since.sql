
    -- When a run began running (claimed by a process or a node's agent): the time it waited
    -- is started_at to running_since, the time it ran running_since to ended_at.
    ALTER TABLE runs ADD COLUMN running_since TEXT;
    -- Who asked a running run to stop (host runs cancel, the API, the console); the process
    -- executing it looks for its runs here (`cancel_requests`) and ends them `cancelled`.
    ALTER TABLE runs ADD COLUMN cancel_by TEXT;
    CREATE INDEX runs_cancel ON runs (runner) WHERE status = 'running' AND cancel_by IS NOT NULL;
    -- Who asked for a run, when a person did (the console's user; trigger `console`).
    ALTER TABLE runs ADD COLUMN requested_by TEXT;
    -- When a worker last took a message to deliver it (RFC 3339), for the console.
    ALTER TABLE outbox ADD COLUMN attempted_at TEXT;
    -- Secrets every process on the store shares (the console's CSRF key), created once.
    CREATE TABLE shared_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL);
