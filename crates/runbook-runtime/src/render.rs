//! Human-readable rendering of runs and timelines for the terminal. Every string a playbook
//! or a webhook chose goes through `esc` (control characters and line breaks escaped): a
//! playbook must not be able to forge a line, move the cursor or write the clipboard.

pub mod event;

use std::fmt::Write;

use crate::bindings::{Capability, Description};
use crate::policy::{Grants, Limits};
use crate::run::RunRecord;
use crate::store::{OutboxRow, RunSummary, StoredRun};
use crate::text::escape as esc;
use crate::timeline::Event;

/// One line per timeline event, as the CLI prints it live (see `event::terminal`).
pub fn event_line(event: &Event) -> String {
    event::terminal(event)
}

/// The closing block after a run: outcome, actions, timings.
pub fn summary(record: &RunRecord) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{}: {}",
        crate::style::outcome(record.status),
        esc(&record.summary)
    );
    for action in &record.actions {
        let _ = writeln!(out, "  action: {}", esc(action));
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
        .map(|e| format!(" — {}", esc(e)))
        .unwrap_or_default();
    format!(
        "{mark} #{} {} ({}) {}: {} after {} {tries}{error}",
        row.id,
        esc(&row.channel),
        esc(&row.kind),
        esc(&row.title),
        esc(&row.state),
        row.attempts
    )
}

/// `host notify list`.
pub fn outbox(rows: &[OutboxRow]) -> String {
    let mut out = String::new();
    for row in rows {
        let run = esc(row.run_id.as_deref().unwrap_or("-"));
        let _ = writeln!(out, "{}  run {run}  {}", row.created_at, delivery_line(row));
    }
    out
}

/// One line of `host runs`.
/// `host runs`: a header row, then one line per run, columns as wide as their widest cell.
pub fn runs_table(runs: &[RunSummary]) -> String {
    const HEADER: [&str; 6] = ["RUN", "STARTED", "PLAYBOOK", "STATUS", "TRIGGER", "SUMMARY"];
    let rows: Vec<[String; 6]> = runs
        .iter()
        .map(|run| {
            let dry = if run.dry_run { " (dry run)" } else { "" };
            let node = run
                .node
                .as_deref()
                .map(|n| format!(" [node {}]", esc(n)))
                .unwrap_or_default();
            [
                esc(&run.id).into_owned(),
                esc(&run.started_at).into_owned(),
                esc(&run.playbook).into_owned(),
                esc(&run.status).into_owned(),
                esc(&run.trigger).into_owned(),
                format!("{}{dry}{node}", esc(&run.summary)),
            ]
        })
        .collect();
    let mut widths = HEADER.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header = HEADER.map(String::from);
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `host runs show <id>`: the run, its timeline, its artifacts.
pub fn stored_run(run: &StoredRun) -> String {
    let mut out = String::new();
    let r = &run.run;
    let _ = writeln!(
        out,
        "run {} · {} ({}) · {} · {}",
        esc(&r.id),
        esc(&r.playbook),
        esc(&run.origin),
        esc(&r.trigger),
        esc(&r.status)
    );
    let took = r
        .took_ms
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
        .map(|ms| {
            let took = crate::style::duration(std::time::Duration::from_secs_f64(ms / 1e3));
            format!(" · took {took}")
        })
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "started {} · ended {}{took}",
        r.started_at,
        r.ended_at.as_deref().unwrap_or("-")
    );
    if let Some(node) = &r.node {
        let _ = writeln!(out, "on node {}", esc(node));
    }
    let _ = writeln!(out, "params {}", esc(&run.params.to_string()));
    if let Some(alert) = &run.alert {
        let _ = writeln!(out, "alert {}", esc(&alert.to_string()));
    }
    let _ = writeln!(out, "summary: {}", esc(&r.summary));
    if let Some(reason) = &run.reason {
        let _ = writeln!(out, "reason: {}", esc(reason));
    }
    for action in run.actions.as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  action: {}",
            esc(action.as_str().unwrap_or_default())
        );
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
                esc(&a.name),
                esc(&a.content_type),
                a.bytes,
                esc(&a.sha256)
            );
        }
    }
    out
}

