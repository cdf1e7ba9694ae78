//! `/metrics` in the Prometheus text format: runs by playbook and outcome, run durations,
//! queue depth, webhook requests by endpoint and status, capability calls by result.

use std::sync::atomic::AtomicI64;

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
struct RequestLabels {
    endpoint: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabel {
    channel: String,
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
        Self {
            registry,
            runs,
            durations,
            queue_depth,
            running,
            requests,
            calls,
            pending,
        }
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
