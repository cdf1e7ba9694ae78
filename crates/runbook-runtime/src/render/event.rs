//! A timeline event for each audience, in one place: a new `EventKind` is a compile error here
//! for every audience at once. The terminal line (`host run`, `host runs show`, a fleet
//! agent's log) and the postmortem's Markdown are here; JSON is the event's serde form
//! (`timeline::Event`); the console's HTML is built with its templates in the server
//! (`ui/pages.rs`, escaped by maud), which this crate must not import.

use crate::text::escape as esc;
use crate::timeline::{Event, EventKind};

/// The terminal: one line per event, as the CLI prints it live. Every string a playbook
/// or a webhook chose is escaped (`esc`): no forged lines, no cursor moves.
pub fn terminal(event: &Event) -> String {
    let offset = format!("{:>9.1}ms", event.offset_ms);
    match &event.kind {
        EventKind::Log { level, message } => {
            format!("{offset}  {:<5}  {}", esc(level), esc(message))
        }
        EventKind::Step {
            name,
            status,
            detail,
        } => {
            let detail = if detail.is_empty() {
                String::new()
            } else {
                format!(": {}", esc(detail))
            };
            format!("{offset}  step   {} [{}]{detail}", esc(name), esc(status))
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
                .map(|d| format!(" ({})", esc(d)))
                .unwrap_or_default();
            format!(
                "{offset}  call   {interface}.{function} {} → {}{detail}  [{duration_ms:.2}ms]",
                esc(&args.to_string()),
                esc(result)
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
            format!(
                "{offset}  notify {} [{}] {} → {}{id}",
                esc(channel),
                esc(severity),
                esc(title),
                esc(state)
            )
        }
        EventKind::Artifact {
            name,
            content_type,
            bytes,
            sha256,
        } => format!(
            "{offset}  attach {} ({}, {bytes} bytes, sha256 {})",
            esc(name),
            esc(content_type),
            esc(sha256.get(..12).unwrap_or(sha256))
        ),
    }
}

/// Markdown (a postmortem's timeline): the caller escapes the line as a whole.
pub fn markdown(event: &Event) -> String {
    match &event.kind {
        EventKind::Log { level, message } => format!("log {level}: {message}"),
        EventKind::Step {
            name,
            status,
            detail,
        } => format!("step **{name}** [{status}] {detail}"),
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
                "call `{interface}.{function}` `{args}` → {result}{detail} [{duration_ms:.1} ms]"
            )
        }
        EventKind::Notification {
            channel,
            severity,
            title,
            state,
            ..
        } => format!("notified {channel} [{severity}] \"{title}\" → {state}"),
        EventKind::Artifact {
            name,
            bytes,
            sha256,
            ..
        } => format!(
            "attached {name} ({bytes} bytes, sha256 {})",
            &sha256[..12.min(sha256.len())]
        ),
    }
}
