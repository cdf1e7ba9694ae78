//! Approvals in SQLite: one row per question; the first decision wins by `state = 'pending'`
//! in the UPDATE's WHERE (the writer thread serializes them).

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::Sqlite;
use crate::backend::ApprovalStore;
use crate::clean::Clean;
use crate::records::{ApprovalRecord, Decision};

const COLUMNS: &str = "id, run_id, playbook, grp, title, body, actions, state, asked_at, \
     expires_at, answered_by, answered_via, answered_at, reason, messages";

fn record(r: &Row) -> rusqlite::Result<ApprovalRecord> {
    let json = |i: usize| -> rusqlite::Result<Vec<serde_json::Value>> {
        let text: String = r.get(i)?;
        Ok(serde_json::from_str(&text).unwrap_or_default())
    };
    Ok(ApprovalRecord {
        id: r.get(0)?,
        run_id: r.get(1)?,
        playbook: r.get(2)?,
        group: r.get(3)?,
        title: r.get(4)?,
        body: r.get(5)?,
        actions: json(6)?
            .into_iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        state: r.get(7)?,
        asked_at: r.get(8)?,
        expires_at: r.get(9)?,
        answered_by: r.get(10)?,
        answered_via: r.get(11)?,
        answered_at: r.get(12)?,
        reason: r.get(13)?,
        messages: json(14)?,
    })
}

pub(super) fn open(conn: &Connection, a: &ApprovalRecord) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO approvals (id, run_id, playbook, grp, title, body, actions, state,
             asked_at, expires_at, messages)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?9, ?10)",
    )?
    .execute(params![
        a.id,
        a.run_id,
        a.playbook,
        a.group,
        a.title,
        a.body,
        serde_json::to_string(&a.actions)?,
        a.asked_at,
        a.expires_at,
        serde_json::to_string(&a.messages)?,
    ])?;
    Ok(())
}

pub(super) fn set_messages(
    conn: &Connection,
    id: &str,
    messages: &[serde_json::Value],
) -> Result<()> {
    conn.prepare_cached("UPDATE approvals SET messages = ?2 WHERE id = ?1")?
        .execute(params![id, serde_json::to_string(messages)?])?;
    Ok(())
}

pub(super) fn decide(conn: &Connection, id: &str, d: &Decision) -> Result<Option<ApprovalRecord>> {
    Ok(conn
        .prepare_cached(&format!(
            "UPDATE approvals SET state = ?2, answered_by = ?3, answered_via = ?4,
                 answered_at = ?5, reason = ?6
             WHERE id = ?1 AND state = 'pending' RETURNING {COLUMNS}"
        ))?
        .query_row(params![id, d.state, d.by, d.via, d.at, d.reason], record)
        .optional()?)
}

pub(super) fn get(conn: &Connection, id: &str) -> Result<Option<ApprovalRecord>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM approvals WHERE id = ?1"))?
        .query_row(params![id], record)
        .optional()?)
}

pub(super) fn list(conn: &Connection, run_id: Option<&str>) -> Result<Vec<ApprovalRecord>> {
    let rows = match run_id {
        Some(run) => conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM approvals WHERE run_id = ?1 ORDER BY asked_at, id"
            ))?
            .query_map(params![run], record)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
        None => conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM approvals WHERE state = 'pending' ORDER BY asked_at, id"
            ))?
            .query_map([], record)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
    };
    Ok(rows)
}

pub(super) fn orphaned(conn: &Connection, at: &str) -> Result<Vec<ApprovalRecord>> {
    let rows = conn
        .prepare_cached(&format!(
            "UPDATE approvals SET state = 'lost', answered_via = 'rescuer', answered_at = ?1,
                 reason = 'the run ended while it waited (its host died or was stopped)'
             WHERE state = 'pending'
               AND run_id NOT IN (SELECT id FROM runs WHERE status = 'running')
             RETURNING {COLUMNS}"
        ))?
        .query_map(params![at], record)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

#[async_trait::async_trait]
impl ApprovalStore for Sqlite {
    async fn open_approval(&self, approval: ApprovalRecord) -> Result<()> {
        let approval = approval.cleaned();
        self.writer().write(move |tx| open(tx, &approval)).await
    }

    async fn set_approval_messages(
        &self,
        id: &str,
        messages: Vec<serde_json::Value>,
    ) -> Result<()> {
        let messages = messages.cleaned();
        let id = id.to_string();
        self.writer()
            .write(move |tx| set_messages(tx, &id, &messages))
            .await
    }

    async fn decide_approval(
        &self,
        id: &str,
        decision: Decision,
    ) -> Result<Option<ApprovalRecord>> {
        let decision = decision.cleaned();
        let id = id.to_string();
        self.writer()
            .write(move |tx| decide(tx, &id, &decision))
            .await
    }

    async fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>> {
        let id = id.to_string();
        self.blocking(move |conn| get(conn, &id)).await
    }

    async fn approvals(&self, run_id: Option<&str>) -> Result<Vec<ApprovalRecord>> {
        let run_id = run_id.map(String::from);
        self.blocking(move |conn| list(conn, run_id.as_deref()))
            .await
    }

    async fn orphaned_approvals(&self, at: &str) -> Result<Vec<ApprovalRecord>> {
        let at = at.to_string();
        self.writer().write(move |tx| orphaned(tx, &at)).await
    }
}
