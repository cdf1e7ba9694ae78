//! How the console shows a run's state: one colour of meaning per status, durations that do
//! not count time spent queued, what a run without a summary is waiting for, times people can
//! read.

use std::time::{Duration, SystemTime};

use maud::{Markup, html};

use crate::records::{RunStatus, RunSummary};
use crate::style;

/// What a colour means; each status has one (`console.css` gives each its colours, light and
/// dark, at a contrast of at least 4.5:1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tone {
    /// Resolved, approved, delivered.
    Good,
    /// Mitigated: better, not fixed.
    Eased,
    /// Nothing was wrong (no-action): calm, not a warning.
    Calm,
    /// Escalated, rejected: a person must look.
    Warn,
    /// Failed, undeliverable.
    Bad,
    /// Lost, interrupted, cancelled, expired: ended without a verdict.
    Gone,
    /// Running now.
    Live,
    /// Waiting for a person.
    Asking,
    /// Queued, pending.
    Queued,
}

impl Tone {
    fn class(self) -> &'static str {
        match self {
            Tone::Good => "t-good",
            Tone::Eased => "t-eased",
            Tone::Calm => "t-calm",
            Tone::Warn => "t-warn",
            Tone::Bad => "t-bad",
            Tone::Gone => "t-gone",
            Tone::Live => "t-live",
            Tone::Asking => "t-asking",
            Tone::Queued => "t-queued",
        }
    }
}

pub(super) fn tone(status: RunStatus) -> Tone {
    match status {
        RunStatus::Resolved => Tone::Good,
        RunStatus::Mitigated => Tone::Eased,
        RunStatus::NoAction => Tone::Calm,
        RunStatus::Escalated => Tone::Warn,
        RunStatus::Failed | RunStatus::Undeliverable => Tone::Bad,
        RunStatus::Lost | RunStatus::Interrupted | RunStatus::Cancelled | RunStatus::Other => {
            Tone::Gone
        }
        // Stopped by a safety rail on purpose: a breaker is worth a look, a window is planned.
        RunStatus::Held => Tone::Warn,
        RunStatus::Suppressed => Tone::Calm,
        RunStatus::Running => Tone::Live,
        RunStatus::WaitingApproval => Tone::Asking,
        RunStatus::Queued => Tone::Queued,
    }
}

/// A badge: the word, in its tone; never broken across lines.
/// The stylesheet class of a tone (charts fill with it).
pub(super) fn tone_class(tone: Tone) -> &'static str {
    tone.class()
}

pub(super) fn badge(tone: Tone, text: &str) -> Markup {
    html! { span class={ "status " (tone.class()) } { (text) } }
}

pub(super) fn status_badge(status: &str) -> Markup {
    badge(tone(RunStatus::parse(status)), status)
}

fn parse(rfc3339: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(rfc3339).ok()
}

fn between(from: &str, to: Option<&str>) -> Option<Duration> {
    let end = match to {
        Some(to) => parse(to)?,
        None => SystemTime::now(),
    };
    end.duration_since(parse(from)?).ok()
}

/// The "took" of a run: how long it executed, never the time it spent queued. A run that
/// never executed says how long it has been (or was) queued.
pub(super) fn took(r: &RunSummary) -> String {
    let status = RunStatus::parse(&r.status);
    let since_accepted = || between(&r.started_at, r.ended_at.as_deref());
    match status {
        RunStatus::Queued | RunStatus::Undeliverable => since_accepted()
            .map(|d| format!("queued for {}", style::duration(d)))
            .unwrap_or_default(),
        // The store keeps when a run was accepted, not when it was claimed: a running run's
        // time includes the (usually milliseconds of) queueing.
        RunStatus::Running | RunStatus::WaitingApproval => since_accepted()
            .map(|d| format!("running for {}", style::duration(d)))
            .unwrap_or_default(),
        _ => match r.took_ms {
            Some(ms) if ms.is_finite() && ms >= 0.0 => {
                style::duration(Duration::from_secs_f64(ms / 1e3))
            }
            // Cut off (lost, interrupted) or an older record: accepted to ended.
            _ => since_accepted().map(style::duration).unwrap_or_default(),
        },
    }
}

/// A run's summary, or, before it has one, what it is waiting for. `asking`: the group a
/// pending question of the run waits on.
pub(super) fn summary(r: &RunSummary, asking: Option<&str>) -> Markup {
    if !r.summary.is_empty() {
        return html! { (r.summary) };
    }
    let waiting = match RunStatus::parse(&r.status) {
        RunStatus::Queued => match &r.node {
            Some(node) => format!("waiting for agent {node}"),
            None => "queued".to_string(),
        },
        RunStatus::WaitingApproval => match asking {
            Some(group) => format!("waiting for approval from {group}"),
            None => "waiting for approval".to_string(),
        },
        RunStatus::Running => match &r.node {
            Some(node) => format!("running on {node}"),
            None => "running".to_string(),
        },
        _ => return html! {},
    };
    html! { span.waiting { (waiting) } }
}

