
    -- What the figures (digest, dashboard) group and time runs by, written when a run is
    -- stored or finished so that a window of 100k runs is counted from columns, not JSON:
    -- the alert's name, its startsAt (RFC 3339, milliseconds, NULL when absent or not a time)
    -- and its instance label; when the run's first performed mutating call happened.
    ALTER TABLE runs ADD COLUMN alertname TEXT;
    ALTER TABLE runs ADD COLUMN alert_starts_at TEXT;
    ALTER TABLE runs ADD COLUMN alert_instance TEXT;
    ALTER TABLE runs ADD COLUMN first_action_at TEXT;
    -- Milliseconds from detection (alert startsAt, else accepted) to the run's start, first
    -- action and end, written when it finishes: the figures read integers, not times.
    ALTER TABLE runs ADD COLUMN to_start_ms INTEGER;
    ALTER TABLE runs ADD COLUMN to_action_ms INTEGER;
    ALTER TABLE runs ADD COLUMN to_end_ms INTEGER;
    UPDATE runs SET alertname = COALESCE(json_extract(alert, '$.name'), json_extract(alert, '$.labels.alertname')),
                    alert_instance = json_extract(alert, '$.labels.instance')
        WHERE alert IS NOT NULL AND json_valid(alert);
    -- The figures read a window of runs from this index alone (no table lookups).
    CREATE INDEX runs_figures ON runs (started_at, playbook, status, alertname, node,
        alert_instance, to_start_ms, to_action_ms, to_end_ms, running_since, alert_starts_at);
    -- A finished run's performed mutating calls by kind (`docker.restart`, `notify.send` …).
    CREATE TABLE run_actions (
        run_id  TEXT NOT NULL,
        kind    TEXT NOT NULL,
        calls   INTEGER NOT NULL,
        started_at  TEXT NOT NULL,     -- the run's, so a window is read on one index
        PRIMARY KEY (run_id, kind)
    );
    CREATE INDEX run_actions_window ON run_actions (started_at, kind, calls);
    CREATE INDEX approvals_asked ON approvals (asked_at);
