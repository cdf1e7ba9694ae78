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
    /// About how many bytes the events take when stored; the run's `max_timeline_bytes` caps it.
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

    /// About what the event adds to the stored timeline.
    fn stored_bytes(&self) -> usize {
        const OVERHEAD: usize = 96; // time, offset, tags and punctuation
        OVERHEAD
            + match self {
                EventKind::Log { level, message } => level.len() + message.len(),
                EventKind::Step {
                    name,
                    status,
                    detail,
                } => name.len() + status.len() + detail.len(),
                EventKind::Call {
                    interface,
                    function,
                    args,
                    result,
                    detail,
                    ..
                } => {
                    interface.len()
                        + function.len()
                        + args.to_string().len()
                        + result.len()
                        + detail.as_ref().map_or(0, String::len)
                }
                EventKind::Notification {
                    channel,
                    severity,
                    title,
                    state,
                    ..
                } => channel.len() + severity.len() + title.len() + state.len(),
                EventKind::Artifact {
                    name,
                    content_type,
                    sha256,
                    ..
                } => name.len() + content_type.len() + sha256.len(),
            }
    }
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

    /// Records an event, its strings capped (see the `MAX_*` constants).
    pub fn record(&mut self, kind: EventKind) {
        let kind = kind.capped();
        self.bytes += kind.stored_bytes();
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

    /// About how many bytes the timeline takes when stored.
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
