//! The records of two safety rails, shared by the store that keeps them and the server that
//! decides with them: circuit breakers per playbook (opened after repeated failed or escalated
//! runs, closed by a cool-down or an operator) and ad hoc maintenance windows. No I/O here.

use std::time::Duration;

use serde::Serialize;

/// Longest reason an operator may give a window (bytes).
pub const MAX_REASON: usize = 512;
/// Most matchers (and most nodes) one window may have.
pub const MAX_MATCHERS: usize = 16;
/// Longest matcher or node name (bytes).
pub const MAX_MATCHER: usize = 256;
/// Longest window an operator may open ad hoc.
pub const MAX_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

/// `[plugins.X] breaker`: open after `failures` runs ended failed or escalated within
/// `within`; stay open for `cool_down`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerRule {
    pub failures: u32,
    pub within: Duration,
    pub cool_down: Duration,
}

/// What the store found when asked whether a playbook's breaker lets a new run through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakerCheck {
    Closed,
    /// Open since before this check.
    Open(BreakerState),
    /// This check opened it (exactly one caller across every replica sees this per opening):
    /// that caller tells ops.
    Opened(BreakerState),
}

/// A breaker as the store has it (one row per playbook that ever opened).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakerState {
    pub playbook: String,
    /// Open now (the store's clock): opened and neither cooled down nor reset.
    pub open: bool,
    /// RFC 3339 of the latest opening, and until when it holds (or held) runs.
    pub opened_at: String,
    pub until: String,
    /// Unix ms of the latest opening: with the playbook, it keys the one notice per opening.
    pub opened_ms: i64,
    /// The failed or escalated runs counted when it opened.
    pub failures: u32,
    /// How many times it opened, ever.
    pub openings: i64,
    /// Who closed it early (`host breaker reset`, the console), if someone did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_by: Option<String>,
}

/// An operator's ad hoc maintenance window, starting now (the store's clock).
#[derive(Debug, Clone)]
pub struct NewWindow {
    /// Alert label matchers as routes spell them (`instance="web01"`), checked by the caller.
    pub matchers: Vec<String>,
    /// Fleet nodes whose runs it suppresses.
    pub nodes: Vec<String>,
    pub reason: Option<String>,
    pub by: String,
    pub duration: Duration,
}

/// A maintenance window kept in the store (opened ad hoc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowRecord {
    pub id: String,
    pub matchers: Vec<String>,
    pub nodes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_by: String,
    /// RFC 3339.
    pub starts_at: String,
    pub ends_at: String,
    #[serde(skip)]
    pub ends_ms: i64,
    /// Who ended it early, if someone did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<String>,
    /// In force now (the store's clock).
    pub active: bool,
}

/// The reason a held run carries.
pub fn held_reason(playbook: &str, state: &BreakerState) -> String {
    format!(
        "held: the circuit breaker of {playbook} is open until {} ({} failed or escalated runs); \
         reset with `host breaker reset {playbook}`",
        state.until, state.failures
    )
}

/// The reason a suppressed run carries.
pub fn suppressed_reason(window: &str) -> String {
    format!("suppressed: maintenance window {window}")
}
