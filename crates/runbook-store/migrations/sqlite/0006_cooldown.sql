
    -- A route's cooldown key (the alert's fingerprint): a run with the same playbook and key
    -- within the route's cooldown skips the alert. In the store, so the check is part of the
    -- admission's transaction and no per-alert state lives in the server's memory.
    ALTER TABLE runs ADD COLUMN cooldown_key TEXT;
    CREATE INDEX runs_cooldown ON runs (playbook, cooldown_key, started_at)
        WHERE cooldown_key IS NOT NULL;
