
    -- What the figures (digest, dashboard) group and time runs by, as in SQLite.
    ALTER TABLE runs ADD COLUMN alertname TEXT;
    ALTER TABLE runs ADD COLUMN alert_starts_at TEXT;
    ALTER TABLE runs ADD COLUMN alert_instance TEXT;
    ALTER TABLE runs ADD COLUMN first_action_at TEXT;
    ALTER TABLE runs ADD COLUMN to_start_ms BIGINT;
    ALTER TABLE runs ADD COLUMN to_action_ms BIGINT;
    ALTER TABLE runs ADD COLUMN to_end_ms BIGINT;
    UPDATE runs SET alertname = COALESCE((alert::jsonb) ->> 'name', (alert::jsonb) -> 'labels' ->> 'alertname'),
                    alert_instance = (alert::jsonb) -> 'labels' ->> 'instance'
        WHERE alert IS NOT NULL;
    CREATE INDEX runs_figures ON runs (started_at, playbook, status, alertname, node, alert_instance);
    CREATE TABLE run_actions (
        run_id  TEXT NOT NULL,
        kind    TEXT NOT NULL,
        calls   BIGINT NOT NULL,
        started_at  TEXT NOT NULL,     -- the run's, so a window is read on one index
        PRIMARY KEY (run_id, kind)
    );
    CREATE INDEX run_actions_window ON run_actions (started_at, kind, calls);
    CREATE INDEX approvals_asked ON approvals (asked_at);
    -- Milliseconds since the epoch of an RFC 3339 text the host wrote (SQLite's julianday
    -- arithmetic gives the same whole milliseconds).
    CREATE FUNCTION runbook_ms(t text) RETURNS bigint LANGUAGE sql STABLE AS
        $$ SELECT floor(EXTRACT(EPOCH FROM t::timestamptz) * 1000)::bigint $$;
