//! Breakers and maintenance windows in SQLite. A breaker's check reads on a blocking thread
//! (the row and one count on `runs_breaker`); only an opening goes through the writer, where a
//! conditional upsert lets exactly one of several racing admissions open it.

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, params};

use super::runs::now_ms;
use super::{Sqlite, millis};
use crate::backend::{Breakers, Maintenance};
use crate::clean;
use crate::records::rfc3339;
use crate::safety::{BreakerCheck, BreakerRule, BreakerState, NewWindow, WindowRecord};

fn text_of(ms: i64) -> String {
    rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64))
}

const BREAKER_COLUMNS: &str =
    "playbook, opened_ms, until_ms, failures, openings, reset_by, counted_from_ms";

fn breaker_row(r: &rusqlite::Row<'_>, now: i64) -> rusqlite::Result<(BreakerState, i64)> {
    let (opened_ms, until_ms): (i64, i64) = (r.get(1)?, r.get(2)?);
    Ok((
        BreakerState {
            playbook: r.get(0)?,
            open: until_ms > now,
            opened_at: text_of(opened_ms),
            until: text_of(until_ms),
            opened_ms,
            failures: r.get::<_, i64>(3)? as u32,
            openings: r.get(4)?,
            reset_by: r.get(5)?,
        },
        r.get(6)?,
    ))
}

fn read_breaker(
    conn: &Connection,
    playbook: &str,
    now: i64,
) -> Result<Option<(BreakerState, i64)>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {BREAKER_COLUMNS} FROM breakers WHERE playbook = ?1"
        ))?
        .query_row(params![playbook], |r| breaker_row(r, now))
        .optional()?)
}

/// The playbook's runs that ended failed or escalated at or after `since_ms`.
fn failures_since(conn: &Connection, playbook: &str, since_ms: i64) -> Result<u32> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM runs WHERE playbook = ?1 AND status IN ('failed', 'escalated')
               AND ended_at >= ?2",
        )?
        .query_row(params![playbook, text_of(since_ms)], |r| r.get(0))?;
    Ok(n as u32)
}

/// Opens the breaker unless it is open already (another admission won): the state either way.
fn open(
    conn: &Connection,
    playbook: &str,
    failures: u32,
    cool_down_ms: i64,
) -> Result<BreakerCheck> {
    let now = now_ms();
    let until = now + cool_down_ms;
    let opened = conn
        .prepare_cached(
            "INSERT INTO breakers (playbook, opened_ms, until_ms, counted_from_ms, failures)
             VALUES (?1, ?2, ?3, ?3, ?4)
             ON CONFLICT (playbook) DO UPDATE
                 SET opened_ms = ?2, until_ms = ?3, counted_from_ms = ?3, failures = ?4,
                     openings = breakers.openings + 1, reset_by = NULL
                 WHERE breakers.until_ms <= ?2
             RETURNING playbook",
        )?
        .query_row(params![playbook, now, until, failures], |_| Ok(()))
        .optional()?
        .is_some();
    let (state, _) = read_breaker(conn, playbook, now)?
        .ok_or_else(|| anyhow::anyhow!("breaker of {playbook} vanished while opening"))?;
    Ok(if opened {
        BreakerCheck::Opened(state)
    } else {
        BreakerCheck::Open(state)
    })
}

fn reset(conn: &Connection, playbook: &str, by: &str) -> Result<bool> {
    let now = now_ms();
    let n = conn
        .prepare_cached(
            "UPDATE breakers SET until_ms = ?2, counted_from_ms = ?2, reset_by = ?3
             WHERE playbook = ?1 AND until_ms > ?2",
        )?
        .execute(params![playbook, now, by])?;
    Ok(n > 0)
}

const WINDOW_COLUMNS: &str =
    "id, matchers, nodes, reason, created_by, starts_ms, ends_ms, ended_by";

fn window_row(r: &rusqlite::Row<'_>, now: i64) -> rusqlite::Result<WindowRecord> {
    let list = |i: usize| -> rusqlite::Result<Vec<String>> {
        let text: String = r.get(i)?;
        Ok(serde_json::from_str(&text).unwrap_or_default())
    };
    let (starts_ms, ends_ms): (i64, i64) = (r.get(5)?, r.get(6)?);
    Ok(WindowRecord {
        id: r.get(0)?,
        matchers: list(1)?,
        nodes: list(2)?,
        reason: r.get(3)?,
        created_by: r.get(4)?,
        starts_at: text_of(starts_ms),
        ends_at: text_of(ends_ms),
        ends_ms,
        ended_by: r.get(7)?,
        active: starts_ms <= now && now < ends_ms,
    })
}

