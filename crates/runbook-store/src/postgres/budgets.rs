//! Action budgets and the freeze switch on PostgreSQL. A take is one transaction holding a
//! transaction-scoped advisory lock per (budget, key), taken in sorted order (no deadlock
//! between two takes of the same keys): two replicas never both take a budget's last use, and
//! the window is the database's clock. A take reads that clock once, after its locks:
//! `now()` is the transaction's start, which a take that waited on a lock would see earlier
//! than uses stamped by the takes it waited for (a `frees_in` longer than the window).

use std::time::Duration;

use anyhow::Result;

use super::runs::{execute, query, query_opt};
use super::{Postgres, index_key, secs};
use crate::backend::{BudgetAnswer, BudgetTake, BudgetUse, Budgets, Freeze, MAX_USE_ROWS};
use crate::clean::Clean;

/// Seconds until a use leaves its window, never more than the window itself: the uses
/// query reads `now()` too, and a use committed just before its snapshot may carry a later
/// stamp.
fn frees_in(secs: Option<f64>, within: Duration) -> Duration {
    Duration::from_secs_f64(secs.unwrap_or(0.0).max(0.0)).min(within)
}

async fn take(pg: &Postgres, takes: &[BudgetTake], run_id: &str) -> Result<BudgetAnswer> {
    let mut takes: Vec<BudgetTake> = takes.iter().cloned().map(Clean::cleaned).collect();
    for t in &mut takes {
        t.key = index_key(&t.key).into_owned();
    }
    takes.sort_by(|a, b| (&a.budget, &a.key).cmp(&(&b.budget, &b.key)));
    let mut client = pg.client().await?;
    let tx = super::sql::begin(&mut client).await?;
    for t in &takes {
        execute(
            &tx,
            "SELECT pg_advisory_xact_lock(hashtextextended('budget ' || $1 || '/' || $2, 0))",
            &[&t.budget, &t.key],
        )
        .await?;
    }
    let now: f64 = query_opt(
        &tx,
        "SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8",
        &[],
    )
    .await?
    .expect("a SELECT without FROM returns a row")
    .get(0);
    for t in &takes {
        let within = secs(t.within);
        execute(
            &tx,
            "DELETE FROM budget_uses WHERE budget = $1 AND key = $2
                 AND at <= to_timestamp($4) - $3::float8 * interval '1 second'",
            &[&t.budget, &t.key, &within, &now],
        )
        .await?;
        let row = query_opt(
            &tx,
            "SELECT count(*), EXTRACT(EPOCH FROM (min(at) + $3::float8 * interval '1 second'
                                                  - to_timestamp($4)))::float8
             FROM budget_uses WHERE budget = $1 AND key = $2
                 AND at > to_timestamp($4) - $3::float8 * interval '1 second'",
            &[&t.budget, &t.key, &within, &now],
        )
        .await?
        .expect("an aggregate returns a row");
        let used: i64 = row.get(0);
        if used >= i64::from(t.max) {
            // Nothing counted: the DELETE of expired uses may as well stand.
            super::sql::commit(tx).await?;
            return Ok(BudgetAnswer::Over {
                budget: t.budget.clone(),
                key: t.key.clone(),
                used: used as u32,
                frees_in: frees_in(row.get(1), t.within),
            });
        }
    }
    for t in &takes {
        execute(
            &tx,
            "INSERT INTO budget_uses (budget, key, at, run_id)
             VALUES ($1, $2, to_timestamp($4), $3)",
            &[&t.budget, &t.key, &run_id, &now],
        )
        .await?;
    }
    super::sql::commit(tx).await?;
    Ok(BudgetAnswer::Taken)
}

async fn uses(pg: &Postgres, budgets: &[(String, Duration)]) -> Result<Vec<BudgetUse>> {
    let client = pg.client().await?;
    let mut found = Vec::new();
    for (budget, within) in budgets {
        let rows = query(
            &client,
            "SELECT key, count(*), EXTRACT(EPOCH FROM (min(at) + $2::float8 * interval '1 second'
                                                       - now()))::float8
             FROM budget_uses WHERE budget = $1 AND at > now() - $2::float8 * interval '1 second'
             GROUP BY key ORDER BY count(*) DESC, key LIMIT $3",
            &[budget, &secs(*within), &(MAX_USE_ROWS as i64)],
        )
        .await?;
        found.extend(rows.iter().map(|r| BudgetUse {
            budget: budget.clone(),
            key: r.get(0),
            used: r.get::<_, i64>(1) as u32,
            frees_in: frees_in(r.get(2), *within),
        }));
    }
    Ok(found)
}

#[async_trait::async_trait]
impl Budgets for Postgres {
    async fn take_budgets(&self, takes: &[BudgetTake], run_id: &str) -> Result<BudgetAnswer> {
        if takes.is_empty() {
            return Ok(BudgetAnswer::Taken);
        }
        self.bounded("taking from action budgets", take(self, takes, run_id))
            .await
    }

    async fn budget_uses(&self, budgets: &[(String, Duration)]) -> Result<Vec<BudgetUse>> {
        self.bounded("reading action budgets", uses(self, budgets))
            .await
    }

    async fn set_freeze(&self, freeze: Option<Freeze>) -> Result<()> {
        self.bounded("setting the freeze switch", async {
            let client = self.client().await?;
            match freeze.map(Clean::cleaned) {
                Some(f) => execute(
                    &client,
                    "INSERT INTO freeze_switch (id, frozen_by, reason, since) VALUES (1, $1, $2, $3)
                     ON CONFLICT (id) DO UPDATE SET frozen_by = excluded.frozen_by,
                         reason = excluded.reason, since = excluded.since",
                    &[&f.by, &f.reason, &f.since],
                )
                .await?,
                None => execute(&client, "DELETE FROM freeze_switch", &[]).await?,
            };
            Ok(())
        })
        .await
    }

    async fn freeze_state(&self) -> Result<Option<Freeze>> {
        self.bounded("reading the freeze switch", async {
            let client = self.client().await?;
            let row = query_opt(
                &client,
                "SELECT frozen_by, reason, since FROM freeze_switch WHERE id = 1",
                &[],
            )
            .await?;
            Ok(row.map(|r| Freeze {
                by: r.get(0),
                reason: r.get(1),
                since: r.get(2),
            }))
        })
        .await
    }
}
