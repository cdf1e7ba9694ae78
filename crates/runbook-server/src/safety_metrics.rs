//! The safety rails in `/metrics`: budget denials by budget and frozen calls (decisions this
//! process made, its own runs' and those it made for fleet nodes), and whether the store is
//! frozen now. Capability calls by result (`over-budget`, `frozen`) are in `metrics.rs` too.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabel {
    budget: String,
}

pub struct SafetyMetrics {
    denials: Family<BudgetLabel, Counter>,
    frozen_calls: Counter,
    frozen: Gauge<i64, AtomicI64>,
    /// What the counters were last brought up to (the runtime keeps the running totals).
    seen: Mutex<(BTreeMap<String, u64>, u64)>,
}

impl SafetyMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            denials: Family::default(),
            frozen_calls: Counter::default(),
            frozen: Gauge::default(),
            seen: Mutex::default(),
        };
        registry.register(
            "budget_denials",
            "Mutating capability calls refused over an action budget, by budget (\"\": the \
             budgets could not be checked)",
            metrics.denials.clone(),
        );
        registry.register(
            "frozen_calls",
            "Mutating capability calls the freeze switch turned into \"would …\"",
            metrics.frozen_calls.clone(),
        );
        registry.register(
            "frozen",
            "Whether the freeze switch is on in the store (1) or not (0) at the last scrape",
            metrics.frozen.clone(),
        );
        metrics
    }

    /// At a scrape: the runtime's totals into the counters, and the switch as the store has it
    /// (`None`: the store did not answer; the gauge keeps its value).
    pub fn update(&self, frozen: Option<bool>) {
        let counts = runbook_runtime::safety::counts();
        let mut seen = self.seen.lock().unwrap();
        for (budget, total) in counts.denials.lock().unwrap().iter() {
            let before = seen.0.entry(budget.clone()).or_default();
            let label = BudgetLabel {
                budget: budget.clone(),
            };
            self.denials
                .get_or_create(&label)
                .inc_by(total.saturating_sub(*before));
            *before = *total;
        }
        let frozen_calls = counts.frozen_calls.load(Ordering::Relaxed);
        self.frozen_calls
            .inc_by(frozen_calls.saturating_sub(seen.1));
        seen.1 = frozen_calls;
        if let Some(frozen) = frozen {
            self.frozen.set(i64::from(frozen));
        }
    }
}
