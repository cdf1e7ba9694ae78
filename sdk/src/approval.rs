//! `approval`: ask an approver group before acting, and a gate for playbooks whose asking is
//! optional (`approve-with` in the built-ins).
//!
//! ```ignore
//! let question = approval::Question::new("Pause container web-1?")
//!     .body("12 failed logins from 203.0.113.9")
//!     .action("pause web-1")
//!     .timeout_secs(300);
//! match approval::ask("oncall", &question)? {
//!     approval::Answer::Approved(by) => { /* act */ }
//!     approval::Answer::Rejected(r) => { /* r.by, r.reason */ }
//!     approval::Answer::Expired => { /* escalate */ }
//! }
//! ```

pub use crate::bindings::runbook::host::approval::{Answer, Question, Rejection, ask};
use crate::{Error, Incident};

/// Seconds a question waits when the playbook does not say (the host caps it at the group's
/// `max-wait-secs`).
pub const DEFAULT_TIMEOUT_SECS: u32 = 600;

impl Question {
    pub fn new(title: impl Into<String>) -> Self {
        Question {
            title: title.into(),
            body: String::new(),
            actions: Vec::new(),
            timeout_secs: DEFAULT_TIMEOUT_SECS,
        }
    }

    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }

    /// One thing approving lets the playbook do ("pause web-1").
    pub fn action(mut self, action: impl Into<String>) -> Self {
        self.actions.push(action.into());
        self
    }

    pub fn timeout_secs(mut self, secs: u32) -> Self {
        self.timeout_secs = secs;
        self
    }
}

/// What `gate` decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Gate {
    /// Act. `None`: nobody had to be asked; `Some(line)`: the outcome action saying so
    /// ("approved by cli:alice", or "would ask oncall" on a dry run).
    Act(Option<String>),
    /// Do not act; `why` reads as the end of a summary ("rejected by cli:alice: not now").
    Hold { why: String },
}

/// Asks `group` (when one is given) and turns the answer into act-or-hold. A dry run asks
/// nobody (the host answers `expired`), so it acts as far as a dry run acts. An error from
/// the host (group not granted, unknown, no channel) holds: asking was required and failed.
pub fn gate(incident: &Incident, group: Option<&str>, question: &Question) -> Gate {
    let Some(group) = group.map(str::trim).filter(|g| !g.is_empty()) else {
        return Gate::Act(None);
    };
    match ask(group, question) {
        Ok(Answer::Approved(by)) => Gate::Act(Some(format!("approved by {by}"))),
        Ok(Answer::Expired) if incident.dry_run => Gate::Act(Some(format!("would ask {group}"))),
        // No reason given: no dangling ": ".
        Ok(Answer::Rejected(r)) if r.reason.trim().is_empty() => Gate::Hold {
            why: format!("rejected by {}", r.by),
        },
        Ok(Answer::Rejected(r)) => Gate::Hold {
            why: format!("rejected by {}: {}", r.by, r.reason),
        },
        Ok(Answer::Expired) => Gate::Hold {
            why: format!("nobody in {group} answered in time"),
        },
        Err(e) => Gate::Hold {
            why: asking_failed(group, &e),
        },
    }
}

fn asking_failed(group: &str, e: &Error) -> String {
    crate::warn!("approval {group}: {}: {}", e.kind(), e.detail());
    format!("could not ask {group} ({}: {})", e.kind(), e.detail())
}
