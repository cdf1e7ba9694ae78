//! Stopping a run on request: `host runs cancel ID`, `POST /runs/{id}/cancel` and the console's
//! Cancel button all record the request in the store (`Backend::cancel_run`). A queued run
//! ends there and then; a running one is stopped by the process executing it, which learns of
//! the request from its own registry (the same process: at once) or from the store (any other
//! process: within `POLL`). The run's future is dropped at its next await — a capability call
//! in flight (docker, http, an approval wait) or the yield at every epoch tick — and the run
//! ends `cancelled`, saying who asked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::Store;

pub mod cli;

/// How often a process with runs executing asks the store whether one should stop.
pub const POLL: Duration = Duration::from_millis(500);

/// A run executing in this process, as the registry knows it.
struct Entry {
    token: CancellationToken,
    by: Arc<Mutex<Option<String>>>,
}

fn registry() -> &'static Mutex<HashMap<String, Entry>> {
    static RUNS: OnceLock<Mutex<HashMap<String, Entry>>> = OnceLock::new();
    RUNS.get_or_init(Default::default)
}

/// A run's stop signal for as long as it executes here; unregistered when dropped.
pub struct Registered {
    run_id: String,
    token: CancellationToken,
    by: Arc<Mutex<Option<String>>>,
}

impl Registered {
    /// Resolves with who asked, once someone asks this run to stop.
    pub async fn cancelled(&self) -> String {
        self.token.cancelled().await;
        self.by.lock().unwrap().clone().unwrap_or_default()
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        registry().lock().unwrap().remove(&self.run_id);
    }
}

/// Registers a run about to execute in this process.
pub fn register(run_id: &str) -> Registered {
    let token = CancellationToken::new();
    let by = Arc::new(Mutex::new(None));
    registry().lock().unwrap().insert(
        run_id.to_string(),
        Entry {
            token: token.clone(),
            by: by.clone(),
        },
    );
    Registered {
        run_id: run_id.to_string(),
        token,
        by,
    }
}

/// Stops the run if it executes in this process; false otherwise. The first asker is kept.
pub fn signal(run_id: &str, by: &str) -> bool {
    let runs = registry().lock().unwrap();
    let Some(entry) = runs.get(run_id) else {
        return false;
    };
    entry
        .by
        .lock()
        .unwrap()
        .get_or_insert_with(|| by.to_string());
    entry.token.cancel();
    true
}

/// Runs executing in this process now.
fn executing() -> usize {
    registry().lock().unwrap().len()
}

/// Looks in the store every `POLL` for requests to stop the runs this process holds, and
/// signals them; asks nothing while none executes. Until aborted.
pub fn watch(store: Arc<Store>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(POLL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            every.tick().await;
            if executing() == 0 {
                continue;
            }
            match store.cancel_requests(crate::store::this_runner()).await {
                Ok(requests) => {
                    failing = false;
                    for (run_id, by) in requests {
                        signal(&run_id, &by);
                    }
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!("looking for runs asked to stop: {e:#}");
                }
                Err(_) => {}
            }
        }
    })
}

/// The questions a cancelled run was still waiting on end `rejected` by whoever cancelled it
/// (reason "the run was cancelled"), and their messages say so: no one is left approving an
/// action that will never happen. Failures are logged; the run's end stands.
pub async fn close_questions(
    approvals: Option<Arc<crate::approval::Approvals>>,
    run_id: &str,
    by: &str,
) {
    let Some(approvals) = approvals else { return };
    let store = approvals.store().clone();
    let pending = match store.approvals(Some(run_id)).await {
        Ok(asked) => asked.into_iter().filter(|a| a.state == "pending"),
        Err(e) => {
            tracing::warn!("run {run_id}: closing its questions after the cancel: {e:#}");
            return;
        }
    };
    for question in pending {
        let decision = crate::records::Decision {
            state: "rejected",
            by: Some(by.to_string()),
            via: by.split(':').next().unwrap_or("cancel").to_string(),
            reason: Some("the run was cancelled".into()),
            at: crate::records::now_rfc3339(),
        };
        match store.decide_approval(&question.id, decision).await {
            Ok(Some(record)) => approvals.show_decision(&record).await,
            Ok(None) => {}
            Err(e) => tracing::warn!("run {run_id}: closing question {}: {e:#}", question.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_registered_run_hears_who_stopped_it_and_only_it() {
        let run = register("c-one");
        let other = register("c-two");
        assert!(!signal("c-unknown", "cli:bob"));
        assert!(signal("c-one", "console:alice"));
        // A second asker does not rewrite who stopped it.
        assert!(signal("c-one", "api:token"));
        let by = tokio::time::timeout(Duration::from_secs(1), run.cancelled()).await;
        assert_eq!(by.unwrap(), "console:alice");
        let still = tokio::time::timeout(Duration::from_millis(50), other.cancelled()).await;
        assert!(still.is_err(), "the other run was not asked");
        drop(run);
        assert!(!signal("c-one", "cli:bob"), "unregistered when dropped");
    }
}
