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

use crate::backend::{LinkSecurity, SharedState, StoreInfo};

mod access;
mod admission;
mod approvals;
mod budgets;
mod cancel;
mod figures;
mod finishes;
mod fleet;
mod listen;
mod outbox;
mod queue;
mod reads;
mod runs;
mod safety;
mod schedules;
mod schema;
mod slots;
mod sql;
mod tls;

pub use admission::DEFAULT_ADMISSION_BATCH;

pub const DEFAULT_POOL_SIZE: usize = 8;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a call waits for a pooled connection before it is an error.
const POOL_WAIT: Duration = Duration::from_secs(5);
/// Server side: no statement (or lock wait) runs longer.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Client side, the whole call: a server that stopped answering mid-call (no TCP reset)
/// still ends in an error.
/// A direct URL for LISTEN when the store URL names a pooler (which cannot carry it).
pub const LISTEN_URL: &str = "RUNBOOK_STORE_LISTEN_URL";
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Postgres {
    pool: sql::Connections,
    describe: String,
    link: tls::Link,
    /// Woken by LISTEN/NOTIFY (any replica's admission or freed slot) and this process's own.
    queued: Arc<Notify>,
    /// None behind a pooler with no `RUNBOOK_STORE_LISTEN_URL`: claimers poll.
    listener: Option<tokio::task::AbortHandle>,
    announcer: listen::Announcer,
    /// Calls of `first_delivery` since replay ids were last pruned.
    replay_calls: std::sync::atomic::AtomicU32,
    /// Playbooks whose slot rows exist up to the limit given (created on first need).
    slots_made: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    /// The group-commit writer every admission goes through.
    admissions: admission::Admissions,
    /// The writer every outcome goes through, batched likewise.
    finishes: finishes::Finishes,
}

/// Statements this process sent to PostgreSQL stores (BEGIN and COMMIT included), for the
/// test that counts what one run costs.
static STATEMENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub(super) fn count_statement() {
    STATEMENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// How many statements this process has sent to PostgreSQL so far.
pub fn statements_sent() -> u64 {
    STATEMENTS.load(std::sync::atomic::Ordering::Relaxed)
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(listener) = &self.listener {
            listener.abort();
        }
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
        Self::connect_tuned(url, pool_size, DEFAULT_ADMISSION_BATCH).await
    }

    /// A pool of `pool_size` connections; at most `admission_batch` admissions per
    /// transaction.
    pub async fn connect_tuned(
        url: &str,
        pool_size: usize,
        admission_batch: usize,
    ) -> Result<Postgres> {
        let listen_url = std::env::var(LISTEN_URL).ok().filter(|v| !v.is_empty());
        Self::open(url, listen_url.as_deref(), pool_size, admission_batch).await
    }

    /// `listen_url`: where to LISTEN, if not on the store URL's own server.
    async fn open(
        url: &str,
        listen_url: Option<&str>,
        pool_size: usize,
        admission_batch: usize,
    ) -> Result<Postgres> {
        let (mut config, link) = tls::split(url)?;
        let connector = link.connector()?;
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives_idle(Duration::from_secs(30))
            .application_name("runbook-host");
        if link.pooler {
            // A transaction-mode pooler refuses start-up options (and would not keep them for
            // us): the timeout is set in every transaction instead (sql.rs).
            if config.get_options().is_some() {
                bail!(
                    "the store URL has `options` and `pgbouncer=true`: a pooler takes no start-up options"
                );
            }
        } else {
            // Ours after the URL's own `options`, so a URL cannot lift the statement timeout.
            let options = format!(
                "{} -c statement_timeout={}",
                config.get_options().unwrap_or(""),
                STATEMENT_TIMEOUT.as_millis()
            );
            config.options(options.trim_start());
        }
        let describe = describe(&config);
        let manager = Manager::from_config(
            config.clone(),
            connector.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = sql::Connections {
            pooled: link.pooler,
            pool: Pool::builder(manager)
                .max_size(pool_size.max(1))
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(POOL_WAIT))
                .create_timeout(Some(CONNECT_TIMEOUT))
                .recycle_timeout(Some(CONNECT_TIMEOUT))
                .build()
                .context("building the PostgreSQL connection pool")?,
        };
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            _ => String::new(),
        };
        let migrated = tokio::time::timeout(CALL_TIMEOUT, async {
            let mut client = match pool.get().await {
                Ok(client) => client,
                Err(e) => {
                    let e = anyhow::Error::new(e);
                    return Err(
                        match link.explain(&e, &host).or_else(|| pooler_hint(&e, &link)) {
                            Some(why) => anyhow!("connecting to the run store {describe}: {why}"),
                            None => e.context(format!("connecting to the run store {describe}")),
                        },
                    );
                }
            };
            schema::migrate(&mut client, &describe).await
        });
        migrated.await.map_err(|_| {
            anyhow!(
                "the run store {describe} did not answer within {}s",
                CALL_TIMEOUT.as_secs()
            )
        })??;
        let queued = Arc::new(Notify::new());
        let origin = listen::origin();
        let listener = match listen_url {
            Some(url) => {
                let (config, link) = tls::split(url).context(LISTEN_URL)?;
                let connector = link.connector()?;
                Some(listen::spawn(
                    config,
                    connector,
                    queued.clone(),
                    origin.clone(),
                ))
            }
            // LISTEN is session state a transaction-mode pooler cannot carry.
            None if link.pooler => None,
            None => Some(listen::spawn(
                config,
                connector,
                queued.clone(),
                origin.clone(),
            )),
        };
        Ok(Postgres {
            admissions: admission::Admissions::start(pool.clone(), admission_batch),
            finishes: finishes::Finishes::start(pool.clone()),
            announcer: listen::Announcer::start(pool.clone(), origin),
            pool,
            describe,
            link,
            queued,
            listener,
            replay_calls: Default::default(),
            slots_made: Default::default(),
        })
    }

    pub(super) async fn client(&self) -> Result<sql::Conn> {
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

/// A pooler that refused our start-up options (PgBouncer: "unsupported startup parameter")
/// says what it is: name the setting that fixes it.
fn pooler_hint(e: &anyhow::Error, link: &tls::Link) -> Option<String> {
    let text = format!("{e:#}");
    (!link.pooler && text.contains("unsupported startup parameter")).then(|| {
        format!("{text}; this looks like a connection pooler (PgBouncer): add `pgbouncer=true` to the store URL (`?pgbouncer=true`)")
    })
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
impl StoreInfo for Postgres {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn local_file(&self) -> Option<std::path::PathBuf> {
        None
    }

    fn link_security(&self) -> Option<LinkSecurity> {
        Some(self.link.security())
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
}

#[async_trait::async_trait]
impl SharedState for Postgres {
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
}

#[cfg(test)]
pub(crate) mod tests;
