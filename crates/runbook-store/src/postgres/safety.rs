//! Breakers and maintenance windows on PostgreSQL, on the database clock. A breaker's check is
//! one statement (the row and the count on `runs_breaker`); an opening is a conditional upsert
//! on the playbook's key, so of several replicas opening it at once exactly one gets a row back
//! (the others wait for its commit and find it open).

use anyhow::Result;
use tokio_postgres::Row;

use super::Postgres;
use super::runs::{execute, query, query_opt};
use crate::backend::{Breakers, Maintenance};
use crate::clean;
use crate::records::rfc3339;
use crate::safety::{BreakerCheck, BreakerRule, BreakerState, NewWindow, WindowRecord};

/// The database clock in unix ms.
const NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

fn text_of(ms: i64) -> String {
    rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64))
}

fn ms(d: std::time::Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

const BREAKER_COLUMNS: &str = "playbook, opened_ms, until_ms, failures, openings, reset_by";

/// A breaker row read with the database's now in the column after its own.
fn breaker(row: &Row, now: i64) -> BreakerState {
    let (opened_ms, until_ms): (i64, i64) = (row.get(1), row.get(2));
    BreakerState {
        playbook: row.get(0),
        open: until_ms > now,
        opened_at: text_of(opened_ms),
        until: text_of(until_ms),
        opened_ms,
        failures: row.get::<_, i32>(3) as u32,
        openings: row.get(4),
        reset_by: row.get(5),
    }
}

async fn check(pg: &Postgres, playbook: &str, rule: &BreakerRule) -> Result<BreakerCheck> {
    let client = pg.client().await?;
    // The breaker's row (if any) and the database's now; the count only when it is closed.
    let head = query_opt(
        &client,
        &format!(
            "SELECT {NOW_MS}, b.playbook, b.opened_ms, b.until_ms, b.failures, b.openings,
                    b.reset_by, b.counted_from_ms
             FROM (SELECT 1) one LEFT JOIN breakers b ON b.playbook = $1"
        ),
        &[&playbook],
    )
    .await?
    .ok_or_else(|| anyhow::anyhow!("no row from the breaker's check"))?;
    let now: i64 = head.get(0);
    let counted_from = match head.get::<_, Option<String>>(1) {
        Some(_) => {
            let (opened_ms, until_ms): (i64, i64) = (head.get(2), head.get(3));
            let state = BreakerState {
                playbook: head.get(1),
                open: until_ms > now,
                opened_at: text_of(opened_ms),
                until: text_of(until_ms),
                opened_ms,
                failures: head.get::<_, i32>(4) as u32,
                openings: head.get(5),
                reset_by: head.get(6),
            };
            if state.open {
                return Ok(BreakerCheck::Open(state));
            }
            head.get::<_, i64>(7)
        }
        None => 0,
    };
    let since = (now - ms(rule.within)).max(counted_from);
    let failures: i64 = query_opt(
        &client,
        "SELECT count(*) FROM runs WHERE playbook = $1 AND status IN ('failed', 'escalated')
           AND ended_at >= $2",
        &[&playbook, &text_of(since)],
    )
    .await?
    .map_or(0, |r| r.get(0));
    if failures < rule.failures.max(1) as i64 {
        return Ok(BreakerCheck::Closed);
    }
    let cool_down = ms(rule.cool_down);
    let opened = query_opt(
        &client,
        &format!(
            "INSERT INTO breakers (playbook, opened_ms, until_ms, counted_from_ms, failures)
             VALUES ($1, {NOW_MS}, {NOW_MS} + $2, {NOW_MS} + $2, $3)
             ON CONFLICT (playbook) DO UPDATE
                 SET opened_ms = EXCLUDED.opened_ms, until_ms = EXCLUDED.until_ms,
                     counted_from_ms = EXCLUDED.until_ms, failures = EXCLUDED.failures,
                     openings = breakers.openings + 1, reset_by = NULL
                 WHERE breakers.until_ms <= EXCLUDED.opened_ms
             RETURNING {BREAKER_COLUMNS}, {NOW_MS}"
        ),
        &[&playbook, &cool_down, &(failures as i32)],
    )
    .await?;
    if let Some(row) = opened {
        return Ok(BreakerCheck::Opened(breaker(&row, row.get(6))));
    }
    let row = query_opt(
        &client,
        &format!("SELECT {BREAKER_COLUMNS}, {NOW_MS} FROM breakers WHERE playbook = $1"),
        &[&playbook],
    )
    .await?
    .ok_or_else(|| anyhow::anyhow!("breaker of {playbook} vanished while opening"))?;
    Ok(BreakerCheck::Open(breaker(&row, row.get(6))))
}

const WINDOW_COLUMNS: &str =
    "id, matchers, nodes, reason, created_by, starts_ms, ends_ms, ended_by";

fn window(row: &Row, now: i64) -> WindowRecord {
    let list = |i: usize| serde_json::from_str(row.get::<_, &str>(i)).unwrap_or_default();
    let (starts_ms, ends_ms): (i64, i64) = (row.get(5), row.get(6));
    WindowRecord {
        id: row.get(0),
        matchers: list(1),
        nodes: list(2),
        reason: row.get(3),
        created_by: row.get(4),
        starts_at: text_of(starts_ms),
        ends_at: text_of(ends_ms),
        ends_ms,
        ended_by: row.get(7),
        active: starts_ms <= now && now < ends_ms,
    }
}

async fn start_window(pg: &Postgres, w: &NewWindow) -> Result<WindowRecord> {
    let client = pg.client().await?;
    let row = query_opt(
        &client,
        &format!(
            "INSERT INTO maintenance_windows (id, matchers, nodes, reason, created_by, starts_ms,
                                              ends_ms)
             VALUES ('mw-' || substr(md5(random()::text || clock_timestamp()::text), 1, 10),
                     $1, $2, $3, $4, {NOW_MS}, {NOW_MS} + $5)
             RETURNING {WINDOW_COLUMNS}, {NOW_MS}"
        ),
        &[
            &serde_json::to_string(&w.matchers)?,
            &serde_json::to_string(&w.nodes)?,
            &w.reason,
            &w.by,
            &ms(w.duration),
        ],
    )
    .await?
    .ok_or_else(|| anyhow::anyhow!("no window row returned"))?;
    Ok(window(&row, row.get(8)))
}

