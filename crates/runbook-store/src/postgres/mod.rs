//! The PostgreSQL run store: any number of `host serve` replicas on one database. Every
//! decision that must hold across replicas is made by the database — a unique constraint
//! (admission keys, replay ids, outbox once-keys), `FOR UPDATE SKIP LOCKED` (claims, slots),
//! a guarded `UPDATE` (leases) — on the database's clock (`now()`). Every call is bounded
//! (pool wait, connect and statement timeouts, and an overall deadline): a database that is
//! down is an error quickly, never a caller stuck forever.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::Notify;
use tokio_postgres::NoTls;

use super::backend::{Appended, Backend, QueueDepths, RunFilter, SlotLimits};
use crate::Untold;
use crate::clean::{self, Clean};
use crate::records::{
    Admit, Admitted, AlertRecord, ApprovalRecord, Claim, Decision, Fired, Firing, FiringRecord,
    NewMessage, NodeRecord, OutboxRow, QueuedRun, RunOutcome, RunSummary, StoredRun, UnfinishedRun,
};

mod approvals;
mod cancel;
mod fleet;
mod listen;
mod outbox;
mod reads;
mod runs;
mod schedules;
mod schema;

pub const DEFAULT_POOL_SIZE: usize = 8;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a call waits for a pooled connection before it is an error.
const POOL_WAIT: Duration = Duration::from_secs(5);
/// Server side: no statement (or lock wait) runs longer.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Client side, the whole call: a server that stopped answering mid-call (no TCP reset)
/// still ends in an error.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Postgres {
    pool: Pool,
    describe: String,
    /// Woken by LISTEN/NOTIFY (any replica's admission or freed slot) and this process's own.
    queued: Arc<Notify>,
    listener: tokio::task::AbortHandle,
    announcer: listen::Announcer,
    /// Calls of `first_delivery` since replay ids were last pruned.
    replay_calls: std::sync::atomic::AtomicU32,
    /// Playbooks whose slot rows exist up to the limit given (created on first need).
    slots_made: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// tokio-postgres says "db error" and keeps the server's message in its source: put it in
/// the message, where logs and `host check` show it.
pub(super) fn pg_error(e: tokio_postgres::Error) -> anyhow::Error {
    match e.as_db_error() {
        Some(db) => anyhow!("{db}"),
        None => anyhow!(e),
    }
}

impl Postgres {
    /// Connects (a pool of [`DEFAULT_POOL_SIZE`]) and migrates the schema.
    pub async fn connect(url: &str) -> Result<Postgres> {
        Self::connect_sized(url, DEFAULT_POOL_SIZE).await
    }

    pub async fn connect_sized(url: &str, pool_size: usize) -> Result<Postgres> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| anyhow!("the store URL is not a PostgreSQL connection string: {e}"))?;
        // Ours after the URL's own `options`, so a URL cannot lift the statement timeout.
        let options = format!(
            "{} -c statement_timeout={}",
            config.get_options().unwrap_or(""),
            STATEMENT_TIMEOUT.as_millis()
        );
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives_idle(Duration::from_secs(30))
            .application_name("runbook-host")
            .options(options.trim_start());
        let describe = describe(&config);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .context("building the PostgreSQL connection pool")?;
        let migrated = tokio::time::timeout(CALL_TIMEOUT, async {
            let mut client = pool
                .get()
                .await
                .with_context(|| format!("connecting to the run store {describe}"))?;
            schema::migrate(&mut client, &describe).await
        });
        migrated.await.map_err(|_| {
            anyhow!(
                "the run store {describe} did not answer within {}s",
                CALL_TIMEOUT.as_secs()
            )
        })??;
        let queued = Arc::new(Notify::new());
        let listener = listen::spawn(config, queued.clone());
        Ok(Postgres {
            announcer: listen::Announcer::start(pool.clone()),
            pool,
            describe,
            queued,
            listener,
            replay_calls: Default::default(),
            slots_made: Default::default(),
        })
    }

    pub(super) async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .with_context(|| format!("the run store {} is unavailable", self.describe))
    }

    /// Runs one call under the overall deadline.
    async fn bounded<T>(&self, what: &str, call: impl Future<Output = Result<T>>) -> Result<T> {
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(result) => result.with_context(|| format!("run store ({}): {what}", self.describe)),
            Err(_) => bail!(
                "run store ({}): {what}: no answer within {}s",
                self.describe,
                CALL_TIMEOUT.as_secs()
            ),
        }
    }
}

