//! The run queue's roles (`RunQueue`, `Leases`, `Alerts`) for this backend: each method
//! cleans what it stores, runs the statements in runs.rs, and wakes the claimers when a
//! slot or run may be free.

use std::time::Duration;

use anyhow::Result;

use super::{Postgres, listen, reads, runs, slots};
use crate::backend::{Alerts, Leases, RunQueue};
use crate::clean::Clean;
use crate::records::{Admit, Admitted, AlertRecord, QueuedRun, RunOutcome, UnfinishedRun};
use crate::{QueueDepths, SlotLimits, Untold, clean};

#[async_trait::async_trait]
impl RunQueue for Postgres {
    async fn insert_running(&self, run: QueuedRun, runner: &str, lease: Duration) -> Result<()> {
        let run = run.cleaned();
        self.bounded(
            "recording a run",
            runs::insert_running(self, run, runner, lease),
        )
        .await
    }

    async fn admit(&self, admit: Admit) -> Result<Admitted> {
        let admit = admit.cleaned();
        let admitted = self
            .bounded("admitting a run", self.admissions.admit(admit))
            .await?;
        if admitted == Admitted::Started {
            listen::wake(&self.queued);
            self.announcer.announce();
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
        // A wake left for a claimer between its claim and its wait is answered by this claim
        // (it sees every run committed before it): taken now, it would cost an empty claim.
        let _ = futures::FutureExt::now_or_never(self.queued.notified());
        self.bounded(
            "claiming queued runs",
            slots::claim(self, runner, None, max, limits, lease),
        )
        .await
    }

    async fn wait_for_queued(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.queued.notified()).await;
    }

    async fn finish(&self, outcome: RunOutcome) -> Result<()> {
        let outcome = outcome.cleaned();
        let id = outcome.run_id.clone();
        self.bounded(
            &format!("finishing run {id}"),
            self.finishes.finish(outcome, None),
        )
        .await?;
        listen::wake(&self.queued);
        self.announcer.announce();
        Ok(())
    }

    async fn end_unfinished(&self, id: &str, status: &str, reason: &str) -> Result<bool> {
        let reason = &*clean::text(reason);
        let ended = self
            .bounded(
                &format!("ending run {id}"),
                runs::end_unfinished(self, id, status, reason),
            )
            .await?;
        // Its slot is free.
        listen::wake(&self.queued);
        self.announcer.announce();
        Ok(ended)
    }

    async fn run_counts(&self) -> Result<(usize, usize)> {
        self.bounded("counting runs", reads::run_counts(self)).await
    }

    async fn queue_depths(&self, node: Option<&str>) -> Result<QueueDepths> {
        self.bounded("counting queued runs", reads::queue_depths(self, node))
            .await
    }
}

#[async_trait::async_trait]
impl Leases for Postgres {
    async fn renew_leases(&self, runner: &str, lease: Duration) -> Result<usize> {
        self.bounded("renewing leases", runs::renew_leases(self, runner, lease))
            .await
    }

    async fn expire_leases(&self) -> Result<usize> {
        let lost = self
            .bounded("expiring leases", runs::expire_leases(self))
            .await?;
        if lost > 0 {
            listen::wake(&self.queued);
            self.announcer.announce();
        }
        Ok(lost)
    }

    async fn take_lost_unnotified(&self, max: usize) -> Result<Vec<UnfinishedRun>> {
        self.bounded(
            "taking lost runs",
            runs::take_unnotified(self, Untold::Lost, max),
        )
        .await
    }
}

#[async_trait::async_trait]
impl Alerts for Postgres {
    async fn record_alerts(&self, alerts: Vec<AlertRecord>) -> Result<()> {
        let alerts = alerts.cleaned();
        self.bounded("recording alerts", runs::record_alerts(self, alerts))
            .await
    }

    async fn alerts(&self, limit: usize) -> Result<Vec<AlertRecord>> {
        self.bounded("listing alerts", reads::alerts(self, limit))
            .await
    }
}