fn start_window(conn: &Connection, window: &NewWindow) -> Result<WindowRecord> {
    let now = now_ms();
    let id: String = conn
        .prepare_cached(
            "INSERT INTO maintenance_windows (id, matchers, nodes, reason, created_by, starts_ms,
                                              ends_ms)
             VALUES ('mw-' || lower(hex(randomblob(5))), ?1, ?2, ?3, ?4, ?5, ?6)
             RETURNING id",
        )?
        .query_row(
            params![
                serde_json::to_string(&window.matchers)?,
                serde_json::to_string(&window.nodes)?,
                window.reason,
                window.by,
                now,
                now + millis(window.duration),
            ],
            |r| r.get(0),
        )?;
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {WINDOW_COLUMNS} FROM maintenance_windows WHERE id = ?1"
        ))?
        .query_row(params![id], |r| window_row(r, now))?)
}

#[async_trait::async_trait]
impl Breakers for Sqlite {
    async fn breaker_check(&self, playbook: &str, rule: &BreakerRule) -> Result<BreakerCheck> {
        let (playbook, rule) = (clean::text(playbook).into_owned(), rule.clone());
        let name = playbook.clone();
        let found = self
            .blocking(move |conn| {
                let now = now_ms();
                let row = read_breaker(conn, &name, now)?;
                if let Some((state, _)) = row.as_ref().filter(|(s, _)| s.open) {
                    return Ok(Err(BreakerCheck::Open(state.clone())));
                }
                let since = (now - millis(rule.within)).max(row.map_or(0, |(_, from)| from));
                Ok(Ok(failures_since(conn, &name, since)?))
            })
            .await?;
        let failures = match found {
            Err(open) => return Ok(open),
            Ok(failures) if failures < rule.failures.max(1) => return Ok(BreakerCheck::Closed),
            Ok(failures) => failures,
        };
        let cool_down = millis(rule.cool_down);
        self.writer()
            .write(move |tx| open(tx, &playbook, failures, cool_down))
            .await
    }

    async fn breaker_reset(&self, playbook: &str, by: &str) -> Result<bool> {
        let playbook = clean::text(playbook).into_owned();
        let by = clean::text(by).into_owned();
        self.writer()
            .write(move |tx| reset(tx, &playbook, &by))
            .await
    }

    async fn breakers(&self) -> Result<Vec<BreakerState>> {
        self.blocking(|conn| {
            let now = now_ms();
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {BREAKER_COLUMNS} FROM breakers ORDER BY playbook"
                ))?
                .query_map([], |r| breaker_row(r, now).map(|(state, _)| state))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }
}

#[async_trait::async_trait]
impl Maintenance for Sqlite {
    async fn window_start(&self, window: NewWindow) -> Result<WindowRecord> {
        let mut window = window;
        for text in window
            .matchers
            .iter_mut()
            .chain(&mut window.nodes)
            .chain(&mut window.reason)
        {
            *text = clean::text(text).into_owned();
        }
        window.by = clean::text(&window.by).into_owned();
        self.writer()
            .write(move |tx| start_window(tx, &window))
            .await
    }

    async fn window_end(&self, id: &str, by: &str) -> Result<bool> {
        let (id, by) = (clean::text(id).into_owned(), clean::text(by).into_owned());
        self.writer()
            .write(move |tx| {
                let now = now_ms();
                let n = tx
                    .prepare_cached(
                        "UPDATE maintenance_windows SET ends_ms = ?2, ended_by = ?3
                         WHERE id = ?1 AND ends_ms > ?2",
                    )?
                    .execute(params![id, now, by])?;
                Ok(n > 0)
            })
            .await
    }

    async fn windows(&self, recent: bool) -> Result<Vec<WindowRecord>> {
        self.blocking(move |conn| {
            let now = now_ms();
            let since = if recent { now - 24 * 3600 * 1000 } else { now };
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {WINDOW_COLUMNS} FROM maintenance_windows WHERE ends_ms > ?1
                     ORDER BY starts_ms DESC, id LIMIT 500"
                ))?
                .query_map(params![since], |r| window_row(r, now))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }
}
