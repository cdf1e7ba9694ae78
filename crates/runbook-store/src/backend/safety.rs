//! Two safety rails' state, shared by every replica on the store: circuit breakers per
//! playbook and operators' ad hoc maintenance windows (config windows live in host.toml).

use anyhow::Result;

use crate::safety::{BreakerCheck, BreakerRule, BreakerState, NewWindow, WindowRecord};

/// Owns the breakers: one row per playbook that ever opened; failures are counted from runs.
#[async_trait::async_trait]
pub trait Breakers: Send + Sync {
    /// On the admission path of a playbook with a breaker: open (held) or closed, on the
    /// store's clock. Closed, it counts the playbook's runs that ended `failed` or `escalated`
    /// within `rule.within` and since it last closed (one indexed count); at `rule.failures`
    /// it opens for `rule.cool_down`, under the playbook's key, so exactly one caller across
    /// every replica gets `Opened` per opening.
    async fn breaker_check(&self, playbook: &str, rule: &BreakerRule) -> Result<BreakerCheck>;

    /// Closes an open breaker now (failures before now no longer count); false when it was
    /// not open.
    async fn breaker_reset(&self, playbook: &str, by: &str) -> Result<bool>;

    /// Every breaker that ever opened, by playbook.
    async fn breakers(&self) -> Result<Vec<BreakerState>>;
}

/// Owns ad hoc maintenance windows.
#[async_trait::async_trait]
pub trait Maintenance: Send + Sync {
    /// Opens a window now for `window.duration` (the store's clock); its id is new.
    async fn window_start(&self, window: NewWindow) -> Result<WindowRecord>;

    /// Ends a window now; false when there is no such window in force.
    async fn window_end(&self, id: &str, by: &str) -> Result<bool>;

    /// Windows in force now, and (with `recent`) those that ended within the last day, newest
    /// first.
    async fn windows(&self, recent: bool) -> Result<Vec<WindowRecord>>;
}
