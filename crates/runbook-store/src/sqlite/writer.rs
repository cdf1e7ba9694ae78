//! Group commit: one thread writes the server's hot paths (admissions, runs starting and
//! ending) into the store, many requests per transaction and per fsync. A request is answered
//! only after its batch committed, so "stored" still means "on disk"; the async runtime's
//! threads never wait on SQLite, they await the answer.
//!
//! Each request runs inside its own savepoint: one failing request leaves the others of its
//! batch alone. Requests are applied in arrival order in one connection, so a request sees what
//! the requests before it in the same batch wrote (dedup stays exactly-once without a lock).

use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

/// Most requests in one transaction: bounds how long one commit holds the connection.
const MAX_BATCH: usize = 1024;
/// Requests waiting for the writer; senders beyond it wait (backpressure, not memory).
const QUEUE: usize = 8192;

/// Applies a request inside the open transaction (or is told there is none) and returns
/// whether it succeeded and how to answer once the batch's fate is known.
type Job = Box<dyn FnOnce(Result<&Transaction<'_>, &str>) -> (bool, Reply) + Send>;
/// Called with the commit's error, if any.
type Reply = Box<dyn FnOnce(Option<&str>) + Send>;

pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    pub(super) fn start(conn: Arc<Mutex<Connection>>) -> Result<Writer> {
        let (jobs, queue) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || write_batches(&conn, queue))?;
        Ok(Writer { jobs })
    }

    /// Runs `op` in the writer's next transaction and returns its result once committed.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |tx| {
            let result = match tx {
                Ok(tx) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(tx)))
                    .unwrap_or_else(|panic| {
                        Err(anyhow!(
                            "panic in the store: {}",
                            crate::panics::panic_message(&*panic)
                        ))
                    }),
                Err(e) => Err(anyhow!("{e}")),
            };
            let ok = result.is_ok();
            let reply: Reply = Box::new(move |commit_error| {
                let _ = answer.send(match commit_error {
                    Some(e) if ok => Err(anyhow!("committing to the run store: {e}")),
                    _ => result,
                });
            });
            (ok, reply)
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| anyhow!("the run store's writer has stopped"))?;
        answered
            .await
            .map_err(|_| anyhow!("the run store's writer dropped the request"))?
    }
}

/// The writer thread: waits for a request, takes whatever else is waiting (up to a batch),
/// commits them together, answers them all. Ends when the store is dropped.
fn write_batches(conn: &Mutex<Connection>, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(job) = queue.blocking_recv() {
        batch.push(job);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let replies = {
            let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            commit(&mut conn, batch.drain(..))
        };
        for (reply, commit_error) in replies {
            reply(commit_error.as_deref());
        }
    }
}

/// Savepoint statements run twice per request: parsed once.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

fn commit(conn: &mut Connection, jobs: impl Iterator<Item = Job>) -> Vec<(Reply, Option<String>)> {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let e = format!("opening a transaction in the run store: {e}");
            return jobs.map(|job| (job(Err(&e)).1, None)).collect();
        }
    };
    let mut replies = Vec::new();
    for job in jobs {
        // A failed request's partial writes go; the batch's other requests stay.
        let reply = match run_cached(&tx, "SAVEPOINT request") {
            Ok(()) => {
                let (ok, reply) = job(Ok(&tx));
                let ended = if ok {
                    run_cached(&tx, "RELEASE request")
                } else {
                    run_cached(&tx, "ROLLBACK TO request")
                        .and_then(|()| run_cached(&tx, "RELEASE request"))
                };
                if let Err(e) = ended {
                    tracing::warn!("run store: ending a savepoint: {e}");
                }
                reply
            }
            Err(e) => job(Err(&format!("opening a savepoint in the run store: {e}"))).1,
        };
        replies.push(reply);
    }
    let commit_error = tx.commit().err().map(|e| e.to_string());
    if let Some(e) = &commit_error {
        tracing::warn!("run store: a batch of {} writes failed: {e}", replies.len());
    }
    replies
        .into_iter()
        .map(|reply| (reply, commit_error.clone()))
        .collect()
}
