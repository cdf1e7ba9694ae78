//! A stored run as a post-incident review in Markdown, under the headings of the operators'
//! post-mortem template: what the machine knows (timeline, every capability call, actions,
//! evidence with hashes) is filled in; what only a human knows is left as a marked placeholder.

use std::fmt::Write;
use std::time::SystemTime;

use crate::records::ApprovalRecord;
use crate::store::{Store, StoredRun};
use crate::timeline::EventKind;

const TO_FILL: &str = "_to be filled in_";

/// Steps a playbook leaves to a human are reported as `manual: <what>`; they become action
/// items.
const MANUAL_PREFIX: &str = "manual: ";

/// The review of a stored run with the questions it asked people, read from `store`. A store
/// that cannot list them still yields the report, saying so.
pub async fn render_from(store: &Store, run: &StoredRun) -> String {
    match store.approvals(Some(&run.run.id)).await {
        Ok(approvals) => render(run, Approvals::Read(&approvals)),
        Err(e) => render(run, Approvals::Unreadable(format!("{e:#}"))),
    }
}

/// The run's approval questions, as the report gets them.
pub enum Approvals<'a> {
    Read(&'a [ApprovalRecord]),
    Unreadable(String),
}

/// The review as Markdown. Whatever a playbook wrote is one line of text here: control
/// characters are escaped, so the report cannot carry terminal escapes or forge headings.
pub fn render(run: &StoredRun, approvals: Approvals) -> String {
    crate::text::escape_keeping_lines(&render_unescaped(run, approvals)).into_owned()
}

