//! The safety rails. `gates`: circuit breakers and maintenance windows as host.toml spells
//! them (decided at admission, by the server). The rest of this module: storm-safe
//! remediation at the capability call, action budgets and the freeze switch. Every
//! mutating call that would act for real (not a dry run, granted, its target resolved) asks
//! `Safety::gate` first: frozen → the call is recorded as a "would …" and not made; over a
//! budget → the call is refused (`over-budget`) and counted nowhere; else one use is counted
//! in each budget that covers it, in the same store transaction as the check.
//!
//! Where the answer comes from: the run store (a `host run`, `host serve` and its replicas),
//! or, on a fleet node, the server (the agent holds no database credentials), after the
//! node's own host.toml budgets (its own ceiling, counted in its local outbox store).

mod config;
mod gates;
pub mod remote;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;

pub use config::{BUDGETED_ACTIONS, BudgetConfig, DEFAULT_BUDGET, Per, default_budget, effective};
pub use gates::*;

use crate::store::{BudgetAnswer, BudgetTake, Freeze, Store};

/// How long a read of the freeze switch is trusted: a freeze reaches every call that starts
/// more than this after it.
pub const FREEZE_CACHE: Duration = Duration::from_secs(1);

/// One mutating call about to be made, as the budgets see it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Action {
    pub run_id: String,
    pub playbook: String,
    /// `docker.restart`.
    pub action: String,
    /// The container it resolved to (canonical name), when it acts on one.
    pub container: Option<String>,
}

/// What a mutating call may do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum Verdict {
    Go,
    /// Record "would …", do nothing.
    Frozen {
        reason: String,
    },
    /// Refuse: which budget, and the message the playbook and timeline get.
    OverBudget {
        budget: String,
        message: String,
        /// What the budget counts the call under ("" for a global budget).
        #[serde(default)]
        key: String,
        /// Seconds until one use frees up; `None` when the budgets could not be checked (no
        /// budget refused: the playbook gets `denied`). Defaulted: an older server omits it.
        #[serde(default)]
        frees_in_secs: Option<u64>,
    },
}

/// Where decisions are made.
pub enum Decider {
    /// The run store: counts shared with every process on it.
    Store(Arc<Store>),
    /// A fleet node: its own budgets in its local store, then the server's answer.
    Node {
        local: Arc<Store>,
        server: Arc<dyn remote::AskServer>,
    },
}

/// The host's budgets and where they are decided; one per host, shared by its runs.
pub struct Safety {
    budgets: Vec<BudgetConfig>,
    /// This machine as `per = "node"` counts it.
    node: String,
    decider: Decider,
    freeze: Mutex<Option<(Instant, Option<Freeze>)>>,
}

impl Safety {
    pub fn new(budgets: Vec<BudgetConfig>, node: String, decider: Decider) -> Self {
        Self {
            budgets,
            node,
            decider,
            freeze: Mutex::new(None),
        }
    }

    pub fn budgets(&self) -> &[BudgetConfig] {
        &self.budgets
    }

    /// The freeze switch as the store has it, read at most once per [`FREEZE_CACHE`].
    pub async fn frozen(&self, store: &Store) -> Result<Option<Freeze>> {
        if let Some((at, state)) = &*self.freeze.lock().unwrap()
            && at.elapsed() < FREEZE_CACHE
        {
            return Ok(state.clone());
        }
        let state = store.freeze_state().await?;
        *self.freeze.lock().unwrap() = Some((Instant::now(), state.clone()));
        Ok(state)
    }

    /// The budgets that count `action`, as store takes keyed by what they count per.
    pub fn takes(&self, action: &Action, node: &str) -> Vec<BudgetTake> {
        self.budgets
            .iter()
            .filter(|b| b.counts(&action.action, &action.playbook))
            .map(|b| BudgetTake {
                budget: b.name.clone(),
                key: match b.per {
                    // A call on no container (prune) counts under "*".
                    Per::Container => action.container.clone().unwrap_or_else(|| "*".into()),
                    Per::Node => node.to_string(),
                    Per::Playbook => action.playbook.clone(),
                    Per::Global => String::new(),
                },
                max: b.max,
                within: b.within,
            })
            .collect()
    }

    /// Decides one mutating call against `store` (freeze, then budgets), counting it if it
    /// goes. `node` is the machine it runs on.
    pub async fn decide_in(&self, store: &Store, action: &Action, node: &str) -> Result<Verdict> {
        if let Some(freeze) = self.frozen(store).await? {
            return Ok(Verdict::Frozen {
                reason: freeze.reason,
            });
        }
        let takes = self.takes(action, node);
        match store.take_budgets(&takes, &action.run_id).await? {
            BudgetAnswer::Taken => Ok(Verdict::Go),
            BudgetAnswer::Over {
                budget,
                key,
                used,
                frees_in,
            } => {
                let rule = self
                    .budgets
                    .iter()
                    .find(|b| b.name == budget)
                    .map(BudgetConfig::describe)
                    .unwrap_or_default();
                let on = if key.is_empty() {
                    String::new()
                } else {
                    format!(" for {key}")
                };
                Ok(Verdict::OverBudget {
                    message: format!(
                        "over budget {budget} ({rule}): {used} used{on}; frees up in {}",
                        human(frees_in)
                    ),
                    budget,
                    key,
                    // As `human` rounds it: the playbook and the text agree.
                    frees_in_secs: Some(frees_in.as_secs().max(1)),
                })
            }
        }
    }

