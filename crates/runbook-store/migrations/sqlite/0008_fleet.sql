
    -- The fleet: a run for a node (NULL: a `host serve` process runs it) is claimed only by
    -- that node's agent. The partial index's condition is spelled as the node's claim and the
    -- expiry of undelivered runs spell theirs.
    ALTER TABLE runs ADD COLUMN node TEXT;
    CREATE INDEX runs_node_queued ON runs (node, started_at, id)
        WHERE status = 'queued' AND node IS NOT NULL;
    -- Undeliverable runs nobody has told ops about (lost_notified_at is the "told" mark).
    CREATE INDEX runs_undeliverable_untold ON runs (started_at, id)
        WHERE status = 'undeliverable' AND lost_notified_at IS NULL;
    -- Each node's agent as last heard from: last_seen on the store's clock (unix ms).
    CREATE TABLE nodes (
        name          TEXT PRIMARY KEY,
        session       TEXT NOT NULL,
        version       TEXT NOT NULL,
        connected_at  TEXT NOT NULL,        -- RFC 3339, when this session first connected
        last_seen     INTEGER NOT NULL
    );
