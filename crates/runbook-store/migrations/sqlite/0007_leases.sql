
    -- Leases: a running run is held by its runner until lease_until_ms (unix ms), renewed
    -- while it runs; a claimed run holds one of its playbook's slots.
    ALTER TABLE runs ADD COLUMN lease_until_ms INTEGER;
    ALTER TABLE runs ADD COLUMN holds_slot INTEGER NOT NULL DEFAULT 0;
    -- When the store accepted the run (unix ms, the store's clock): dedup and cooldown
    -- windows are measured on it, not on a host's idea of the time.
    ALTER TABLE runs ADD COLUMN accepted_ms INTEGER;
    -- Each partial index's condition is spelled as the queries spell it (SQLite uses one only
    -- then): claims read the oldest queued runs, leases scan the running ones, the rescuer
    -- the lost ones nobody was told about; none of them scans the whole history.
    CREATE INDEX runs_queued ON runs (started_at, id) WHERE status = 'queued';
    CREATE INDEX runs_running ON runs (playbook) WHERE status = 'running';
    CREATE INDEX runs_lost_untold ON runs (started_at, id)
        WHERE status = 'lost' AND lost_notified_at IS NULL;
    -- Standard Webhooks ids seen within the replay window.
    CREATE TABLE replay_ids (id TEXT PRIMARY KEY, seen_ms INTEGER NOT NULL);
    CREATE INDEX replay_seen ON replay_ids (seen_ms);
    -- A message queued once whoever queues it (NULLs never conflict).
    ALTER TABLE outbox ADD COLUMN once_key TEXT;
    CREATE UNIQUE INDEX outbox_once ON outbox (once_key);
