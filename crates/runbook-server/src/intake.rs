//! What the hooks do with work they cannot take for good: an alert of a batch that fails on
//! its own, a run for a node that does not exist. Such work is refused and recorded where
//! alerts are (`rejected`), never retried for ever and never sent to ops.

use std::time::SystemTime;

use serde_json::{Value, json};

use super::dispatch::Refusal;
use super::{App, handle_alert};
use crate::bindings::Alert;
use crate::store::{AlertRecord, Disposition};

/// One alert of a batch. An error that a second try repeats while the store answers is this
/// alert's own (permanent): it is recorded `rejected` and the batch goes on, since answering
/// 5xx would have Alertmanager resend the whole batch for ever. A store that does not answer,
/// or a full queue, is "try again later" for the batch.
pub(super) async fn handle_in_batch(app: &App, alert: &Alert) -> Result<Vec<AlertRecord>, Refusal> {
    let failed = match handle_alert(app, alert).await {
        Err(e @ (Refusal::Unavailable(_) | Refusal::Internal(_))) => e,
        handled => return handled,
    };
    let again = match handle_alert(app, alert).await {
        Err(e @ (Refusal::Unavailable(_) | Refusal::Internal(_))) => e,
        handled => return handled,
    };
    let store = app
        .dispatcher
        .host()
        .store
        .clone()
        .expect("the server has a store");
    if store.ping().await.is_err() {
        return Err(again);
    }
    tracing::warn!(
        "alert {}: refused for good after two tries ({failed}; then {again})",
        crate::text::escape(&crate::text::echo(&alert.name))
    );
    let labels = alert
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect::<serde_json::Map<_, _>>();
    let rejected = AlertRecord {
        received_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        source: "alertmanager".into(),
        alertname: alert.name.clone(),
        status: alert.status.clone(),
        fingerprint: alert.fingerprint.clone(),
        starts_at: alert.starts_at.clone(),
        labels: Value::Object(labels),
        disposition: Disposition::Rejected,
        playbook: None,
        run_id: None,
        detail: Some(crate::text::truncate(&again.to_string(), 1024).into_owned()),
    };
    if let Err(e) = store.record_alerts(vec![rejected.clone()]).await {
        tracing::warn!("recording a refused alert: {e:#}");
    }
    Ok(vec![rejected])
}

/// A run hook refused for good is kept where alerts are (`rejected`), so the operator sees
/// who keeps asking for a node that does not exist; nobody is notified.
pub(super) async fn record_refused_run(app: &App, playbook: &str, node: &str, why: &str) {
    let store = app
        .dispatcher
        .host()
        .store
        .clone()
        .expect("the server has a store");
    // The name is the caller's (it may be no playbook at all): kept short.
    let playbook = crate::text::echo(playbook).into_owned();
    let record = AlertRecord {
        received_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        source: "webhook".into(),
        alertname: playbook.clone(),
        status: "firing".into(),
        fingerprint: String::new(),
        starts_at: String::new(),
        labels: json!({ "node": node }),
        disposition: Disposition::Rejected,
        playbook: Some(playbook.clone()),
        run_id: None,
        detail: Some(why.into()),
    };
    if let Err(e) = store.record_alerts(vec![record]).await {
        tracing::warn!("recording a refused run of {playbook}: {e:#}");
    }
}
