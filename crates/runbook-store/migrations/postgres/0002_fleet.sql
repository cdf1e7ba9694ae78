
    -- The fleet: a run for a node (NULL: a `host serve` replica runs it) is claimed only by
    -- that node's agent; one waiting longer than the wait since it was accepted (on the
    -- database clock: rows before this version get the migration's time) is undeliverable.
    ALTER TABLE runs ADD COLUMN node TEXT;
    ALTER TABLE runs ADD COLUMN accepted_at TIMESTAMPTZ NOT NULL DEFAULT now();
    CREATE INDEX runs_node_queued ON runs (node, started_at, id)
        WHERE status = 'queued' AND node IS NOT NULL;
    CREATE INDEX runs_undeliverable_untold ON runs (started_at, id)
        WHERE status = 'undeliverable' AND lost_notified_at IS NULL;

    -- Each node's agent as last heard from.
    CREATE TABLE nodes (
        name          TEXT PRIMARY KEY,
        session       TEXT NOT NULL,
        version       TEXT NOT NULL,
        connected_at  TEXT NOT NULL,          -- RFC 3339, when this session first connected
        last_seen     TIMESTAMPTZ NOT NULL
    );
