//! The run's timeline: every log line, step, capability call, notification and artifact in the
//! order they happened. The audit log and the incident timeline are the same data.

use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// RFC 3339 wall-clock time.
    pub at: String,
    /// Milliseconds since the run started.
    pub offset_ms: f64,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Bytes the events take when stored (their JSON); the run's `max_timeline_bytes` caps it.
    bytes: usize,
}

/// Caps on each event's strings: whatever a playbook passes, one event stays small. The
/// original length is kept in the text (`…[N bytes in all]`).
pub const MAX_MESSAGE_BYTES: usize = 8 << 10;
pub const MAX_NAME_BYTES: usize = 256;
pub const MAX_ARG_STRING_BYTES: usize = 1024;
pub const MAX_ARG_ITEMS: usize = 64;
pub const MAX_DETAIL_BYTES: usize = 2048;

impl EventKind {
    fn capped(self) -> Self {
        use crate::text::{cap_json, truncate_owned as cut};
        match self {
            EventKind::Log { level, message } => EventKind::Log {
                level: cut(level, MAX_NAME_BYTES),
                message: cut(message, MAX_MESSAGE_BYTES),
            },
            EventKind::Step {
                name,
                status,
                detail,
            } => EventKind::Step {
                name: cut(name, MAX_NAME_BYTES),
                status: cut(status, MAX_NAME_BYTES),
                detail: cut(detail, MAX_MESSAGE_BYTES),
            },
            EventKind::Call {
                interface,
                function,
                args,
                result,
                detail,
                duration_ms,
            } => EventKind::Call {
                interface,
                function,
                args: cap_json(args, MAX_ARG_STRING_BYTES, MAX_ARG_ITEMS),
                result: cut(result, MAX_NAME_BYTES),
                detail: detail.map(|d| cut(d, MAX_DETAIL_BYTES)),
                duration_ms,
            },
            EventKind::Notification {
                channel,
                severity,
                title,
                state,
                outbox_id,
            } => EventKind::Notification {
                channel: cut(channel, MAX_NAME_BYTES),
                severity,
                title: cut(title, MAX_DETAIL_BYTES),
                state,
                outbox_id,
            },
            EventKind::Artifact {
                name,
                content_type,
                bytes,
                sha256,
            } => EventKind::Artifact {
                name: cut(name, MAX_NAME_BYTES),
                content_type: cut(content_type, MAX_NAME_BYTES),
                bytes,
                sha256,
            },
        }
    }
}

/// Longest `at` kept: an RFC 3339 time is about 30 bytes; a node's upload may say anything.
const MAX_AT_BYTES: usize = 64;

/// The gate every timeline event passes before it is kept, whoever reports it: a local run
/// (`Timeline::record`) and a node's agent (server/fleet.rs, and the store's per-run check)
/// call this one function. Returns the event with its strings capped (the `MAX_*` constants)
/// and its JSON as the store keeps it, whose length is what the event costs the run's cap.
pub fn admit(event: Event) -> (Event, String) {
    let event = Event {
        at: crate::text::truncate_owned(event.at, MAX_AT_BYTES),
        offset_ms: event.offset_ms,
        kind: event.kind.capped(),
    };
    let json = serde_json::to_string(&event).expect("an event serializes");
    (event, json)
}

/// The run's timeline is over its cap once `stored` bytes (the JSON of its events) pass
/// `max`: the limit's message. Checked before each event is added, so a timeline overshoots
/// by at most one capped event, locally and from a node alike.
pub fn over_cap(stored: usize, max: usize) -> Option<String> {
    (stored > max)
        .then(|| format!("more than {max} bytes of timeline (log lines, steps, calls) in one run"))
}

impl Timeline {
    /// `sink` sees each event as it is recorded (the CLI prints the timeline live with it).
    pub fn new(sink: Option<Sink>) -> Self {
        Self {
            started: Instant::now(),
            events: Vec::new(),
            sink,
            bytes: 0,
        }
    }

    /// Records an event, its strings capped (see [`admit`]).
    pub fn record(&mut self, kind: EventKind) {
        let (event, json) = admit(Event {
            at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            offset_ms: round_ms(self.started.elapsed()),
            kind,
        });
        self.bytes += json.len();
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

    /// Bytes the timeline takes when stored (its events' JSON).
    pub fn stored_bytes(&self) -> usize {
        self.bytes
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
