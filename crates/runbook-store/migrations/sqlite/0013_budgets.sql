-- Action budgets: one row per mutating capability call a budget counted (issue 30). A call
-- is allowed when fewer than the budget's `max` rows for its (budget, key) fall within the
-- window; the check and the insert are one write transaction. Rows older than the window are
-- deleted when their key is next checked.
CREATE TABLE budget_uses (
    budget TEXT NOT NULL,
    key TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    run_id TEXT NOT NULL
);
CREATE INDEX budget_uses_window ON budget_uses (budget, key, at_ms);
-- The freeze switch: a row means every mutating call of every process on the store is a
-- dry run until it is deleted (`host unfreeze`).
CREATE TABLE freeze_switch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    frozen_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    since TEXT NOT NULL
);