#[async_trait::async_trait]
impl Breakers for Postgres {
    async fn breaker_check(&self, playbook: &str, rule: &BreakerRule) -> Result<BreakerCheck> {
        let playbook = clean::text(playbook);
        self.bounded("checking a circuit breaker", check(self, &playbook, rule))
            .await
    }

    async fn breaker_reset(&self, playbook: &str, by: &str) -> Result<bool> {
        let (playbook, by) = (clean::text(playbook), clean::text(by));
        let reset = async {
            let client = self.client().await?;
            execute(
                &client,
                &format!(
                    "UPDATE breakers SET until_ms = {NOW_MS}, counted_from_ms = {NOW_MS},
                         reset_by = $2
                     WHERE playbook = $1 AND until_ms > {NOW_MS}"
                ),
                &[&&*playbook, &&*by],
            )
            .await
        };
        Ok(self.bounded("resetting a circuit breaker", reset).await? > 0)
    }

    async fn breakers(&self) -> Result<Vec<BreakerState>> {
        let read = async {
            let client = self.client().await?;
            let rows = query(
                &client,
                &format!("SELECT {BREAKER_COLUMNS}, {NOW_MS} FROM breakers ORDER BY playbook"),
                &[],
            )
            .await?;
            Ok(rows.iter().map(|r| breaker(r, r.get(6))).collect())
        };
        self.bounded("reading circuit breakers", read).await
    }
}

#[async_trait::async_trait]
impl Maintenance for Postgres {
    async fn window_start(&self, w: NewWindow) -> Result<WindowRecord> {
        let mut w = w;
        for text in w
            .matchers
            .iter_mut()
            .chain(&mut w.nodes)
            .chain(&mut w.reason)
        {
            *text = clean::text(text).into_owned();
        }
        w.by = clean::text(&w.by).into_owned();
        self.bounded("opening a maintenance window", start_window(self, &w))
            .await
    }

    async fn window_end(&self, id: &str, by: &str) -> Result<bool> {
        let (id, by) = (clean::text(id), clean::text(by));
        let end = async {
            let client = self.client().await?;
            execute(
                &client,
                &format!(
                    "UPDATE maintenance_windows SET ends_ms = {NOW_MS}, ended_by = $2
                     WHERE id = $1 AND ends_ms > {NOW_MS}"
                ),
                &[&&*id, &&*by],
            )
            .await
        };
        Ok(self.bounded("ending a maintenance window", end).await? > 0)
    }

    async fn windows(&self, recent: bool) -> Result<Vec<WindowRecord>> {
        let read = async {
            let client = self.client().await?;
            let back: i64 = if recent { 24 * 3600 * 1000 } else { 0 };
            let rows = query(
                &client,
                &format!(
                    "SELECT {WINDOW_COLUMNS}, {NOW_MS} FROM maintenance_windows
                     WHERE ends_ms > {NOW_MS} - $1
                     ORDER BY starts_ms DESC, id LIMIT 500"
                ),
                &[&back],
            )
            .await?;
            Ok(rows.iter().map(|r| window(r, r.get(8))).collect())
        };
        self.bounded("reading maintenance windows", read).await
    }
}
