
    -- One row per firing of a `[[schedule]]` (its name, the firing's time in unix ms): the
    -- key makes each firing run once however many hosts share the store, and across
    -- restarts. run_id: the run it admitted; skipped_for: the schedule's run still going.
    CREATE TABLE schedule_firings (
        schedule     TEXT NOT NULL,
        at_ms        INTEGER NOT NULL,
        catch_up     INTEGER NOT NULL,
        run_id       TEXT,
        skipped_for  TEXT,
        recorded_ms  INTEGER NOT NULL,
        PRIMARY KEY (schedule, at_ms)
    );
