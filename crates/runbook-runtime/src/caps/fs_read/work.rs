//! How fs-read work runs on tokio's blocking pool without outliving its run: a slot per call
//! (at most a few per run, a fixed number for the whole host, so abandoned work can never take
//! every blocking thread), and a budget every loop checks, which ends when the call's time
//! budget or the run's deadline passes or the waiting future is dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::bindings::CapError;

/// Blocking fs-read calls running at once over the whole host.
pub const GLOBAL_SLOTS: usize = 16;
/// Blocking fs-read calls of one run at once (a call abandoned at the deadline holds its slot
/// until it has noticed).
pub const RUN_SLOTS: usize = 2;
/// Longest one call may work, whatever the run's deadline.
pub const CALL_TIME_BUDGET: Duration = Duration::from_secs(10);

static GLOBAL: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(GLOBAL_SLOTS)));

/// Why work stopped before it was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Nobody waits for the result any more (the run's deadline dropped the call).
    Cancelled,
    OutOfTime,
}

/// Checked inside every loop of the work.
#[derive(Clone)]
pub struct Budget {
    cancelled: Arc<AtomicBool>,
    until: Instant,
}

impl Budget {
    pub fn new(run_deadline: Instant) -> Self {
        Self {
            cancelled: Arc::new(AtomicBool::new(false)),
            until: run_deadline.min(Instant::now() + CALL_TIME_BUDGET),
        }
    }

    pub fn check(&self) -> Result<(), Stop> {
        if self.cancelled.load(Ordering::Relaxed) {
            Err(Stop::Cancelled)
        } else if Instant::now() >= self.until {
            Err(Stop::OutOfTime)
        } else {
            Ok(())
        }
    }

    /// `check` without looking at the clock, for loops that look at it every so often.
    pub fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// `check` as the call's error: `timeout` naming what was being done.
    pub fn check_call(&self, doing: &str) -> Result<(), CapError> {
        self.check().map_err(|stop| stop.error(doing))
    }
}

impl Stop {
    pub fn error(self, doing: &str) -> CapError {
        match self {
            Stop::Cancelled => {
                CapError::Timeout(format!("{doing}: cancelled at the run's deadline"))
            }
            Stop::OutOfTime => CapError::Timeout(format!(
                "{doing}: stopped at the call's time budget ({}s) or the run's deadline",
                CALL_TIME_BUDGET.as_secs()
            )),
        }
    }
}

/// Cancels the budget when dropped: when the call's future ends or is dropped mid-wait.
struct CancelOnDrop(Budget);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Runs `work` on the blocking pool under a run slot and a global slot, each held until the
/// work has really ended. Waiting for a slot ends at the run's deadline like everything else.
pub async fn run_blocking<T: Send + 'static>(
    run_slots: &Arc<Semaphore>,
    run_deadline: Instant,
    work: impl FnOnce(&Budget) -> Result<T, CapError> + Send + 'static,
) -> Result<T, CapError> {
    let busy = || CapError::Timeout("every fs-read worker stayed busy until the deadline".into());
    let deadline = tokio::time::Instant::from_std(run_deadline);
    let run_slot = tokio::time::timeout_at(deadline, run_slots.clone().acquire_owned())
        .await
        .map_err(|_| busy())?
        .expect("the run's semaphore is never closed");
    let global_slot = tokio::time::timeout_at(deadline, GLOBAL.clone().acquire_owned())
        .await
        .map_err(|_| busy())?
        .expect("the global semaphore is never closed");
    let budget = Budget::new(run_deadline);
    let _cancel = CancelOnDrop(budget.clone());
    tokio::task::spawn_blocking(move || {
        let _slots = (run_slot, global_slot);
        work(&budget)
    })
    .await
    .unwrap_or_else(|e| Err(CapError::Failed(format!("fs-read worker failed: {e}"))))
}

pub fn run_slots() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(RUN_SLOTS))
}
