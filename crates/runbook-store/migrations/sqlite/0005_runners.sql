
    -- The process executing the run (host name/pid/start time): a live one keeps its runs.
    ALTER TABLE runs ADD COLUMN runner TEXT;
    -- When ops were told that this run was lost (so a later restart does not tell again).
    ALTER TABLE runs ADD COLUMN lost_notified_at TEXT;
