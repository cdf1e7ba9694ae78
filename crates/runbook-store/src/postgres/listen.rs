//! One dedicated connection per process LISTENs on `runbook_queued`: any replica's admission
//! (or a freed slot) wakes this process's claimers at once instead of at their next poll.
//! It reconnects on its own; while it is down, claimers fall back to their poll timeout.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use futures::StreamExt;
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

pub(super) const CHANNEL: &str = "runbook_queued";

/// At most one NOTIFY per this long from one process, however many runs it queued or freed.
const COALESCE: Duration = Duration::from_millis(20);

/// Tells every replica's listener that runs may be waiting, after the fact and coalesced: a
/// NOTIFY inside a transaction takes a database-wide lock at commit, so one per admission
/// serialised every replica's commits (two replicas' intake fell below one's).
pub(super) struct Announcer {
    wanted: Arc<Notify>,
    task: tokio::task::AbortHandle,
}

/// This store's name in its NOTIFYs (process and instance: digits and a dot, safe in SQL),
/// so its own listener can skip them: every announcement follows a wake of this process's
/// own claimers, and a second wake would cost each of them an empty claim.
pub(super) fn origin() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let instance = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}.{instance}", std::process::id())
}

impl Announcer {
    pub(super) fn start(pool: super::sql::Connections, origin: String) -> Announcer {
        let wanted = Arc::new(Notify::new());
        let asked = wanted.clone();
        let notify = format!("NOTIFY {CHANNEL}, '{origin}'");
        let task = tokio::spawn(async move {
            loop {
                asked.notified().await;
                // A NOTIFY lost to a failing database costs the others one poll interval.
                if let Ok(client) = pool.get().await {
                    let _ = client.batch_execute(&notify).await;
                }
                tokio::time::sleep(COALESCE).await;
            }
        })
        .abort_handle();
        Announcer { wanted, task }
    }

    /// Asks for a NOTIFY soon (requests in the meantime share it).
    pub(super) fn announce(&self) {
        self.wanted.notify_one();
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Wakes whoever waits now, and leaves a permit for a claimer that is between its claim and
/// its next wait (a spurious wake costs one empty claim; a lost one costs a poll interval).
pub(super) fn wake(queued: &Notify) {
    queued.notify_waiters();
    queued.notify_one();
}

/// Runs until aborted (the store is dropped).
pub(super) fn spawn(
    config: tokio_postgres::Config,
    connector: MakeRustlsConnect,
    queued: Arc<Notify>,
    origin: String,
) -> tokio::task::AbortHandle {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            match listen(&config, &connector, &queued, &origin).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => tracing::warn!("run store: LISTEN {CHANNEL}: {e:#}; reconnecting"),
            }
            // Notifications sent while we were away are gone: let claimers look.
            wake(&queued);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    })
    .abort_handle()
}

/// One connection's life: LISTEN, then forward notifications until it closes.
async fn listen(
    config: &tokio_postgres::Config,
    connector: &MakeRustlsConnect,
    queued: &Notify,
    origin: &str,
) -> Result<()> {
    let (client, mut connection) = config.connect(connector.clone()).await?;
    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
    // The connection only makes progress while polled: drive it while LISTEN is sent.
    let listen = format!("LISTEN {CHANNEL}");
    let listening = client.batch_execute(&listen);
    tokio::pin!(listening);
    let mut listened = false;
    loop {
        tokio::select! {
            done = &mut listening, if !listened => {
                done?;
                listened = true;
                // Anything queued before LISTEN took effect.
                wake(queued);
            }
            message = messages.next() => match message {
                // Our own announcement: our claimers were woken when it was asked for.
                Some(Ok(AsyncMessage::Notification(n))) if n.payload() == origin => {}
                Some(Ok(AsyncMessage::Notification(_))) => wake(queued),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
        }
    }
}
