
    -- What the figures (digest, dashboard) group and time runs by, written when a run is
    -- stored or finished so that a window of 100k runs is counted from columns, not JSON:
    -- the alert's name, its startsAt (RFC 3339, milliseconds, NULL when absent or not a time)
    -- and its instance label; when the run's first performed mutating call happened.
    ALTER TABLE runs ADD COLUMN alertname TEXT;
    ALTER TABLE runs ADD COLUMN alert_starts_at TEXT;
    ALTER TABLE runs ADD COLUMN alert_instance TEXT;
    ALTER TABLE runs ADD COLUMN first_action_at TEXT;
    UPDATE runs SET alertname = COALESCE(json_extract(alert, '$.name'), json_extract(alert, '$.labels.alertname')),
                    alert_instance = json_extract(alert, '$.labels.instance')
        WHERE alert IS NOT NULL AND json_valid(alert);
    -- The figures' GROUP BY reads the window on this index alone.
    CREATE INDEX runs_figures ON runs (started_at, playbook, status, alertname, node, alert_instance);
    -- A finished run's performed mutating calls by kind (`docker.restart`, `notify.send` …).
    CREATE TABLE run_actions (
        run_id  TEXT NOT NULL,
        kind    TEXT NOT NULL,
        calls   INTEGER NOT NULL,
        PRIMARY KEY (run_id, kind)
    );
    CREATE INDEX approvals_asked ON approvals (asked_at);
