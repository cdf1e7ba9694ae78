-- Action budgets, as in SQLite (0013_budgets.sql): one row per counted mutating call; the
-- check and the insert run in one transaction under an advisory lock on (budget, key).
CREATE TABLE budget_uses (
    budget TEXT NOT NULL,
    key TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    run_id TEXT NOT NULL
);
CREATE INDEX budget_uses_window ON budget_uses (budget, key, at);
-- The freeze switch, as in SQLite.
CREATE TABLE freeze_switch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    frozen_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    since TEXT NOT NULL
);