/// `postgres user@host:port/db`: never the password.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or(user);
    format!("postgres {user}@{host}:{port}/{db}")
}

/// A key from outside (dedup and cooldown keys, webhook ids, once-keys) as an index entry: a
/// B-tree entry is bounded (about 2.7 KB), so a long key is kept as its SHA-256 — and so is a
/// short one that looks like such a digest, so that no key can pose as another.
fn index_key(key: &str) -> std::borrow::Cow<'_, str> {
    const MAX_BYTES: usize = 256;
    const DIGEST: &str = "sha256:";
    if key.len() <= MAX_BYTES && !key.starts_with(DIGEST) {
        return key.into();
    }
    use sha2::Digest;
    format!(
        "{DIGEST}{}",
        hex::encode(sha2::Sha256::digest(key.as_bytes()))
    )
    .into()
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[async_trait::async_trait]
impl Backend for Postgres {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn local_file(&self) -> Option<std::path::PathBuf> {
        None
    }

    async fn ping(&self) -> Result<Duration> {
        self.bounded("ping", async {
            let started = std::time::Instant::now();
            self.client()
                .await?
                .simple_query("SELECT 1")
                .await
                .map_err(pg_error)?;
            Ok(started.elapsed())
        })
        .await
    }

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
            .bounded("admitting a run", runs::admit(self, admit))
            .await?;
        if admitted == Admitted::Started {
            listen::wake(&self.queued);
            self.announcer.announce();
        }
        Ok(admitted)
    }

    async fn record_alerts(&self, alerts: Vec<AlertRecord>) -> Result<()> {
        let alerts = alerts.cleaned();
        self.bounded("recording alerts", runs::record_alerts(self, alerts))
            .await
    }

    async fn claim_queued(
        &self,
        runner: &str,
        max: usize,
        limits: &SlotLimits,
        lease: Duration,
    ) -> Result<Vec<QueuedRun>> {
        self.bounded(
            "claiming queued runs",
            runs::claim(self, runner, None, max, limits, lease),
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
            runs::finish(self, outcome, None),
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

    async fn cancel_run(&self, id: &str, by: &str) -> Result<crate::records::Cancelled> {
        let cancelled = self
            .bounded(
                &format!("cancelling run {id}"),
                cancel::cancel_run(self, id, by),
            )
            .await?;
        if matches!(cancelled, crate::records::Cancelled::Ended { .. }) {
            // A node run ended now frees its slot.
            listen::wake(&self.queued);
            self.announcer.announce();
        }
        Ok(cancelled)
    }

    async fn cancel_requests(&self, runner: &str) -> Result<Vec<(String, String)>> {
        self.bounded("reading cancel requests", cancel::requests(self, runner))
            .await
    }

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

    async fn claim_for_node(
        &self,
        node: &str,
        runner: &str,
        max: usize,
        limits: &SlotLimits,
        lease: Duration,
    ) -> Result<Vec<QueuedRun>> {
        self.bounded(
            "claiming a node's queued runs",
            runs::claim(self, runner, Some(node), max, limits, lease),
        )
        .await
    }

    async fn renew_held(
        &self,
        runner: &str,
        ids: &[String],
        lease: Duration,
    ) -> Result<Vec<String>> {
        self.bounded(
            "renewing held runs",
            fleet::renew_held(self, runner, ids, lease),
        )
        .await
    }

    async fn append_events(
        &self,
        run_id: &str,
        runner: &str,
        from: usize,
        events: Vec<String>,
        max_bytes: usize,
    ) -> Result<Appended> {
        let mut events = events;
        events.iter_mut().for_each(clean::clean_json_text);
        self.bounded(
            &format!("appending events of run {run_id}"),
            fleet::append_events(self, run_id, runner, from, events, max_bytes),
        )
        .await
    }

    async fn finish_held(&self, outcome: RunOutcome, runner: &str) -> Result<bool> {
        let outcome = outcome.cleaned();
        let id = outcome.run_id.clone();
        let written = self
            .bounded(
                &format!("finishing run {id}"),
                runs::finish(self, outcome, Some(runner)),
            )
            .await?;
        if written {
            // Its slot is free.
            listen::wake(&self.queued);
            self.announcer.announce();
        }
        Ok(written)
    }

    async fn node_seen(&self, node: &str, session: &str, version: &str) -> Result<()> {
        self.bounded(
            "recording a node",
            fleet::node_seen(self, node, session, version),
        )
        .await
    }

    async fn nodes(&self) -> Result<Vec<NodeRecord>> {
        self.bounded("listing nodes", fleet::nodes(self)).await
    }

    async fn expire_undelivered(&self, wait: Duration) -> Result<usize> {
        self.bounded(
            "expiring undelivered runs",
            fleet::expire_undelivered(self, wait),
        )
        .await
    }

    async fn take_undeliverable_unnotified(&self, max: usize) -> Result<Vec<UnfinishedRun>> {
        self.bounded(
            "taking undeliverable runs",
            runs::take_unnotified(self, Untold::Undeliverable, max),
        )
        .await
    }

    async fn fire(&self, firing: Firing) -> Result<Fired> {
        let firing = firing.cleaned();
        let fired = self
            .bounded(
                "recording a schedule's firing",
                schedules::fire(self, firing),
            )
            .await?;
        if fired == Fired::Started {
            listen::wake(&self.queued);
            self.announcer.announce();
        }
        Ok(fired)
    }

    async fn open_approval(&self, approval: ApprovalRecord) -> Result<()> {
        let approval = approval.cleaned();
        self.bounded("recording an approval", approvals::open(self, &approval))
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
            approvals::set_messages(self, id, &messages),
        )
        .await
    }

    async fn decide_approval(
        &self,
        id: &str,
        decision: Decision,
    ) -> Result<Option<ApprovalRecord>> {
        let decision = decision.cleaned();
        self.bounded(
            "deciding an approval",
            approvals::decide(self, id, &decision),
        )
        .await
    }

    async fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>> {
        self.bounded("reading an approval", approvals::get(self, id))
            .await
    }

    async fn approvals(&self, run_id: Option<&str>) -> Result<Vec<ApprovalRecord>> {
        self.bounded("listing approvals", approvals::list(self, run_id))
            .await
    }

    async fn orphaned_approvals(&self, at: &str) -> Result<Vec<ApprovalRecord>> {
        self.bounded(
            "ending approvals of ended runs",
            approvals::orphaned(self, at),
        )
        .await
    }

    async fn firings(&self, schedule: &str, limit: usize) -> Result<Vec<FiringRecord>> {
        self.bounded(
            "reading a schedule's firings",
            schedules::firings(self, schedule, limit),
        )
        .await
    }

    async fn list(&self, limit: usize, playbook: Option<&str>) -> Result<Vec<RunSummary>> {
        self.bounded("listing runs", reads::list(self, limit, playbook))
            .await
    }

    async fn list_page(&self, filter: &RunFilter) -> Result<Vec<RunSummary>> {
        self.bounded("listing runs", reads::list_page(self, filter))
            .await
    }

    async fn get(&self, id: &str) -> Result<Option<StoredRun>> {
        let id = &*clean::text(id);
        self.bounded("reading a run", reads::get(self, id)).await
    }

    async fn events_after(
        &self,
        id: &str,
        from: usize,
        limit: usize,
    ) -> Result<Option<crate::EventsPage>> {
        self.bounded(
            "reading a run's events",
            reads::events_after(self, id, from, limit),
        )
        .await
    }

    async fn alerts(&self, limit: usize) -> Result<Vec<AlertRecord>> {
        self.bounded("listing alerts", reads::alerts(self, limit))
            .await
    }

    async fn run_counts(&self) -> Result<(usize, usize)> {
        self.bounded("counting runs", reads::run_counts(self)).await
    }

    async fn queue_depths(&self, node: Option<&str>) -> Result<QueueDepths> {
        self.bounded("counting queued runs", reads::queue_depths(self, node))
            .await
    }

    async fn shared_secret(&self, name: &str, candidate: &str) -> Result<String> {
        self.bounded("reading a shared secret", async {
            let client = self.client().await?;
            runs::execute(
                &client,
                "INSERT INTO shared_secrets (name, value) VALUES ($1, $2)
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &candidate],
            )
            .await?;
            let row = runs::query_opt(
                &client,
                "SELECT value FROM shared_secrets WHERE name = $1",
                &[&name],
            )
            .await?
            .context("the shared secret vanished after it was stored")?;
            Ok(row.get(0))
        })
        .await
    }

    async fn first_delivery(&self, id: &str, window: Duration) -> Result<bool> {
        self.bounded(
            "checking a webhook id",
            outbox::first_delivery(self, id, window),
        )
        .await
    }

    async fn enqueue(&self, message: NewMessage, once_key: Option<String>) -> Result<i64> {
        let (message, once_key) = (message.cleaned(), once_key.cleaned());
        self.bounded(
            "queueing a message",
            outbox::enqueue(self, message, once_key),
        )
        .await
    }

    async fn claim_head(&self, channel: &str, lease: Duration) -> Result<Claim> {
        self.bounded(
            "claiming a message",
            outbox::claim_head(self, channel, lease),
        )
        .await
    }

    async fn mark_parts_sent(&self, id: i64, parts: i64) -> Result<()> {
        self.bounded(
            "updating a message",
            outbox::mark_parts_sent(self, id, parts),
        )
        .await
    }

    async fn mark_delivered(&self, id: i64) -> Result<()> {
        self.bounded("updating a message", outbox::mark_delivered(self, id))
            .await
    }

    async fn mark_retry(&self, id: i64, after: Duration, error: &str) -> Result<()> {
        let error = &*clean::text(error);
        self.bounded(
            "updating a message",
            outbox::mark_retry(self, id, after, error),
        )
        .await
    }

    async fn mark_failed(&self, id: i64, error: &str) -> Result<()> {
        let error = &*clean::text(error);
        self.bounded("updating a message", outbox::mark_failed(self, id, error))
            .await
    }

    async fn outbox_retry(&self, id: i64) -> Result<bool> {
        self.bounded("retrying a message", outbox::retry(self, id))
            .await
    }

    async fn outbox_for_run(&self, run_id: &str) -> Result<Vec<OutboxRow>> {
        self.bounded("reading the outbox", outbox::for_run(self, run_id))
            .await
    }

    async fn outbox_row(&self, id: i64) -> Result<Option<OutboxRow>> {
        self.bounded("reading the outbox", outbox::row(self, id))
            .await
    }

    async fn outbox_list(&self, state: Option<&str>, limit: usize) -> Result<Vec<OutboxRow>> {
        self.bounded("reading the outbox", outbox::list(self, state, limit))
            .await
    }

    async fn outbox_pending(&self) -> Result<Vec<(String, i64)>> {
        self.bounded("reading the outbox", outbox::pending(self))
            .await
    }

    async fn last_for_dedup_key(
        &self,
        channel: &str,
        dedup_key: &str,
    ) -> Result<Option<OutboxRow>> {
        let dedup_key = &*clean::text(dedup_key);
        self.bounded(
            "reading the outbox",
            outbox::last_for_dedup_key(self, channel, dedup_key),
        )
        .await
    }
}

#[cfg(test)]
pub(crate) mod tests;