fn render_unescaped(run: &StoredRun, approvals: Approvals) -> String {
    use crate::text::escape as esc;
    let r = &run.run;
    let mut out = String::new();
    let date = r.started_at.get(..10).unwrap_or(&r.started_at);
    let _ = writeln!(out, "# Incident Post-Mortem\n");
    let _ = writeln!(
        out,
        "**Incident ID:** INC-{}-{}  ",
        date.replace('-', ""),
        r.id
    );
    let _ = writeln!(out, "**Severity:** {}  ", r.severity);
    let _ = writeln!(out, "**Date:** {date}  ");
    let _ = writeln!(out, "**Duration:** {}  ", duration(run));
    let _ = writeln!(
        out,
        "**Responders:** runbook-host (playbook `{}`, {}){}  ",
        r.playbook,
        run.origin,
        if r.dry_run { ", dry run" } else { "" }
    );
    let _ = writeln!(out, "**Outcome:** {}\n", r.status);

    let _ = writeln!(out, "## Summary\n");
    let _ = writeln!(out, "{}", esc(&r.summary));
    // A held or suppressed run never executed: a safety rail stopped it, and says which.
    match (crate::records::RunStatus::parse(&r.status), &run.reason) {
        (crate::records::RunStatus::Held, Some(reason)) => {
            let _ = writeln!(
                out,
                "\nNot executed: a circuit breaker held the run ({}).",
                esc(reason)
            );
        }
        (crate::records::RunStatus::Suppressed, Some(reason)) => {
            let _ = writeln!(
                out,
                "\nNot executed: a maintenance window suppressed the run ({}).",
                esc(reason)
            );
        }
        (_, Some(reason)) => {
            let _ = writeln!(out, "\nThe run failed: {}", esc(reason));
        }
        (_, None) => {}
    }

    let _ = writeln!(out, "\n## Impact\n");
    if let Some(alert) = &run.alert {
        let name = alert["name"].as_str().unwrap_or("?");
        let status = alert["status"].as_str().unwrap_or("?");
        let started = alert["startsAt"]
            .as_str()
            .or(alert["starts_at"].as_str())
            .filter(|s| !s.is_empty());
        // "firing since T" once, not "firing, firing since T"; a resolved alert says when it began.
        let state = match (status, started) {
            ("firing", Some(at)) => format!("firing since {at}"),
            (status, Some(at)) => format!("{status}; started {at}"),
            (status, None) => status.to_string(),
        };
        let _ = writeln!(out, "- **Alert:** {} ({})", esc(name), esc(&state));
    } else {
        let _ = writeln!(out, "- **Trigger:** {}", r.trigger);
    }
    let problems: Vec<String> = run
        .timeline
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Step {
                name,
                status,
                detail,
            } if (status == "failed" || status == "warning")
                && !name.starts_with(MANUAL_PREFIX) =>
            {
                Some(format!("{name} ({status}): {detail}"))
            }
            _ => None,
        })
        .collect();
    if !problems.is_empty() {
        let _ = writeln!(out, "- **Found:**");
        for problem in &problems {
            let _ = writeln!(out, "  - {}", esc(problem));
        }
    }
    // The storm-safety rails' decisions (README "Safety rails"): calls refused over an action
    // budget, calls the freeze switch turned into "would …".
    let rails: Vec<String> = run
        .timeline
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Call {
                interface,
                function,
                result,
                detail,
                ..
            } if result == "over-budget" || result == "frozen" => Some(format!(
                "{interface}.{function} {result}: {}",
                detail.as_deref().unwrap_or_default()
            )),
            _ => None,
        })
        .collect();
    if !rails.is_empty() {
        let _ = writeln!(out, "- **Safety rails:**");
        for rail in &rails {
            let _ = writeln!(out, "  - {}", esc(rail));
        }
    }
    let _ = writeln!(out, "- **Users affected:** {TO_FILL}");
    let _ = writeln!(out, "- **Downtime:** {TO_FILL}");
    let _ = writeln!(out, "- **Data loss:** {TO_FILL}");

    // The template's headings stay as they are: the incident's times open its Timeline.
    let _ = writeln!(out, "\n## Timeline\n");
    let times = IncidentTimes::of(run);
    let _ = writeln!(out, "### Incident times\n");
    let _ = writeln!(out, "| | UTC | after detection |");
    let _ = writeln!(out, "|---|---|---|");
    for (what, at) in times.rows() {
        let after = times
            .after_detection(at)
            .map_or("–".to_string(), |ms| crate::digest::duration(Some(ms)));
        let _ = writeln!(out, "| {what} | {at} | {after} |");
    }
    let _ = writeln!(out, "\n### Every call\n");
    let _ = writeln!(
        out,
        "All times UTC; every capability call the playbook made.\n"
    );
    let _ = writeln!(
        out,
        "- **{}** — run started ({}, playbook `{}`)",
        clock(&r.started_at),
        r.trigger,
        r.playbook
    );
    for event in &run.timeline {
        let _ = writeln!(
            out,
            "- **{}** — {}",
            clock(&event.at),
            esc(&crate::render::event::markdown(event))
        );
    }
    if let Some(ended) = &r.ended_at {
        let _ = writeln!(out, "- **{}** — run ended: {}", clock(ended), r.status);
    }

    write_approvals(&mut out, approvals);

    let _ = writeln!(out, "\n## Root Cause\n");
    let _ = writeln!(
        out,
        "{TO_FILL}. What the run saw is in the summary and the timeline above."
    );

    let _ = writeln!(out, "\n## Resolution\n");
    let actions: Vec<&str> = run
        .actions
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str())
        .collect();
    if actions.is_empty() {
        let _ = writeln!(out, "No automated action was taken.");
    } else {
        let _ = writeln!(out, "Actions taken by the playbook:\n");
        for action in &actions {
            let _ = writeln!(out, "- {}", esc(action));
        }
    }
    if !run.deliveries.is_empty() {
        let _ = writeln!(out, "\nNotifications:\n");
        for d in &run.deliveries {
            let error = d
                .last_error
                .as_deref()
                .map(|e| format!(" ({})", esc(e)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "- {} ({}): \"{}\" — {}{error}",
                esc(&d.channel),
                esc(&d.kind),
                esc(&d.title),
                esc(&d.state)
            );
        }
    }

    let _ = writeln!(out, "\n## Evidence\n");
    if run.artifacts.is_empty() {
        let _ = writeln!(out, "No artifacts were attached.");
    } else {
        let _ = writeln!(
            out,
            "| artifact | type | bytes | sha256 |\n|---|---|---|---|"
        );
        for a in &run.artifacts {
            let _ = writeln!(
                out,
                "| {} | {} | {} | `{}` |",
                esc(&a.name).replace('|', "\\|"),
                esc(&a.content_type).replace('|', "\\|"),
                a.bytes,
                esc(&a.sha256)
            );
        }
        let _ = writeln!(out, "\n`host runs show {} --json` has the contents.", r.id);
    }

    let _ = writeln!(out, "\n## Lessons Learned\n");
    for heading in [
        "What Went Well",
        "What Didn't Go Well",
        "Where We Got Lucky",
    ] {
        let _ = writeln!(out, "### {heading}\n\n- {TO_FILL}\n");
    }

    let _ = writeln!(out, "## Action Items\n");
    for event in &run.timeline {
        if let EventKind::Step { name, .. } = &event.kind
            && let Some(what) = name.strip_prefix(MANUAL_PREFIX)
        {
            let _ = writeln!(out, "- [ ] {} - Owner: [Name] - Due: [Date]", esc(what));
        }
    }
    if r.status == "escalated" || r.status == "failed" {
        let _ = writeln!(
            out,
            "- [ ] Follow up ({}): {} - Owner: [Name] - Due: [Date]",
            r.status,
            esc(&r.summary)
        );
    }
    let _ = writeln!(
        out,
        "- [ ] Confirm the root cause - Owner: [Name] - Due: [Date]"
    );

    let _ = writeln!(out, "\n## Prevention\n\n{TO_FILL}");
    out
}

