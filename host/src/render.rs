//! Human-readable rendering of runs and timelines for the terminal.

use std::fmt::Write;

use crate::run::RunRecord;
use crate::store::{OutboxRow, RunSummary, StoredRun};
use crate::timeline::{Event, EventKind};

/// One line per timeline event, as the CLI prints it live.
pub fn event_line(event: &Event) -> String {
    let offset = format!("{:>9.1}ms", event.offset_ms);
    match &event.kind {
        EventKind::Log { level, message } => format!("{offset}  {level:<5}  {message}"),
        EventKind::Step {
            name,
            status,
            detail,
        } => {
            let detail = if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            };
            format!("{offset}  step   {name} [{status}]{detail}")
        }
        EventKind::Call {
            interface,
            function,
            args,
            result,
            detail,
            duration_ms,
        } => {
            let detail = detail
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            format!(
                "{offset}  call   {interface}.{function} {args} → {result}{detail}  [{duration_ms:.2}ms]"
            )
        }
        EventKind::Notification {
            channel,
            severity,
            title,
            state,
            outbox_id,
        } => {
            let id = outbox_id
                .map(|id| format!(" (outbox #{id})"))
                .unwrap_or_default();
            format!("{offset}  notify {channel} [{severity}] {title} → {state}{id}")
        }
        EventKind::Artifact {
            name,
            content_type,
            bytes,
            sha256,
        } => format!(
            "{offset}  attach {name} ({content_type}, {bytes} bytes, sha256 {})",
            &sha256[..12]
        ),
    }
}

/// The closing block after a run: outcome, actions, timings.
pub fn summary(record: &RunRecord) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{}: {}",
        record.status.to_uppercase(),
        record.summary
    );
    for action in &record.actions {
        let _ = writeln!(out, "  action: {action}");
    }
    let t = &record.timings;
    let compile = if t.load.cache == "hit" {
        "cache hit".to_string()
    } else {
        format!("compiled in {:.1}ms", t.load.compile_ms)
    };
    let _ = writeln!(
        out,
        "  run {} · load {:.2}ms ({compile}) · instantiate {:.2}ms · run {:.1}ms (capability calls {:.1}ms) · total {:.1}ms",
        record.run_id,
        t.load.load_ms,
        t.instantiate_ms,
        t.run_ms,
        t.capability_calls_ms,
        t.total_ms
    );
    out
}

/// Where each of a run's notifications stands after the CLI's bounded wait.
pub fn deliveries(rows: &[OutboxRow]) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        return out;
    }
    let _ = writeln!(out, "\nnotifications:");
    for row in rows {
        let _ = writeln!(out, "  {}", delivery_line(row));
    }
    let pending = rows.iter().filter(|r| r.state == "pending").count();
    if pending > 0 {
        let _ = writeln!(
            out,
            "  {pending} still pending: kept in the outbox; the next `host serve`, `host run` or \
             `host notify flush` delivers them"
        );
    }
    out
}

fn delivery_line(row: &OutboxRow) -> String {
    let mark = match row.state.as_str() {
        "delivered" => "✓",
        "failed" => "✗",
        _ => "…",
    };
    let tries = if row.attempts == 1 { "try" } else { "tries" };
    let error = row
        .last_error
        .as_deref()
        .map(|e| format!(" — {e}"))
        .unwrap_or_default();
    format!(
        "{mark} #{} {} ({}) {}: {} after {} {tries}{error}",
        row.id, row.channel, row.kind, row.title, row.state, row.attempts
    )
}

/// `host notify list`.
pub fn outbox(rows: &[OutboxRow]) -> String {
    let mut out = String::new();
    for row in rows {
        let run = row.run_id.as_deref().unwrap_or("-");
        let _ = writeln!(out, "{}  run {run}  {}", row.created_at, delivery_line(row));
    }
    out
}

/// One line of `host runs`.
pub fn run_line(run: &RunSummary) -> String {
    let dry = if run.dry_run { " (dry run)" } else { "" };
    format!(
        "{}  {}  {:<10} {:<11} {:<8} {}{dry}",
        run.id, run.started_at, run.playbook, run.status, run.trigger, run.summary
    )
}

/// `host runs show <id>`: the run, its timeline, its artifacts.
pub fn stored_run(run: &StoredRun) -> String {
    let mut out = String::new();
    let r = &run.run;
    let _ = writeln!(
        out,
        "run {} · {} ({}) · {} · {}",
        r.id, r.playbook, run.origin, r.trigger, r.status
    );
    let _ = writeln!(
        out,
        "started {} · ended {}",
        r.started_at,
        r.ended_at.as_deref().unwrap_or("-")
    );
    let _ = writeln!(out, "params {}", run.params);
    if let Some(alert) = &run.alert {
        let _ = writeln!(out, "alert {alert}");
    }
    let _ = writeln!(out, "summary: {}", r.summary);
    if let Some(reason) = &run.reason {
        let _ = writeln!(out, "reason: {reason}");
    }
    for action in run.actions.as_array().into_iter().flatten() {
        let _ = writeln!(out, "  action: {}", action.as_str().unwrap_or_default());
    }
    let _ = writeln!(out, "\ntimeline:");
    for event in &run.timeline {
        let _ = writeln!(out, "{}", event_line(event));
    }
    out.push_str(&deliveries(&run.deliveries));
    if !run.artifacts.is_empty() {
        let _ = writeln!(out, "\nartifacts:");
        for a in &run.artifacts {
            let _ = writeln!(
                out,
                "  {} ({}, {} bytes, sha256 {})",
                a.name, a.content_type, a.bytes, a.sha256
            );
        }
    }
    out
}
