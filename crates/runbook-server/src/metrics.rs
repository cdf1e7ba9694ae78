//! `/metrics` in the Prometheus text format: runs by playbook and outcome, run durations,
//! queue depth, webhook requests by endpoint and status, capability calls by result.

use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::run::RunRecord;
use crate::timeline::EventKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    playbook: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PlaybookLabel {
    playbook: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WindowLabel {
    window: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabel {
    channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabel {
    node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    interface: String,
    function: String,
    result: String,
}

/// One unit of a gauge, held while alive: the gauge comes back down however its holder ends
/// (returned, panicked, or dropped when its task is aborted).
pub struct GaugeGuard(Gauge<i64, AtomicI64>);

impl GaugeGuard {
    pub fn hold(gauge: &Gauge<i64, AtomicI64>) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub struct Metrics {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    durations: Family<PlaybookLabel, Histogram>,
    pub queue_depth: Gauge<i64, AtomicI64>,
    pub running: Gauge<i64, AtomicI64>,
    requests: Family<RequestLabels, Counter>,
    calls: Family<CallLabels, Counter>,
    pending: Family<ChannelLabel, Gauge<i64, AtomicI64>>,
    store_up: Gauge<i64, AtomicI64>,
    store_latency: Gauge<f64, AtomicU64>,
    store_queued: Gauge<i64, AtomicI64>,
    store_leased: Gauge<i64, AtomicI64>,
    waiting_approval: Gauge<i64, AtomicI64>,
    node_up: Family<NodeLabel, Gauge<i64, AtomicI64>>,
    node_seen_ago: Family<NodeLabel, Gauge<f64, AtomicU64>>,
    node_in_flight: Family<NodeLabel, Gauge<i64, AtomicI64>>,
    node_queued: Family<NodeLabel, Gauge<i64, AtomicI64>>,
    breaker_open: Family<PlaybookLabel, Gauge<i64, AtomicI64>>,
    runs_held: Family<PlaybookLabel, Counter>,
    suppressed: Family<WindowLabel, Counter>,
    /// Budget denials, frozen calls, the freeze switch (safety_metrics.rs).
    pub safety: crate::safety_metrics::SafetyMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("runbook");
        let runs = Family::<RunLabels, Counter>::default();
        let durations = Family::<PlaybookLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0])
        });
        let queue_depth = Gauge::<i64, AtomicI64>::default();
        let running = Gauge::<i64, AtomicI64>::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let calls = Family::<CallLabels, Counter>::default();
        let pending = Family::<ChannelLabel, Gauge<i64, AtomicI64>>::default();
        let store_up = Gauge::<i64, AtomicI64>::default();
        let store_latency = Gauge::<f64, AtomicU64>::default();
        let store_queued = Gauge::<i64, AtomicI64>::default();
        let store_leased = Gauge::<i64, AtomicI64>::default();
        let waiting_approval = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "runs_waiting_approval",
            "Runs waiting for a person to answer a question (status waiting-approval), on any \
             host sharing the store",
            waiting_approval.clone(),
        );
        registry.register(
            "store_up",
            "Whether the run store answered the last scrape's query (1) or not (0)",
            store_up.clone(),
        );
        registry.register(
            "store_latency_seconds",
            "Round trip of a trivial query to the run store at the last scrape",
            store_latency.clone(),
        );
        registry.register(
            "store_queued_runs",
            "Runs queued in the store, not claimed by any host yet",
            store_queued.clone(),
        );
        registry.register(
            "store_leased_runs",
            "Runs executing under a live lease, on any host sharing the store",
            store_leased.clone(),
        );
        let node_up = Family::<NodeLabel, Gauge<i64, AtomicI64>>::default();
        let node_seen_ago = Family::<NodeLabel, Gauge<f64, AtomicU64>>::default();
        let node_in_flight = Family::<NodeLabel, Gauge<i64, AtomicI64>>::default();
        let node_queued = Family::<NodeLabel, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "node_up",
            "Whether the node's agent was heard from within a lease (1) or not (0)",
            node_up.clone(),
        );
        registry.register(
            "node_last_seen_seconds",
            "Seconds since the node's agent was last heard from",
            node_seen_ago.clone(),
        );
        registry.register(
            "node_runs_in_flight",
            "Runs executing on the node",
            node_in_flight.clone(),
        );
        registry.register(
            "node_queued_runs",
            "Runs waiting for the node's agent",
            node_queued.clone(),
        );
        let breaker_open = Family::<PlaybookLabel, Gauge<i64, AtomicI64>>::default();
        let runs_held = Family::<PlaybookLabel, Counter>::default();
        let suppressed = Family::<WindowLabel, Counter>::default();
        registry.register(
            "breaker_open",
            "Whether the playbook's circuit breaker is open (1: new runs are held) or not (0)",
            breaker_open.clone(),
        );
        registry.register(
            "runs_held",
            "Runs recorded held (not executed) because their playbook's breaker was open, \
             admitted by this host",
            runs_held.clone(),
        );
        registry.register(
            "alerts_suppressed",
            "Runs (of alerts and schedules) recorded suppressed by a maintenance window, \
             admitted by this host",
            suppressed.clone(),
        );
        registry.register(
            "notifications_pending",
            "Messages in the outbox not yet delivered, by channel",
            pending.clone(),
        );
        registry.register(
            "runs",
            "Finished runs by playbook and outcome",
            runs.clone(),
        );
        registry.register(
            "run_duration_seconds",
            "Wall time of a run",
            durations.clone(),
        );
        registry.register(
            "queue_depth",
            "Accepted runs waiting for a slot",
            queue_depth.clone(),
        );
        registry.register("running_runs", "Runs executing now", running.clone());
        registry.register(
            "webhook_requests",
            "Webhook requests by endpoint and status",
            requests.clone(),
        );
        registry.register(
            "capability_calls",
            "Capability calls by result kind",
            calls.clone(),
        );
        let safety = crate::safety_metrics::SafetyMetrics::register(&mut registry);
        Self {
            registry,
            runs,
            durations,
            queue_depth,
            running,
            requests,
            calls,
            pending,
            store_up,
            store_latency,
            store_queued,
            store_leased,
            waiting_approval,
            node_up,
            node_seen_ago,
            node_in_flight,
            node_queued,
            breaker_open,
            runs_held,
            suppressed,
            safety,
        }
    }

    /// The breakers as the store has them at a scrape.
    pub fn set_breakers(&self, breakers: &[crate::store::BreakerState]) {
        for breaker in breakers {
            self.breaker_open
                .get_or_create(&PlaybookLabel {
                    playbook: breaker.playbook.clone(),
                })
                .set(i64::from(breaker.open));
        }
    }

    /// A run admitted here that did not execute: held by a breaker or suppressed by a window.
    pub fn gated(&self, gate: &crate::safety::Decision) {
        match gate {
            crate::safety::Decision::Held { playbook, .. } => self
                .runs_held
                .get_or_create(&PlaybookLabel {
                    playbook: playbook.clone(),
                })
                .inc(),
            crate::safety::Decision::Suppressed { window, .. } => self
                .suppressed
                .get_or_create(&WindowLabel {
                    window: window.clone(),
                })
                .inc(),
            crate::safety::Decision::Run => 0,
        };
    }

    /// The fleet as the store has it (nodes are those whose agents authenticated: as many as
    /// `[fleet.nodes]` names).
    pub fn set_nodes(&self, nodes: &[crate::records::NodeRecord], up_within: std::time::Duration) {
        for node in nodes {
            let label = NodeLabel {
                node: node.name.clone(),
            };
            let up = node.seen_secs_ago <= up_within.as_secs_f64();
            self.node_up.get_or_create(&label).set(i64::from(up));
            self.node_seen_ago
                .get_or_create(&label)
                .set(node.seen_secs_ago);
            self.node_in_flight
                .get_or_create(&label)
                .set(node.in_flight as i64);
            self.node_queued
                .get_or_create(&label)
                .set(node.queued as i64);
        }
    }

    /// A run that ended on a node (its agent's outcome).
    pub fn ended(&self, playbook: &str, status: &str, seconds: f64) {
        self.runs
            .get_or_create(&RunLabels {
                playbook: playbook.to_string(),
                status: status.to_string(),
            })
            .inc();
        self.durations
            .get_or_create(&PlaybookLabel {
                playbook: playbook.to_string(),
            })
            .observe(seconds);
    }

    /// The store as a scrape finds it: (round trip, (queued, leased)), or `None` when it did
    /// not answer.
    pub fn set_store(&self, seen: Option<(std::time::Duration, (usize, usize))>) {
        self.store_up.set(i64::from(seen.is_some()));
        if let Some((latency, (queued, leased))) = seen {
            self.store_latency.set(latency.as_secs_f64());
            self.store_queued.set(queued as i64);
            self.store_leased.set(leased as i64);
        }
    }

    /// Runs with a question pending, as the store has them at a scrape.
    pub fn set_waiting_approval(&self, runs: usize) {
        self.waiting_approval.set(runs as i64);
    }

    /// The outbox as it is now: every channel, zero when nothing waits.
    pub fn set_pending(&self, channels: &[&str], pending: &[(String, i64)]) {
        for channel in channels {
            let count = pending
                .iter()
                .find(|(c, _)| c == channel)
                .map_or(0, |(_, n)| *n);
            self.pending
                .get_or_create(&ChannelLabel {
                    channel: channel.to_string(),
                })
                .set(count);
        }
    }

    pub fn request(&self, endpoint: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint.to_string(),
                status: status.to_string(),
            })
            .inc();
    }

    pub fn finished(&self, record: &RunRecord) {
        self.runs
            .get_or_create(&RunLabels {
                playbook: record.playbook.clone(),
                status: record.status.to_string(),
            })
            .inc();
        self.durations
            .get_or_create(&PlaybookLabel {
                playbook: record.playbook.clone(),
            })
            .observe(record.timings.total_ms / 1e3);
        for event in &record.timeline {
            if let EventKind::Call {
                interface,
                function,
                result,
                ..
            } = &event.kind
            {
                self.calls
                    .get_or_create(&CallLabels {
                        interface: interface.clone(),
                        function: function.clone(),
                        result: result.clone(),
                    })
                    .inc();
            }
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }
}
