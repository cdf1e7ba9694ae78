//! Storm-safe remediation's shared state: action budgets (how many mutating calls of a kind
//! were made on one container, node, playbook or overall within a window, across every process
//! on the store) and the freeze switch (every mutating call is a dry run while it is on).

use std::time::Duration;

use anyhow::Result;

/// One use to take from a budget: the budget's name, what it counts for (a container's
/// name, a node, a playbook, or "" for a global budget), and its ceiling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetTake {
    pub budget: String,
    pub key: String,
    pub max: u32,
    pub within: Duration,
}

/// What `take_budgets` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetAnswer {
    /// Every budget had room: one use was counted in each.
    Taken,
    /// This budget is spent (nothing was counted in any): `used` uses within its window, the
    /// oldest of which leaves it in `frees_in`.
    Over {
        budget: String,
        key: String,
        used: u32,
        frees_in: Duration,
    },
}

/// A budget's use for one key, as `host budgets` and the console show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetUse {
    pub budget: String,
    pub key: String,
    pub used: u32,
    /// When the oldest use in the window leaves it (one use frees up).
    pub frees_in: Duration,
}

/// The freeze switch when it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freeze {
    pub by: String,
    pub reason: String,
    /// RFC 3339.
    pub since: String,
}

/// Keys kept per budget in `budget_uses` answers: the busiest first.
pub const MAX_USE_ROWS: usize = 200;

/// Owns action budgets and the freeze switch.
#[async_trait::async_trait]
pub trait Budgets: Send + Sync {
    /// Counts one use in each budget of `takes` if every one of them has fewer than its `max`
    /// uses within its window (the store's clock), else counts nothing and says which is spent.
    /// One transaction: two replicas never both take a budget's last use.
    async fn take_budgets(&self, takes: &[BudgetTake], run_id: &str) -> Result<BudgetAnswer>;

    /// Each budget's use within its window, per key (at most [`MAX_USE_ROWS`] keys a budget).
    async fn budget_uses(&self, budgets: &[(String, Duration)]) -> Result<Vec<BudgetUse>>;

    /// Turns the freeze switch on (`Some`, replacing an earlier reason) or off (`None`).
    async fn set_freeze(&self, freeze: Option<Freeze>) -> Result<()>;

    async fn freeze_state(&self) -> Result<Option<Freeze>>;
}
