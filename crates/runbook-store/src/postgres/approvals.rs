//! Approvals on PostgreSQL: one row per question; the first decision wins by
//! `state = 'pending'` in the UPDATE's WHERE (row locks order concurrent answers).

use anyhow::Result;
use tokio_postgres::Row;

use super::Postgres;
use super::runs::{execute, query, query_opt};
use crate::backend::ApprovalStore;
use crate::clean::Clean;
use crate::records::{ApprovalRecord, Decision};

const COLUMNS: &str = "id, run_id, playbook, grp, title, body, actions, state, asked_at, \
     expires_at, answered_by, answered_via, answered_at, reason, messages";

fn record(r: &Row) -> ApprovalRecord {
    let json = |i: usize| -> Vec<serde_json::Value> {
        serde_json::from_str(r.get::<_, &str>(i)).unwrap_or_default()
    };
    ApprovalRecord {
        id: r.get(0),
        run_id: r.get(1),
        playbook: r.get(2),
        group: r.get(3),
        title: r.get(4),
        body: r.get(5),
        actions: json(6)
            .into_iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        state: r.get(7),
        asked_at: r.get(8),
        expires_at: r.get(9),
        answered_by: r.get(10),
        answered_via: r.get(11),
        answered_at: r.get(12),
        reason: r.get(13),
        messages: json(14),
    }
}

pub(super) async fn open(pg: &Postgres, a: &ApprovalRecord) -> Result<()> {
    execute(
        &pg.client().await?,
        "INSERT INTO approvals (id, run_id, playbook, grp, title, body, actions, state,
             asked_at, expires_at, messages)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $10)",
        &[
            &a.id,
            &a.run_id,
            &a.playbook,
            &a.group,
            &a.title,
            &a.body,
            &serde_json::to_string(&a.actions)?,
            &a.asked_at,
            &a.expires_at,
            &serde_json::to_string(&a.messages)?,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn set_messages(
    pg: &Postgres,
    id: &str,
    messages: &[serde_json::Value],
) -> Result<()> {
    execute(
        &pg.client().await?,
        "UPDATE approvals SET messages = $2 WHERE id = $1",
        &[&id, &serde_json::to_string(messages)?],
    )
    .await?;
    Ok(())
}

pub(super) async fn decide(
    pg: &Postgres,
    id: &str,
    d: &Decision,
) -> Result<Option<ApprovalRecord>> {
    let row = query_opt(
        &pg.client().await?,
        &format!(
            "UPDATE approvals SET state = $2, answered_by = $3, answered_via = $4,
                 answered_at = $5, reason = $6
             WHERE id = $1 AND state = 'pending' RETURNING {COLUMNS}"
        ),
        &[&id, &d.state, &d.by, &d.via, &d.at, &d.reason],
    )
    .await?;
    Ok(row.as_ref().map(record))
}

pub(super) async fn get(pg: &Postgres, id: &str) -> Result<Option<ApprovalRecord>> {
    let row = query_opt(
        &pg.client().await?,
        &format!("SELECT {COLUMNS} FROM approvals WHERE id = $1"),
        &[&id],
    )
    .await?;
    Ok(row.as_ref().map(record))
}

pub(super) async fn list(pg: &Postgres, run_id: Option<&str>) -> Result<Vec<ApprovalRecord>> {
    let client = pg.client().await?;
    let rows = match run_id {
        Some(run) => {
            query(
                &client,
                &format!("SELECT {COLUMNS} FROM approvals WHERE run_id = $1 ORDER BY asked_at, id"),
                &[&run],
            )
            .await?
        }
        None => {
            query(
                &client,
                &format!(
                    "SELECT {COLUMNS} FROM approvals WHERE state = 'pending'
                     ORDER BY asked_at, id"
                ),
                &[],
            )
            .await?
        }
    };
    Ok(rows.iter().map(record).collect())
}

pub(super) async fn orphaned(pg: &Postgres, at: &str) -> Result<Vec<ApprovalRecord>> {
    let rows = query(
        &pg.client().await?,
        &format!(
            "UPDATE approvals SET state = 'lost', answered_via = 'rescuer', answered_at = $1,
                 reason = 'the run ended while it waited (its host died or was stopped)'
             WHERE state = 'pending'
               AND run_id NOT IN (SELECT id FROM runs WHERE status = 'running')
             RETURNING {COLUMNS}"
        ),
        &[&at],
    )
    .await?;
    Ok(rows.iter().map(record).collect())
}

#[async_trait::async_trait]
impl ApprovalStore for Postgres {
    async fn open_approval(&self, approval: ApprovalRecord) -> Result<()> {
        let approval = approval.cleaned();
        self.bounded("recording an approval", open(self, &approval))
            .await
    }

    async fn set_approval_messages(
        &self,
        id: &str,
        messages: Vec<serde_json::Value>,
    ) -> Result<()> {
        let messages = messages.cleaned();
        self.bounded(
            "recording an approval's messages",
            set_messages(self, id, &messages),
        )
        .await
    }

    async fn decide_approval(
        &self,
        id: &str,
        decision: Decision,
    ) -> Result<Option<ApprovalRecord>> {
        let decision = decision.cleaned();
        self.bounded("deciding an approval", decide(self, id, &decision))
            .await
    }

    async fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>> {
        self.bounded("reading an approval", get(self, id)).await
    }

    async fn approvals(&self, run_id: Option<&str>) -> Result<Vec<ApprovalRecord>> {
        self.bounded("listing approvals", list(self, run_id)).await
    }

    async fn orphaned_approvals(&self, at: &str) -> Result<Vec<ApprovalRecord>> {
        self.bounded("ending approvals of ended runs", orphaned(self, at))
            .await
    }
}
