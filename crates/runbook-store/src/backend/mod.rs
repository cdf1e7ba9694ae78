//! The run store's interface. Two backends implement it: SQLite (store/sqlite/, the embedded
//! default, one host per file) and PostgreSQL (store/postgres/, any number of `host serve`
//! replicas on one database). Everything that must survive a restart or be shared between
//! replicas goes through here: runs, timelines, artifacts, alerts, dedup and cooldown keys,
//! per-playbook concurrency slots, run leases, Standard Webhooks replay ids and the outbox.
//!
//! Every lease, window and "now" is the store's clock (PostgreSQL's `now()`), never the
//! caller's: replicas on machines with skewed clocks agree. Timestamps shown to people
//! (`started_at`, `ended_at`, `received_at`) are RFC 3339 text.
//!
//! The interface is cut into role traits, one file each (queue.rs, leases.rs, fleet.rs, …),
//! so a reader follows one role at a time; `Backend` is their union, what callers hold.

use std::collections::HashMap;

mod access;
mod alerts;
mod approvals;
mod budgets;
mod cancels;
mod figures;
mod fleet;
mod info;
mod leases;
mod outbox;
mod queue;
mod safety;
mod schedules;
mod shared;
mod timelines;

pub use self::budgets::{BudgetAnswer, BudgetTake, BudgetUse, Freeze, MAX_USE_ROWS};
pub use self::{
    access::AccessStore,
    alerts::Alerts,
    approvals::ApprovalStore,
    budgets::Budgets,
    cancels::Cancels,
    figures::FigureStore,
    fleet::FleetStore,
    info::{LinkSecurity, SslMode, StoreInfo},
    leases::Leases,
    outbox::Outbox,
    queue::RunQueue,
    safety::Breakers,
    safety::Maintenance,
    schedules::ScheduleStore,
    shared::SharedState,
    timelines::Timelines,
};

/// A run's status as people see it: a `running` run waiting for an answer to one of its
/// questions (`approval.ask`) shows `waiting-approval` (the lease machinery keeps seeing
/// `running`: the run's process still holds it).
#[macro_export]
#[doc(hidden)]
macro_rules! shown_status {
    () => {
        "CASE WHEN status = 'running' AND EXISTS (SELECT 1 FROM approvals a \
         WHERE a.run_id = runs.id AND a.state = 'pending') THEN 'waiting-approval' \
         ELSE status END AS status"
    };
}
pub use shown_status as SHOWN_STATUS;

/// The condition a `status = waiting-approval` filter stands for.
pub const WAITING_APPROVAL: &str = "status = 'running' AND EXISTS (SELECT 1 FROM approvals a \
     WHERE a.run_id = runs.id AND a.state = 'pending')";

/// How many runs of each playbook may run at once across every process on the store.
#[derive(Debug, Clone)]
pub struct SlotLimits {
    pub default: usize,
    pub per_playbook: HashMap<String, usize>,
}

impl SlotLimits {
    pub fn of(&self, playbook: &str) -> usize {
        self.per_playbook
            .get(playbook)
            .copied()
            .unwrap_or(self.default)
            .max(1)
    }
}

/// The console's runs page: every filter optional, newest first, one page after `before`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub playbook: Option<String>,
    pub status: Option<String>,
    /// P1..P4.
    pub severity: Option<String>,
    pub trigger: Option<String>,
    pub node: Option<String>,
    /// Bounds on `started_at` (RFC 3339 text compares as time): `since` inclusive, `until`
    /// exclusive.
    pub since: Option<String>,
    pub until: Option<String>,
    /// Keyset cursor: only runs strictly older than this (started_at, id), the last row of the
    /// previous page; no OFFSET, so page 1000 costs what page 1 does.
    pub before: Option<(String, String)>,
    pub limit: usize,
}

impl RunFilter {
    /// The equality filters as (column, value), in a fixed order; each column has an index
    /// led by it and followed by (started_at, id).
    pub fn equalities(&self) -> Vec<(&'static str, &str)> {
        [
            ("playbook", &self.playbook),
            ("status", &self.status),
            ("severity", &self.severity),
            ("trigger", &self.trigger),
            ("node", &self.node),
        ]
        .into_iter()
        .filter_map(|(column, value)| value.as_deref().map(|v| (column, v)))
        .collect()
    }

    /// The `WHERE …` of the runs page (empty without filters) and its values in order; each
    /// backend spells its placeholders (`?N`, `$N`). Only the filters given are in the SQL,
    /// so the planner picks the index led by the equality filter.
    pub fn where_clause(&self, placeholder: fn(usize) -> String) -> (String, Vec<String>) {
        let mut conditions = Vec::new();
        let mut values: Vec<String> = Vec::new();
        let bind = |value: &str, values: &mut Vec<String>| {
            values.push(value.to_string());
            placeholder(values.len())
        };
        for (column, value) in self.equalities() {
            if column == "status" && value == "waiting-approval" {
                conditions.push(WAITING_APPROVAL.to_string());
                continue;
            }
            conditions.push(format!("{column} = {}", bind(value, &mut values)));
        }
        if let Some(since) = &self.since {
            conditions.push(format!("started_at >= {}", bind(since, &mut values)));
        }
        if let Some(until) = &self.until {
            conditions.push(format!("started_at < {}", bind(until, &mut values)));
        }
        if let Some((started_at, id)) = &self.before {
            let started_at = bind(started_at, &mut values);
            let id = bind(id, &mut values);
            conditions.push(format!("(started_at, id) < ({started_at}, {id})"));
        }
        if conditions.is_empty() {
            (String::new(), values)
        } else {
            (format!("WHERE {}", conditions.join(" AND ")), values)
        }
    }
}

/// What became of a node's live events (`append_events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    Stored,
    /// The run is not the runner's (anymore): nothing written.
    NotHeld,
    /// The run's timeline reached its cap: what fit is stored; the limit's message.
    Full(String),
}

/// Queued runs, counted apart so that one class of waiting work cannot fill another's bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepths {
    /// Runs for this server and its replicas.
    pub local: usize,
    /// Runs for fleet nodes, all together.
    pub nodes: usize,
    /// Runs for the node asked about (0 when none was).
    pub node: usize,
}

/// A run's events after a reader's cursor (`Backend::events_after`).
#[derive(Debug, Clone, PartialEq)]
pub struct EventsPage {
    /// The run's status when read.
    pub status: String,
    /// (number, event as JSON text), in number order.
    pub events: Vec<(usize, String)>,
}

impl EventsPage {
    /// The run may still add events.
    pub fn live(&self) -> bool {
        matches!(
            self.status.as_str(),
            "queued" | "running" | "waiting-approval"
        )
    }
}

/// The whole store: every role. Callers hold `Arc<dyn Backend>` (`crate::Store`); a backend
/// implements each role and gets this by the blanket impl.
pub trait Backend:
    StoreInfo
    + AccessStore
    + RunQueue
    + Leases
    + Cancels
    + Alerts
    + Timelines
    + ScheduleStore
    + FleetStore
    + FigureStore
    + ApprovalStore
    + SharedState
    + Budgets
    + Outbox
    + Breakers
    + Maintenance
    + Send
    + Sync
    + 'static
{
}

impl<T> Backend for T where
    T: StoreInfo
        + AccessStore
        + RunQueue
        + Leases
        + Cancels
        + Alerts
        + Timelines
        + ScheduleStore
        + FleetStore
        + FigureStore
        + ApprovalStore
        + SharedState
        + Budgets
        + Outbox
        + Breakers
        + Maintenance
        + 'static
{
}
