
    -- The console's runs page (as SQLite's): keyset on (started_at, id) (runs_started), one
    -- index per filter (runs_playbook exists).
    CREATE INDEX runs_page_status ON runs (status, started_at, id);
    CREATE INDEX runs_page_severity ON runs (severity, started_at, id);
    CREATE INDEX runs_page_trigger ON runs (trigger, started_at, id);
    CREATE INDEX runs_page_node ON runs (node, started_at, id);
