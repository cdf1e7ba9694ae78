//! Stopping runs on request (`Backend::cancel_run`) on PostgreSQL: the run's row is locked
//! while its status is read and changed, so two requests (or a request and the run's end,
//! or its claim) on different replicas are decided one after the other.

use anyhow::Result;

use super::runs::{execute, free_slot, query, query_opt};
use super::{Postgres, listen};
use crate::backend::Cancels;
use crate::records::{Cancelled, RunStatus, cancel_event, cancelled_by};

pub(super) async fn cancel_run(pg: &Postgres, id: &str, by: &str) -> Result<Cancelled> {
    let mut client = pg.client().await?;
    let tx = super::sql::begin(&mut client).await?;
    let row = query_opt(
        &tx,
        "SELECT status, playbook, node, cancel_by, started_at FROM runs WHERE id = $1 FOR UPDATE",
        &[&id],
    )
    .await?;
    let Some(row) = row else {
        return Ok(Cancelled::NotFound);
    };
    let status: RunStatus = row
        .get::<_, String>(0)
        .parse()
        .map_err(anyhow::Error::msg)?;
    let playbook: String = row.get(1);
    let node: Option<String> = row.get(2);
    let asked: Option<String> = row.get(3);
    let started_at: String = row.get(4);
    let cancelled = match (status, node, asked) {
        (RunStatus::Running, _, Some(by)) => Cancelled::AlreadyAsked { by },
        (RunStatus::Running, None, None) => {
            execute(
                &tx,
                "UPDATE runs SET cancel_by = $2 WHERE id = $1",
                &[&id, &by],
            )
            .await?;
            Cancelled::Asked { playbook }
        }
        // Not started, or executed by an agent that writes only while it holds the run.
        (RunStatus::Queued, _, _) | (RunStatus::Running, Some(_), None) => {
            execute(
                &tx,
                "UPDATE runs SET status = 'cancelled', reason = $2, summary = $2,
                     ended_at = runbook_now_text(), cancel_by = $3, lease_until = NULL
                 WHERE id = $1",
                &[&id, &cancelled_by(by), &by],
            )
            .await?;
            execute(
                &tx,
                "INSERT INTO events (run_id, seq, event)
                 SELECT $1, coalesce(max(seq) + 1, 0), $2 FROM events WHERE run_id = $1",
                &[&id, &cancel_event(by, &started_at)],
            )
            .await?;
            free_slot(&tx, id).await?;
            Cancelled::Ended { playbook }
        }
        (ended, _, _) => Cancelled::Over(ended),
    };
    super::sql::commit(tx).await?;
    Ok(cancelled)
}

pub(super) async fn requests(pg: &Postgres, runner: &str) -> Result<Vec<(String, String)>> {
    let rows = query(
        &pg.client().await?,
        "SELECT id, cancel_by FROM runs
         WHERE runner = $1 AND status = 'running' AND cancel_by IS NOT NULL",
        &[&runner],
    )
    .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

#[async_trait::async_trait]
impl Cancels for Postgres {
    async fn cancel_run(&self, id: &str, by: &str) -> Result<crate::records::Cancelled> {
        let cancelled = self
            .bounded(&format!("cancelling run {id}"), cancel_run(self, id, by))
            .await?;
        if matches!(cancelled, crate::records::Cancelled::Ended { .. }) {
            // A node run ended now frees its slot.
            listen::wake(&self.queued);
            self.announcer.announce();
        }
        Ok(cancelled)
    }

    async fn cancel_requests(&self, runner: &str) -> Result<Vec<(String, String)>> {
        self.bounded("reading cancel requests", requests(self, runner))
            .await
    }
}
