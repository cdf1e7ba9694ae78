//! The run queue's roles (`RunQueue`, `Leases`, `Alerts`) for this backend: each method
//! cleans what it stores, runs the statements in runs.rs, and wakes the claimers when a
//! slot or run may be free.

use std::time::Duration;

use anyhow::Result;

use super::{Sqlite, millis, runs};
use crate::backend::{Alerts, Leases, RunQueue};
use crate::clean::Clean;
use crate::records::{Admit, Admitted, AlertRecord, QueuedRun, RunOutcome, UnfinishedRun};
use crate::{QueueDepths, SlotLimits, Untold, clean};

#[async_trait::async_trait]
impl RunQueue for Sqlite {
    async fn insert_running(&self, run: QueuedRun, runner: &str, lease: Duration) -> Result<()> {
        let run = run.cleaned();
        let runner = runner.to_string();
        self.blocking(move |conn| {
            let until = runs::now_ms() + millis(lease);
            runs::insert_run(conn, &run, None, Some((&runner, until)))
        })
        .await
    }

    async fn admit(&self, admit: Admit) -> Result<Admitted> {
        let admit = admit.cleaned();
        let admitted = self
            .writer()
            .write(move |tx| runs::admit(tx, admit))
            .await?;
        if admitted == Admitted::Started {
            self.wake_claimers();
        }
        Ok(admitted)
    }

    async fn claim_queued(
        &self,
        runner: &str,
        max: usize,
        limits: &SlotLimits,
        lease: Duration,
    ) -> Result<Vec<QueuedRun>> {
        let (runner, limits) = (runner.to_string(), limits.clone());
        self.writer()
            .write(move |tx| runs::claim(tx, &runner, None, max, &limits, millis(lease)))
            .await
    }

    async fn wait_for_queued(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.queued.notified()).await;
    }

    async fn finish(&self, outcome: RunOutcome) -> Result<()> {
        let outcome = outcome.cleaned();
        self.writer()
            .write(move |tx| runs::write_outcome(tx, &outcome))
            .await?;
        self.wake_claimers();
        Ok(())
    }

    async fn end_unfinished(&self, id: &str, status: &str, reason: &str) -> Result<bool> {
        let reason = &*clean::text(reason);
        let (id, status, reason) = (id.to_string(), status.to_string(), reason.to_string());
        let ended = self
            .writer()
            .write(move |tx| runs::end_unfinished(tx, &id, &status, &reason))
            .await?;
        self.wake_claimers();
        Ok(ended)
    }

    async fn run_counts(&self) -> Result<(usize, usize)> {
        self.blocking(|conn| runs::run_counts(conn)).await
    }

    async fn queue_depths(&self, node: Option<&str>) -> Result<QueueDepths> {
        let node = node.map(String::from);
        self.blocking(move |conn| runs::queue_depths(conn, node.as_deref()))
            .await
    }
}

#[async_trait::async_trait]
impl Leases for Sqlite {
    async fn renew_leases(&self, runner: &str, lease: Duration) -> Result<usize> {
        let runner = runner.to_string();
        self.writer()
            .write(move |tx| runs::renew(tx, &runner, millis(lease)))
            .await
    }

    async fn expire_leases(&self) -> Result<usize> {
        let expired = self.writer().write(|tx| runs::expire(tx)).await?;
        if expired > 0 {
            self.wake_claimers();
        }
        Ok(expired)
    }

    async fn take_lost_unnotified(&self, max: usize) -> Result<Vec<UnfinishedRun>> {
        self.writer()
            .write(move |tx| runs::take_unnotified(tx, Untold::Lost, max))
            .await
    }
}

#[async_trait::async_trait]
impl Alerts for Sqlite {
    async fn record_alerts(&self, alerts: Vec<AlertRecord>) -> Result<()> {
        let alerts = alerts.cleaned();
        self.writer()
            .write(move |tx| alerts.iter().try_for_each(|a| runs::insert_alert(tx, a)))
            .await
    }

    async fn alerts(&self, limit: usize) -> Result<Vec<AlertRecord>> {
        self.blocking(move |conn| runs::alerts(conn, limit)).await
    }
}
