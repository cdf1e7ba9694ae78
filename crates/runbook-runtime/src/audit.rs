//! The audit trail's one way in: an act is stored (the store is the record), then shipped to
//! each `[audit] sinks` channel through the notification outbox (at-least-once: the outbox row
//! is written before delivery, and a row that fails is retried like any message). Every
//! process that changes state (the server's handlers, the CLI's commands) records through here.

use std::sync::Arc;

use anyhow::Result;

use crate::notify::{Notification, Notifier};
use crate::store::Store;
use runbook_core::access::{AuditEvent, NewAudit};

/// `[audit]` in host.toml.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AuditConfig {
    /// Notification channels (`[notify.<name>]`) each event is shipped to: a `file` channel
    /// gives JSON lines (fsync'd appends), a `webhook` channel a signed POST per event.
    #[serde(default)]
    pub sinks: Vec<String>,
}

/// The event as a message: title `audit: <act>`, its fields as fields, `audit-<id>` as its
/// dedup key (a receiver drops a repeat of an at-least-once delivery by it).
pub fn message(event: &AuditEvent) -> Notification {
    let mut fields = vec![
        ("id".to_string(), event.id.to_string()),
        ("act".to_string(), event.act.to_string()),
        ("actor".to_string(), event.actor.clone()),
        ("proof".to_string(), event.proof.clone()),
        ("source".to_string(), event.source.clone()),
        ("at".to_string(), event.at.clone()),
    ];
    fields.extend(event.target.clone().map(|t| ("target".to_string(), t)));
    fields.extend(event.detail.clone().map(|d| ("detail".to_string(), d)));
    Notification {
        title: format!("audit: {}", event.act),
        body: format!(
            "{} by {} from {}{}",
            event.act,
            event.actor,
            event.source,
            event
                .target
                .as_deref()
                .map(|t| format!(" on {t}"))
                .unwrap_or_default()
        ),
        severity: "info".into(),
        fields,
        playbook: String::new(),
        run_id: String::new(),
        alert: None,
        dedup_key: format!("audit-{}", event.id),
        event_action: "trigger".into(),
        created_at: event.at.clone(),
        source: crate::notify::hostname(),
        priority: None,
    }
}

/// Records `event` and queues it to every sink. The act already happened: a store that does
/// not answer is reported to the caller (who logs it), never undoes the act.
pub async fn record(
    store: &Arc<Store>,
    notifier: Option<&Notifier>,
    config: &AuditConfig,
    event: NewAudit,
) -> Result<AuditEvent> {
    let stored = store.audit_append(event).await?;
    if let Some(notifier) = notifier {
        let message = message(&stored);
        for sink in &config.sinks {
            // One row per event and sink whoever queues it (`once_key`).
            let once = Some(format!("audit-{}-{sink}", stored.id));
            if let Err(e) = notifier.submit_once(sink, &message, once).await {
                tracing::warn!(sink, "audit event {} not queued: {e}", stored.id);
            }
        }
    }
    Ok(stored)
}