/// Each question the run asked people: what, whom, when, and how it ended. Nothing when the
/// run asked nobody.
fn write_approvals(out: &mut String, approvals: Approvals) {
    use crate::text::escape as esc;
    let approvals = match approvals {
        Approvals::Read([]) => return,
        Approvals::Read(approvals) => approvals,
        Approvals::Unreadable(why) => {
            let _ = writeln!(
                out,
                "\n## Approvals\n\nThe questions could not be read: {}",
                esc(&why)
            );
            return;
        }
    };
    let _ = writeln!(out, "\n## Approvals\n");
    let _ = writeln!(out, "Questions the playbook asked people before acting.\n");
    for a in approvals {
        let _ = writeln!(
            out,
            "- **{}** — asked group `{}` at {}",
            esc(&a.title),
            esc(&a.group),
            esc(&a.asked_at)
        );
        for action in &a.actions {
            let _ = writeln!(out, "  - would let it: {}", esc(action));
        }
        let ended = match (a.state.as_str(), &a.answered_by) {
            ("pending", _) => format!("still pending (expires {})", esc(&a.expires_at)),
            (state, Some(by)) => format!("{state} by {}", esc(by)),
            (state, None) => state.to_string(),
        };
        let via = a
            .answered_via
            .as_deref()
            .map(|v| format!(" via {}", esc(v)))
            .unwrap_or_default();
        let at = a
            .answered_at
            .as_deref()
            .map(|t| format!(" at {}", esc(t)))
            .unwrap_or_default();
        let _ = writeln!(out, "  - **Answer:** {ended}{via}{at}");
        if let Some(reason) = a.reason.as_deref().filter(|r| !r.is_empty()) {
            let _ = writeln!(out, "  - **Reason:** {}", esc(reason));
        }
    }
}

/// An incident's milestones as the store has them (RFC 3339): detected is the alert's
/// `startsAt` (else when the host accepted the run); mitigated and resolved are the run's end
/// when its outcome says so.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IncidentTimes {
    pub detected: String,
    pub accepted: String,
    pub started: Option<String>,
    pub first_action: Option<String>,
    pub mitigated: Option<String>,
    pub resolved: Option<String>,
    pub ended: Option<String>,
}

impl IncidentTimes {
    pub fn of(run: &StoredRun) -> IncidentTimes {
        use crate::records::RunStatus;
        let r = &run.run;
        let events: Vec<String> = run
            .timeline
            .iter()
            .filter_map(|e| serde_json::to_string(e).ok())
            .collect();
        let status = RunStatus::parse(&r.status);
        let alert_start = runbook_core::figures::alert_keys(run.alert.as_ref()).1;
        IncidentTimes {
            detected: alert_start.unwrap_or_else(|| r.started_at.clone()),
            accepted: r.started_at.clone(),
            started: r.running_since.clone(),
            first_action: runbook_core::figures::actions_of(&events).first_at,
            mitigated: r
                .ended_at
                .clone()
                .filter(|_| matches!(status, RunStatus::Resolved | RunStatus::Mitigated)),
            resolved: r.ended_at.clone().filter(|_| status == RunStatus::Resolved),
            ended: r.ended_at.clone(),
        }
    }

    /// (milestone, time) of those that happened, in order.
    pub fn rows(&self) -> Vec<(&'static str, &str)> {
        let mut rows = vec![
            ("detected", self.detected.as_str()),
            ("accepted", &self.accepted),
        ];
        for (what, at) in [
            ("started", &self.started),
            ("first action", &self.first_action),
            ("mitigated", &self.mitigated),
            ("resolved", &self.resolved),
            ("ended", &self.ended),
        ] {
            if let Some(at) = at {
                rows.push((what, at.as_str()));
            }
        }
        rows
    }

    /// Milliseconds from detection to `at`.
    pub fn after_detection(&self, at: &str) -> Option<i64> {
        let parse = |t: &str| humantime::parse_rfc3339_weak(t).ok();
        let (from, to) = (parse(&self.detected)?, parse(at)?);
        Some(match to.duration_since(from) {
            Ok(d) => d.as_millis() as i64,
            Err(e) => -(e.duration().as_millis() as i64),
        })
    }
}

/// `HH:MM:SS.mmm` of an RFC 3339 time.
fn clock(at: &str) -> &str {
    at.get(11..23).unwrap_or(at)
}

/// How long the run executed (its timings, without time queued), else accepted to ended.
fn duration(run: &StoredRun) -> String {
    let parse = |t: &str| humantime::parse_rfc3339(t).ok();
    let start = parse(&run.run.started_at);
    let end = run.run.ended_at.as_deref().and_then(parse);
    let executed = run.run.took_ms.filter(|ms| ms.is_finite() && *ms >= 0.0);
    match (start, end, executed) {
        (_, Some(_), Some(ms)) => format!(
            "{} (the run)",
            crate::style::duration(std::time::Duration::from_secs_f64(ms / 1e3))
        ),
        (Some(s), Some(e), None) => format!(
            "{} (the run)",
            crate::style::duration(e.duration_since(s).unwrap_or_default())
        ),
        (Some(s), None, _) => format!(
            "still running ({} so far)",
            crate::style::duration(SystemTime::now().duration_since(s).unwrap_or_default())
        ),
        _ => TO_FILL.to_string(),
    }
}
