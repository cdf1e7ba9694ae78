//! The audit trail's one way in: an act is stored (the store is the record), then shipped to
//! each `[audit] sinks` channel through the notification outbox (at-least-once: the outbox row
//! is written before delivery, and a row that fails is retried like any message). Every
//! process that changes state (the server's handlers, the CLI's commands) records through here.
//!
//! A process can die between storing an event and queueing it; `queue_unshipped` (at `host
//! serve` start and every [`SWEEP`]) queues what it left, so an event stored is an event shipped.

use std::sync::Arc;
use std::time::Duration;

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

/// How often `host serve` looks for stored events no sink has queued.
pub const SWEEP: Duration = Duration::from_secs(60);
/// How far back it looks: an event older than this that was never queued stays in the store
/// (`host audit` shows it) and is not shipped.
pub const SWEEP_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most events queued per sink and sweep; the next sweep takes the rest.
pub const SWEEP_LIMIT: usize = 1000;

/// One row per event and sink, whichever process queues it.
fn once_key(id: i64, sink: &str) -> Option<String> {
    Some(format!("audit-{id}-{sink}"))
}

/// Queues every event of the last [`SWEEP_WINDOW`] that has no outbox row for a sink yet
/// (its process died between storing and queueing it); the number queued. Idempotent: the
/// once key makes a race with the recording process one row.
pub async fn queue_unshipped(
    store: &Arc<Store>,
    notifier: &Notifier,
    config: &AuditConfig,
) -> Result<usize> {
    let since = crate::records::now_ms() - SWEEP_WINDOW.as_millis() as i64;
    let mut queued = 0;
    for sink in &config.sinks {
        if notifier.kind_of(sink).is_none() {
            continue; // reported by `host check` and at each act
        }
        for event in store.audit_unshipped(sink, since, SWEEP_LIMIT).await? {
            match notifier
                .submit_once(sink, &message(&event), once_key(event.id, sink))
                .await
            {
                Ok(_) => queued += 1,
                Err(e) => tracing::warn!(sink, "audit event {} not queued: {e}", event.id),
            }
        }
    }
    if queued > 0 {
        tracing::warn!("audit: queued {queued} stored events no sink had (a process died)");
    }
    Ok(queued)
}

/// `queue_unshipped` now and every [`SWEEP`], with the config `current` gives at each sweep.
pub async fn keep_shipping(
    store: Arc<Store>,
    notifier: Arc<Notifier>,
    current: impl Fn() -> AuditConfig,
) {
    loop {
        if let Err(e) = queue_unshipped(&store, &notifier, &current()).await {
            tracing::warn!("audit: looking for unshipped events: {e:#}");
        }
        tokio::time::sleep(SWEEP).await;
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
            if let Err(e) = notifier
                .submit_once(sink, &message, once_key(stored.id, sink))
                .await
            {
                tracing::warn!(sink, "audit event {} not queued: {e}", stored.id);
            }
        }
    }
    Ok(stored)
}