/// "started by alice from the console", "from an alert", …: where a run came from.
pub(super) fn origin(r: &RunSummary) -> Markup {
    html! {
        span.trigger { (r.trigger) }
        @if let Some(by) = &r.by { " " span.by { "by " (by) } }
    }
}

/// "2026-11-25 10:00:01" from the stored RFC 3339 text.
pub(super) fn when(rfc3339: &str) -> String {
    rfc3339.get(..19).unwrap_or(rfc3339).replace('T', " ")
}

/// "3m 4s ago", "in 20 s", "now": a stored time against the clock.
pub(super) fn relative(rfc3339: &str) -> String {
    let Some(at) = parse(rfc3339) else {
        return String::new();
    };
    let now = SystemTime::now();
    match now.duration_since(at) {
        Ok(ago) if ago < Duration::from_secs(1) => "now".to_string(),
        Ok(ago) => format!("{} ago", style::duration(ago)),
        Err(ahead) => format!("in {}", style::duration(ahead.duration())),
    }
}

/// When a pending message is tried next: "in 20 s", or "due now" once the time has come.
pub(super) fn next_attempt(rfc3339: &str) -> String {
    match parse(rfc3339).map(|at| at.duration_since(SystemTime::now())) {
        Some(Ok(ahead)) if ahead >= Duration::from_secs(1) => {
            format!("in {}", style::duration(ahead))
        }
        Some(_) => "due now".to_string(),
        None => String::new(),
    }
}

/// A time as a table shows it: when, and how long ago, both unbreakable.
pub(super) fn time(rfc3339: &str) -> Markup {
    html! {
        time.mono datetime=(rfc3339) { (when(rfc3339)) }
        " " span.muted.ago { "(" (relative(rfc3339)) ")" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(status: &str, started: &str, ended: Option<&str>, took_ms: Option<f64>) -> RunSummary {
        RunSummary {
            id: "r1".into(),
            playbook: "disk-full".into(),
            trigger: "alert".into(),
            status: status.into(),
            summary: String::new(),
            started_at: started.into(),
            ended_at: ended.map(String::from),
            dry_run: false,
            severity: "P3".into(),
            node: None,
            running_since: None,
            by: None,
            took_ms,
        }
    }

    #[test]
    fn took_counts_the_execution_not_the_queue() {
        // Accepted at 10:00:00, queued 2m 30s, executed 20 ms.
        let ended = run(
            "resolved",
            "2026-11-25T10:00:00.000Z",
            Some("2026-11-25T10:02:30.020Z"),
            Some(20.0),
        );
        assert_eq!(took(&ended), "20 ms");
        let never = run(
            "undeliverable",
            "2026-11-25T10:00:00.000Z",
            Some("2026-11-25T10:05:00.000Z"),
            None,
        );
        assert_eq!(took(&never), "queued for 5m 0s");
        let lost = run(
            "lost",
            "2026-11-25T10:00:00.000Z",
            Some("2026-11-25T10:01:22.000Z"),
            None,
        );
        assert_eq!(took(&lost), "1m 22s");
        let queued = run("queued", &crate::records::now_rfc3339(), None, None);
        assert!(
            took(&queued).starts_with("queued for "),
            "{}",
            took(&queued)
        );
    }

    #[test]
    fn a_run_without_a_summary_says_what_it_waits_for() {
        let text = |r: &RunSummary, asking| summary(r, asking).into_string();
        let mut queued = run("queued", "2026-11-25T10:00:00.000Z", None, None);
        assert!(text(&queued, None).contains(">queued<"));
        queued.node = Some("web01".into());
        assert!(text(&queued, None).contains("waiting for agent web01"));
        let asking = run("waiting-approval", "2026-11-25T10:00:00.000Z", None, None);
        assert!(text(&asking, Some("oncall")).contains("waiting for approval from oncall"));
        let mut done = run("resolved", "2026-11-25T10:00:00.000Z", None, None);
        assert_eq!(text(&done, None), "");
        done.summary = "disk <ok>".into();
        assert_eq!(text(&done, None), "disk &lt;ok&gt;");
    }

    #[test]
    fn no_action_and_escalated_do_not_share_a_colour() {
        let tones: Vec<Tone> = RunStatus::ALL.iter().map(|s| tone(*s)).collect();
        assert_ne!(tone(RunStatus::NoAction), tone(RunStatus::Escalated));
        assert_ne!(tone(RunStatus::Resolved), tone(RunStatus::Mitigated));
        assert_ne!(tone(RunStatus::Failed), tone(RunStatus::Escalated));
        assert_eq!(tones.len(), RunStatus::ALL.len());
    }
}
