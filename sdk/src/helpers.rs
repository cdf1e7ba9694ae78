//! Builders and accessors on the generated types, so playbooks read like runbooks.

use crate::notify::Message;
use crate::{
    Capability, Description, Error, Incident, Outcome, OverBudgetInfo, ParamSpec, Severity, Status,
};

impl Description {
    pub fn new(name: impl Into<String>, summary: impl Into<String>) -> Self {
        Description {
            name: name.into(),
            summary: summary.into(),
            version: "0.1.0".into(),
            params: Vec::new(),
            capabilities: Vec::new(),
        }
    }

    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// An optional parameter, with a default when `default` is given.
    pub fn param(mut self, name: &str, description: &str, default: Option<&str>) -> Self {
        self.params.push(ParamSpec {
            name: name.into(),
            description: description.into(),
            default: default.map(Into::into),
            required: false,
        });
        self
    }

    /// A parameter the run cannot start without.
    pub fn required_param(mut self, name: &str, description: &str) -> Self {
        self.params.push(ParamSpec {
            name: name.into(),
            description: description.into(),
            default: None,
            required: true,
        });
        self
    }

    pub fn wants(mut self, capability: Capability) -> Self {
        self.capabilities.push(capability);
        self
    }
}

impl Incident {
    /// Sends `message` to `channel` and returns what happened as an outcome action:
    /// "notified ops", "would notify ops" on a dry run, or "notification to ops failed (kind:
    /// detail)", also logged as a warning. A failed notification is reported, never fatal.
    pub fn notify_action(&self, channel: &str, message: &Message) -> String {
        match crate::notify::send(channel, message) {
            Ok(()) if self.dry_run => format!("would notify {channel}"),
            Ok(()) => format!("notified {channel}"),
            Err(e) => {
                crate::warn!("notify {channel}: {}: {}", e.kind(), e.detail());
                format!(
                    "notification to {channel} failed ({}: {})",
                    e.kind(),
                    e.detail()
                )
            }
        }
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A parameter parsed as `T`; a value that does not parse is an `invalid` error naming it.
    pub fn param_as<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, Error>
    where
        T::Err: std::fmt::Display,
    {
        match self.param(name) {
            // An empty value means "not set", as a route template that found no label gives.
            None => Ok(None),
            Some(raw) if raw.trim().is_empty() => Ok(None),
            Some(raw) => raw
                .trim()
                .parse()
                .map(Some)
                .map_err(|e| Error::Invalid(format!("parameter {name}={raw:?}: {e}"))),
        }
    }

    /// A comma-separated parameter as a list, blanks dropped.
    pub fn param_list(&self, name: &str) -> Vec<String> {
        self.param(name)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    /// A label of the triggering alert, if any.
    pub fn alert_label(&self, name: &str) -> Option<&str> {
        self.alert.as_ref().and_then(|a| {
            a.labels
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        })
    }
}

impl Outcome {
    pub fn new(status: Status, summary: impl Into<String>) -> Self {
        Outcome {
            status,
            summary: summary.into(),
            actions: Vec::new(),
        }
    }
    pub fn resolved(summary: impl Into<String>) -> Self {
        Self::new(Status::Resolved, summary)
    }
    pub fn mitigated(summary: impl Into<String>) -> Self {
        Self::new(Status::Mitigated, summary)
    }
    pub fn escalated(summary: impl Into<String>) -> Self {
        Self::new(Status::Escalated, summary)
    }
    pub fn no_action(summary: impl Into<String>) -> Self {
        Self::new(Status::NoAction, summary)
    }
    pub fn action(mut self, action: impl Into<String>) -> Self {
        self.actions.push(action.into());
        self
    }
    pub fn actions(mut self, actions: impl IntoIterator<Item = String>) -> Self {
        self.actions.extend(actions);
        self
    }
}

impl Message {
    pub fn new(title: impl Into<String>) -> Self {
        Message {
            title: title.into(),
            body: String::new(),
            severity: Severity::Info,
            fields: Vec::new(),
        }
    }
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }
    pub fn field(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.push((key.into(), value.into()));
        self
    }
}

impl Error {
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Denied(_) => "denied",
            Error::NotFound(_) => "not-found",
            Error::Invalid(_) => "invalid",
            Error::Unavailable(_) => "unavailable",
            Error::Timeout(_) => "timeout",
            Error::Failed(_) => "failed",
            Error::OverBudget(_) => "over-budget",
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Error::Denied(s)
            | Error::NotFound(s)
            | Error::Invalid(s)
            | Error::Unavailable(s)
            | Error::Timeout(s)
            | Error::Failed(s) => s,
            Error::OverBudget(info) => &info.message,
        }
    }

    /// The budget that refused the call, when an action budget did (`over-budget`).
    pub fn over_budget(&self) -> Option<&OverBudgetInfo> {
        match self {
            Error::OverBudget(info) => Some(info),
            _ => None,
        }
    }
}

/// Human-readable whole seconds for summaries: "41m 3s", "2h", "45s".
pub fn human_secs(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let parts: Vec<String> = [(h, "h"), (m, "m"), (s, "s")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if parts.is_empty() {
        "0s".into()
    } else {
        parts.join(" ")
    }
}

/// Human-readable byte counts for reports: 1.5 GiB, 300 MiB, 12 KiB.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
