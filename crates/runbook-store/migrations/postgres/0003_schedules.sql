
    -- One row per firing of a `[[schedule]]` (its name, the firing's time in unix ms): the
    -- primary key makes each firing run once across every replica and restart. run_id: the
    -- run it admitted; skipped_for: the schedule's run that was still going.
    CREATE TABLE schedule_firings (
        schedule     TEXT NOT NULL,
        at_ms        BIGINT NOT NULL,
        catch_up     BOOLEAN NOT NULL,
        run_id       TEXT,
        skipped_for  TEXT,
        recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (schedule, at_ms)
    );