/// `host list`: a name, its summary, what it wants and where it comes from (or why it is broken).
pub fn playbook_list(rows: &[serde_json::Value]) -> String {
    let mut out = String::new();
    for row in rows {
        let name = esc(row["name"].as_str().unwrap_or_default());
        if let Some(err) = row.get("error") {
            let _ = writeln!(
                out,
                "{name:<14} BROKEN: {}",
                esc(err.as_str().unwrap_or_default())
            );
            continue;
        }
        let caps: Vec<&str> = row["capabilities"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str())
            .collect();
        let _ = writeln!(
            out,
            "{name:<14} {}\n{:<14} wants: {} · {}",
            esc(row["summary"].as_str().unwrap_or_default()),
            "",
            esc(&caps.join(", ")),
            esc(row["origin"].as_str().unwrap_or_default())
        );
    }
    out
}

/// `host inspect`: parameters, wanted vs granted capabilities, limits.
pub fn inspect(d: &Description, origin: &str, grants: &Grants, limits: &Limits) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} ({})\n  {}\n",
        esc(&d.name),
        esc(&d.version),
        esc(origin),
        esc(&d.summary)
    );
    let _ = writeln!(out, "parameters:");
    for p in &d.params {
        let default = match (&p.default, p.required) {
            (_, true) => "required".to_string(),
            (Some(v), _) => format!("default {v:?}"),
            (None, _) => "optional".to_string(),
        };
        let default = format!("{}, {default}", crate::params::type_of(p));
        let _ = writeln!(
            out,
            "  {:<22} {:<22} {}",
            esc(&p.name),
            esc(&default),
            esc(&p.description)
        );
    }
    let _ = writeln!(out, "\ncapabilities (wanted → granted):");
    for cap in &d.capabilities {
        let granted = match cap {
            Capability::FsRead => {
                let content = grants.fs_read.iter().map(|p| p.display().to_string());
                let metadata = grants
                    .fs_meta
                    .iter()
                    .map(|p| format!("{} (metadata only)", p.display()));
                list_or_none(content.chain(metadata))
            }
            Capability::Notify => list_or_none(grants.notify.iter().cloned()),
            Capability::Approval => list_or_none(grants.approval.iter().cloned()),
            Capability::Http => {
                let mut origins = list_or_none(grants.http.iter().cloned());
                if !grants.http_private.is_empty() {
                    origins.push_str(&format!(
                        " (private addresses allowed for {})",
                        grants.http_private.join(", ")
                    ));
                }
                origins
            }
            Capability::Docker => list_or_none(grants.docker.iter().map(|rule| {
                let verbs: Vec<String> = rule
                    .verbs
                    .iter()
                    .map(|v| {
                        serde_json::to_value(v)
                            .unwrap_or_default()
                            .as_str()
                            .unwrap_or_default()
                            .to_string()
                    })
                    .collect();
                let mut targets = rule.containers.clone();
                targets.extend(rule.labels.iter().map(|l| format!("label {l}")));
                targets.extend(rule.networks.iter().map(|n| format!("network {n}")));
                if targets.is_empty() {
                    verbs.join("/")
                } else {
                    format!("{} on {}", verbs.join("/"), targets.join(", "))
                }
            })),
        };
        let _ = writeln!(out, "  {:<8} → {granted}", cap.as_str());
    }
    let _ = writeln!(
        out,
        "\nlimits: deadline {}s · memory {} MiB · {} notifications · {} capability calls per run",
        limits.deadline.as_secs(),
        limits.memory_bytes >> 20,
        limits.max_notifications,
        limits.max_calls
    );
    out
}

fn list_or_none(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    if items.is_empty() {
        "nothing (denied)".to_string()
    } else {
        items.join(", ")
    }
}
