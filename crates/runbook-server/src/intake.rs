//! What the hooks do with work they cannot take for good: an alert of a batch that fails on
//! its own, a run for a node that does not exist. Such work is refused and recorded where
//! alerts are (`rejected`), never retried for ever and never sent to ops.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::admission::{Admission, Refusal};
use crate::app::App;
use crate::bindings::Alert;
use crate::records::Trigger;
use crate::run::RunRequest;
use crate::store::{AlertRecord, Disposition};

/// One alert of a batch. An error that a second try repeats while the store answers is this
/// alert's own (permanent): it is recorded `rejected` and the batch goes on, since answering
/// 5xx would have Alertmanager resend the whole batch for ever. A store that does not answer,
/// or a full queue, is "try again later" for the batch.
pub(super) async fn handle_in_batch(app: &App, alert: &Alert) -> Result<Vec<AlertRecord>, Refusal> {
    let failed = match handle_alert(app, alert).await {
        Err(e @ (Refusal::Unavailable | Refusal::Internal(_))) => e,
        handled => return handled,
    };
    let again = match handle_alert(app, alert).await {
        Err(e @ (Refusal::Unavailable | Refusal::Internal(_))) => e,
        handled => return handled,
    };
    let store = app.store.clone();
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
    let store = app.store.clone();
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

/// Routes one alert and records what became of it (started, deduplicated, cooldown, resolved,
/// unrouted, rejected). Only "try again later" conditions are returned as errors. A route's
/// admission stores its own record (with the run, in the same transaction); the others are
/// stored together at the end.
pub(crate) async fn handle_alert(app: &App, alert: &Alert) -> Result<Vec<AlertRecord>, Refusal> {
    let host = app.dispatcher.host();
    let store = app.store.clone();
    let labels: serde_json::Map<String, Value> = alert
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let record = |disposition: Disposition,
                  playbook: Option<&str>,
                  run_id: Option<String>,
                  detail: Option<String>| AlertRecord {
        received_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        source: "alertmanager".into(),
        alertname: alert.name.clone(),
        status: alert.status.clone(),
        fingerprint: alert.fingerprint.clone(),
        starts_at: alert.starts_at.clone(),
        labels: Value::Object(labels.clone()),
        disposition,
        playbook: playbook.map(String::from),
        run_id,
        detail,
    };
    let mut records = Vec::new();
    let mut unstored = Vec::new();
    if alert.status == "resolved" {
        let resolved = crate::notify::AlertRef {
            name: alert.name.clone(),
            fingerprint: alert.fingerprint.clone(),
            status: alert.status.clone(),
        };
        if let Err(e) = host.notifier().resolve_incident(&resolved).await {
            tracing::warn!(
                "resolving {} in PagerDuty: {e:#}",
                crate::text::escape(&crate::text::echo(&alert.name))
            );
        }
    }
    let live = app.live();
    let routes = live.router.routes_for(alert);
    if alert.status == "resolved" && !host.config.server.run_resolved {
        let playbooks: Vec<&str> = routes.iter().map(|r| r.config.playbook.as_str()).collect();
        unstored.push(record(
            Disposition::Resolved,
            playbooks.first().copied(),
            None,
            None,
        ));
    } else if routes.is_empty() {
        unstored.push(record(Disposition::Unrouted, None, None, None));
    }
    records.extend(unstored.iter().cloned());
    let wants_runs = alert.status != "resolved" || host.config.server.run_resolved;
    for route in routes.into_iter().filter(|_| wants_runs) {
        let playbook = route.config.playbook.as_str();
        let request = RunRequest {
            params: route.params_for(alert),
            alert: Some(alert.clone()),
            trigger: Trigger::Alert,
            by: None,
            dry_run: route.config.dry_run,
            dedup_key: Some(format!(
                "{playbook}|{}|{}|{}",
                alert.fingerprint, alert.starts_at, alert.status
            )),
            severity: route.severity,
        };
        let cooldown = route
            .config
            .cooldown_secs
            .map(|s| (alert.fingerprint.clone(), Duration::from_secs(s)));
        let node = match route.node_for(alert).transpose() {
            Ok(node) => node,
            Err(problem) => {
                let rejected = record(Disposition::Rejected, Some(playbook), None, Some(problem));
                records.push(rejected.clone());
                unstored.push(rejected);
                continue;
            }
        };
        // Disposition and run id are the store's to fill in (`Admitted::disposition`).
        let template = record(Disposition::Started, Some(playbook), None, None);
        let submitted = app
            .dispatcher
            .submit(playbook, request, node, cooldown, Some(template))
            .await;
        match submitted {
            Ok(Admission::Started(id)) => {
                records.push(record(Disposition::Started, Some(playbook), Some(id), None));
            }
            Ok(Admission::Gated(id, decision)) => {
                let disposition = match decision {
                    crate::safety::Decision::Held { .. } => Disposition::Held,
                    _ => Disposition::Suppressed,
                };
                let reason = decision.gate().reason().map(String::from);
                records.push(record(disposition, Some(playbook), Some(id), reason));
            }
            Ok(Admission::Deduplicated(id)) => {
                records.push(record(
                    Disposition::Deduplicated,
                    Some(playbook),
                    Some(id),
                    None,
                ));
            }
            Ok(Admission::Cooldown) => {
                records.push(record(Disposition::Cooldown, Some(playbook), None, None))
            }
            // A route whose parameters or playbook are wrong will never work: say so, don't retry.
            Err(
                e @ (Refusal::Invalid(_)
                | Refusal::BadValue(_)
                | Refusal::UnknownPlaybook(_)
                | Refusal::UnknownNode(_)
                | Refusal::Broken(_)),
            ) => {
                let rejected = record(
                    Disposition::Rejected,
                    Some(playbook),
                    None,
                    Some(e.to_string()),
                );
                records.push(rejected.clone());
                unstored.push(rejected);
            }
            Err(e) => return Err(e),
        }
    }
    if !unstored.is_empty() {
        store
            .record_alerts(unstored)
            .await
            .map_err(|e| Refusal::store("recording the alert", e))?;
    }
    Ok(records)
}
