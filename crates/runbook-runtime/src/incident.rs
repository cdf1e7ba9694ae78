//! Turning what the operator typed into an incident: `-p key=value` pairs and an alert file
//! (one Alertmanager alert, or a whole webhook payload whose first alert is taken).

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::bindings::Alert;

/// `key=value`; the value may contain `=`, the key may not be empty.
pub fn parse_param(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("expected key=value, got {raw:?}")),
    }
}

/// One alert of an Alertmanager (Grafana) webhook payload: what the host reads of it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertJson {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    labels: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    annotations: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    fingerprint: Option<String>,
    #[serde(default)]
    starts_at: Option<String>,
}

/// An Alertmanager (Grafana) webhook payload, version 4: what the host reads of it.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct WebhookJson {
    #[serde(default)]
    status: Option<String>,
    alerts: Vec<AlertJson>,
}

/// Reads an alert file; JSON errors carry line and column.
pub fn read_alert_file(path: &Path) -> Result<Alert> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not valid JSON: {e}", path.display()))?;
    parse_alert(value).with_context(|| format!("{}", path.display()))
}

/// Every alert of an Alertmanager (or Grafana) webhook payload, version 4.
pub fn parse_webhook(value: serde_json::Value) -> Result<Vec<Alert>> {
    let hook: WebhookJson =
        serde_json::from_value(value).context("not an Alertmanager webhook payload")?;
    let group_status = hook.status;
    Ok(hook
        .alerts
        .into_iter()
        .map(|a| to_alert(a, group_status.clone()))
        .collect())
}

pub fn parse_alert(value: serde_json::Value) -> Result<Alert> {
    let (alert, group_status) = if value.get("alerts").is_some() {
        let mut hook: WebhookJson =
            serde_json::from_value(value).context("not an Alertmanager webhook payload")?;
        if hook.alerts.is_empty() {
            bail!("the webhook payload has no alerts");
        }
        (hook.alerts.remove(0), hook.status)
    } else {
        let alert: AlertJson = serde_json::from_value(value)
            .context("not an alert (expected labels, annotations, startsAt, fingerprint)")?;
        (alert, None)
    };
    Ok(to_alert(alert, group_status))
}

fn to_alert(alert: AlertJson, group_status: Option<String>) -> Alert {
    let name = alert
        .labels
        .get("alertname")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    Alert {
        name,
        status: alert
            .status
            .or(group_status)
            .unwrap_or_else(|| "firing".into()),
        labels: pairs(alert.labels),
        annotations: pairs(alert.annotations),
        fingerprint: alert.fingerprint.unwrap_or_default(),
        starts_at: alert.starts_at.unwrap_or_default(),
    }
}

fn pairs(map: serde_json::Map<String, serde_json::Value>) -> Vec<(String, String)> {
    map.into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (k, v)
        })
        .collect()
}

/// The alert as stored with a run and shown in reports.
pub fn alert_json(alert: &Alert) -> serde_json::Value {
    let map = |pairs: &[(String, String)]| -> serde_json::Map<String, serde_json::Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect()
    };
    serde_json::json!({
        "name": alert.name,
        "status": alert.status,
        "labels": map(&alert.labels),
        "annotations": map(&alert.annotations),
        "fingerprint": alert.fingerprint,
        "startsAt": alert.starts_at,
    })
}
