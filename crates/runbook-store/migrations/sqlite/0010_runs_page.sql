
    -- The console's runs page: newest first by (started_at, id) with a keyset cursor, and one
    -- index per equality filter so a rare status or playbook is found without a scan.
    CREATE INDEX runs_page ON runs (started_at, id);
    CREATE INDEX runs_page_playbook ON runs (playbook, started_at, id);
    CREATE INDEX runs_page_status ON runs (status, started_at, id);
    CREATE INDEX runs_page_severity ON runs (severity, started_at, id);
    CREATE INDEX runs_page_trigger ON runs (trigger, started_at, id);
    CREATE INDEX runs_page_node ON runs (node, started_at, id);
