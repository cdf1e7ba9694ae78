//! Action budgets and the freeze switch on SQLite. A take is one IMMEDIATE transaction: other
//! processes on the file wait for it, so the count and the insert cannot interleave with
//! another take. On a file it runs on a connection of its own with `synchronous = NORMAL`
//! (WAL: the commit is not fsynced), so a budgeted call does not wait for a disk flush; a
//! power cut may forget the last uses (a few more actions allowed), never double-spend a
//! budget between processes. In memory it goes through the group-commit writer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::{Sqlite, millis};
use crate::backend::{
    BudgetAnswer, BudgetTake, BudgetUse, Budgets, Freeze, MAX_USE_ROWS, StoreInfo,
};
use crate::clean::Clean;
use crate::records::now_ms;

fn frees_in(oldest_ms: i64, within_ms: i64, now: i64) -> Duration {
    Duration::from_millis((oldest_ms + within_ms - now).max(0) as u64)
}

fn take(tx: &Transaction<'_>, takes: &[BudgetTake], run_id: &str) -> Result<BudgetAnswer> {
    let now = now_ms();
    for t in takes {
        let within = millis(t.within);
        // Uses that left the window are forgotten when their key is next checked.
        tx.prepare_cached(
            "DELETE FROM budget_uses WHERE budget = ?1 AND key = ?2 AND at_ms <= ?3",
        )?
        .execute(params![t.budget, t.key, now - within])?;
        let (used, oldest): (i64, Option<i64>) = tx
            .prepare_cached(
                "SELECT count(*), min(at_ms) FROM budget_uses
                 WHERE budget = ?1 AND key = ?2 AND at_ms > ?3",
            )?
            .query_row(params![t.budget, t.key, now - within], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        if used >= i64::from(t.max) {
            return Ok(BudgetAnswer::Over {
                budget: t.budget.clone(),
                key: t.key.clone(),
                used: used as u32,
                frees_in: frees_in(oldest.unwrap_or(now), within, now),
            });
        }
    }
    for t in takes {
        tx.prepare_cached(
            "INSERT INTO budget_uses (budget, key, at_ms, run_id) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![t.budget, t.key, now, run_id])?;
    }
    Ok(BudgetAnswer::Taken)
}

fn uses(conn: &Connection, budgets: &[(String, Duration)]) -> Result<Vec<BudgetUse>> {
    let now = now_ms();
    let mut found = Vec::new();
    for (budget, within) in budgets {
        let within = millis(*within);
        let rows = conn
            .prepare_cached(
                "SELECT key, count(*), min(at_ms) FROM budget_uses
                 WHERE budget = ?1 AND at_ms > ?2
                 GROUP BY key ORDER BY count(*) DESC, key LIMIT ?3",
            )?
            .query_map(params![budget, now - within, MAX_USE_ROWS as i64], |r| {
                Ok(BudgetUse {
                    budget: budget.clone(),
                    key: r.get(0)?,
                    used: r.get::<_, i64>(1)? as u32,
                    frees_in: frees_in(r.get(2)?, within, now),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        found.extend(rows);
    }
    Ok(found)
}

impl Sqlite {
    /// The budgets' connection to the file (`None` in memory: another connection would be
    /// another database).
    fn budget_conn(&self) -> Result<Option<Arc<Mutex<Connection>>>> {
        if let Some(conn) = self.budget_conn.get() {
            return Ok(conn.clone());
        }
        let conn = match self.local_file() {
            None => None,
            Some(path) => {
                let conn = Connection::open(&path)?;
                conn.busy_timeout(Duration::from_secs(10))?;
                conn.pragma_update(None, "synchronous", "NORMAL")?;
                Some(Arc::new(Mutex::new(conn)))
            }
        };
        Ok(self.budget_conn.get_or_init(|| conn).clone())
    }
}

#[async_trait::async_trait]
impl Budgets for Sqlite {
    async fn take_budgets(&self, takes: &[BudgetTake], run_id: &str) -> Result<BudgetAnswer> {
        if takes.is_empty() {
            return Ok(BudgetAnswer::Taken);
        }
        let takes: Vec<BudgetTake> = takes.iter().cloned().map(Clean::cleaned).collect();
        let run_id = run_id.to_string();
        let Some(conn) = self.budget_conn()? else {
            return self
                .writer()
                .write(move |tx| take(tx, &takes, &run_id))
                .await;
        };
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let answer = take(&tx, &takes, &run_id)?;
            tx.commit()?;
            Ok(answer)
        })
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("run store: {e}")))
    }

    async fn budget_uses(&self, budgets: &[(String, Duration)]) -> Result<Vec<BudgetUse>> {
        let budgets = budgets.to_vec();
        self.blocking(move |conn| uses(conn, &budgets)).await
    }

    async fn set_freeze(&self, freeze: Option<Freeze>) -> Result<()> {
        self.writer()
            .write(move |tx| {
                match freeze.map(Clean::cleaned) {
                    Some(f) => tx.execute(
                        "INSERT INTO freeze_switch (id, frozen_by, reason, since) VALUES (1, ?1, ?2, ?3)
                         ON CONFLICT (id) DO UPDATE SET frozen_by = excluded.frozen_by,
                             reason = excluded.reason, since = excluded.since",
                        params![f.by, f.reason, f.since],
                    )?,
                    None => tx.execute("DELETE FROM freeze_switch", [])?,
                };
                Ok(())
            })
            .await
    }

    async fn freeze_state(&self) -> Result<Option<Freeze>> {
        self.blocking(|conn| {
            Ok(conn
                .prepare_cached("SELECT frozen_by, reason, since FROM freeze_switch WHERE id = 1")?
                .query_row([], |r| {
                    Ok(Freeze {
                        by: r.get(0)?,
                        reason: r.get(1)?,
                        since: r.get(2)?,
                    })
                })
                .optional()?)
        })
        .await
    }
}