    /// The gate for one mutating call. An error (store or server unreachable) refuses the
    /// call: a safety rail that cannot be checked does not let the action through.
    pub async fn gate(&self, action: &Action) -> Verdict {
        let decided = match &self.decider {
            Decider::Store(store) => self.decide_in(store.as_ref(), action, &self.node).await,
            Decider::Node { local, server } => {
                match self.decide_in(local.as_ref(), action, &self.node).await {
                    Ok(Verdict::Go) => server.decide(action).await,
                    other => other,
                }
            }
        };
        let gate = decided.unwrap_or_else(|e| Verdict::OverBudget {
            budget: String::new(),
            message: format!("the action budgets could not be checked, so nothing was done: {e:#}"),
            key: String::new(),
            frees_in_secs: None,
        });
        count(&gate);
        gate
    }
}

/// "41m 3s": whole seconds.
pub fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs().max(1))).to_string()
}

/// Decisions this process made, for `/metrics`.
#[derive(Default)]
pub struct Counts {
    pub denials: Mutex<BTreeMap<String, u64>>,
    pub frozen_calls: AtomicU64,
}

pub fn counts() -> &'static Counts {
    static COUNTS: std::sync::OnceLock<Counts> = std::sync::OnceLock::new();
    COUNTS.get_or_init(Counts::default)
}

/// Counts a decision for `/metrics` (the server counts the ones it makes for nodes).
pub fn count(gate: &Verdict) {
    match gate {
        Verdict::Go => {}
        Verdict::Frozen { .. } => {
            counts().frozen_calls.fetch_add(1, Ordering::Relaxed);
        }
        Verdict::OverBudget { budget, .. } => {
            let mut denials = counts().denials.lock().unwrap();
            // Bounded: budget names come from host.toml (at most 64), "" for "unchecked".
            if denials.len() < 128 || denials.contains_key(budget) {
                *denials.entry(budget.clone()).or_default() += 1;
            }
        }
    }
}

/// This machine's name, as `per = "node"` counts a server's or `host run`'s own calls.
pub fn this_node() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests;

/// Longest freeze reason (CLI, console): it is shown in every frozen call and report.
pub const MAX_REASON_BYTES: usize = 500;

/// The freeze switch's record, as `host freeze` and the console set it.
pub fn freeze_record(by: &str, reason: &str) -> Result<Freeze, String> {
    let reason = reason.trim();
    if reason.len() > MAX_REASON_BYTES {
        return Err(format!(
            "the reason is {} bytes; at most {MAX_REASON_BYTES}",
            reason.len()
        ));
    }
    if reason.chars().any(char::is_control) {
        return Err("the reason is one line of text (no control characters)".into());
    }
    Ok(Freeze {
        by: crate::text::truncate_owned(by.to_string(), 128),
        reason: if reason.is_empty() {
            "no reason given".into()
        } else {
            reason.to_string()
        },
        since: crate::records::now_rfc3339(),
    })
}

/// One budget and its use, as `host budgets` and the console show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BudgetReport {
    pub name: String,
    pub rule: String,
    pub actions: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub playbooks: Vec<String>,
    /// Keys with uses in the window, busiest first.
    pub uses: Vec<UseReport>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct UseReport {
    pub key: String,
    pub used: u32,
    pub max: u32,
    /// Seconds until one use frees up.
    pub frees_in_secs: u64,
}

/// Every budget in force with its use in the store now.
pub async fn report(store: &Store, budgets: &[BudgetConfig]) -> Result<Vec<BudgetReport>> {
    let windows: Vec<(String, Duration)> =
        budgets.iter().map(|b| (b.name.clone(), b.within)).collect();
    let uses = store.budget_uses(&windows).await?;
    Ok(budgets
        .iter()
        .map(|b| BudgetReport {
            name: b.name.clone(),
            rule: b.describe(),
            actions: b.actions.clone(),
            playbooks: b.playbooks.clone(),
            uses: uses
                .iter()
                .filter(|u| u.budget == b.name)
                .map(|u| UseReport {
                    key: u.key.clone(),
                    used: u.used,
                    max: b.max,
                    frees_in_secs: u.frees_in.as_secs().max(1),
                })
                .collect(),
        })
        .collect())
}
