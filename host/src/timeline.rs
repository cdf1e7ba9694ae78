//! The run's timeline: every log line, step, capability call, notification and artifact in the
//! order they happened. The audit log and the incident timeline are the same data.

use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// RFC 3339 wall-clock time.
    pub at: String,
    /// Milliseconds since the run started.
    pub offset_ms: f64,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum EventKind {
    Log {
        level: String,
        message: String,
    },
    Step {
        name: String,
        status: String,
        detail: String,
    },
    /// One capability call: what was asked, how it ended, how long it took.
    Call {
        interface: String,
        function: String,
        args: Value,
        /// "ok", "would" (dry run) or the error kind ("denied", "not-found", …).
        result: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        duration_ms: f64,
    },
    Notification {
        channel: String,
        severity: String,
        title: String,
        /// "queued" (a worker delivers it), "delivered", "would-send" (dry run) or "failed";
        /// the outbox row has the final delivery state.
        state: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outbox_id: Option<i64>,
    },
    Artifact {
        name: String,
        content_type: String,
        bytes: usize,
        sha256: String,
    },
}

pub type Sink = Box<dyn FnMut(&Event) + Send>;

pub struct Timeline {
    started: Instant,
    events: Vec<Event>,
    sink: Option<Sink>,
}

impl Timeline {
    /// `sink` sees each event as it is recorded (the CLI prints the timeline live with it).
    pub fn new(sink: Option<Sink>) -> Self {
        Self {
            started: Instant::now(),
            events: Vec::new(),
            sink,
        }
    }

    pub fn record(&mut self, kind: EventKind) {
        let event = Event {
            at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            offset_ms: round_ms(self.started.elapsed()),
            kind,
        };
        if let Some(sink) = &mut self.sink {
            sink(&event);
        }
        self.events.push(event);
    }

    pub fn log(&mut self, level: &str, message: impl Into<String>) {
        self.record(EventKind::Log {
            level: level.to_string(),
            message: message.into(),
        });
    }

    pub fn call(
        &mut self,
        interface: &str,
        function: &str,
        args: Value,
        result: impl Into<String>,
        detail: Option<String>,
        duration: Duration,
    ) {
        self.record(EventKind::Call {
            interface: interface.to_string(),
            function: function.to_string(),
            args,
            result: result.into(),
            detail,
            duration_ms: round_ms(duration),
        });
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    pub fn into_events(self) -> Vec<Event> {
        self.events
    }

    /// Total time spent inside capability calls, so host overhead can be told from backend time.
    pub fn call_time_ms(&self) -> f64 {
        self.events
            .iter()
            .map(|e| match &e.kind {
                EventKind::Call { duration_ms, .. } => *duration_ms,
                _ => 0.0,
            })
            .sum()
    }
}

pub fn round_ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}
