//! Figures over a window of runs for the digest and the console's dashboard: the counting is
//! SQL on indexed columns (`runs_figures`), the shaping one shared function
//! (`runbook_core::figures::assemble`), so both backends give the same figures.

use anyhow::Result;

use crate::figures::{Figures, SeededRun, Window};

/// Owns nothing new: reads over runs, alerts, approvals and the runs' mutating calls.
#[async_trait::async_trait]
pub trait FigureStore: Send + Sync {
    /// The figures of the runs accepted in the window (and alerts received, questions asked
    /// in it).
    async fn figures(&self, window: &Window) -> Result<Figures>;

    /// Writes finished (or running, or lost) runs whole with the times given, in one
    /// transaction: for tests and benches that need a store holding known runs.
    async fn seed_runs(&self, runs: Vec<SeededRun>) -> Result<()>;
}
