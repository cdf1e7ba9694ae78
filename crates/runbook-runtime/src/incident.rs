//! Turning what the operator typed into an incident: `-p key=value` pairs and an alert file
//! (one Alertmanager alert, or a whole webhook payload whose first alert is taken).

use std::path::Path;

use anyhow::{Context, Result};
use runbook_core::alert::AlertFields;

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

/// Reads an alert file; JSON errors carry line and column.
pub fn read_alert_file(path: &Path) -> Result<Alert> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not valid JSON: {e}", path.display()))?;
    parse_alert(value).with_context(|| format!("{}", path.display()))
}

/// Every alert of an Alertmanager (or Grafana) webhook payload, version 4 (parsed in core).
pub fn parse_webhook(value: serde_json::Value) -> Result<Vec<Alert>> {
    Ok(runbook_core::alert::parse_webhook(value)?
        .into_iter()
        .map(from_fields)
        .collect())
}

pub fn parse_alert(value: serde_json::Value) -> Result<Alert> {
    runbook_core::alert::parse_alert(value).map(from_fields)
}

fn from_fields(a: AlertFields) -> Alert {
    Alert {
        name: a.name,
        status: a.status,
        labels: a.labels,
        annotations: a.annotations,
        fingerprint: a.fingerprint,
        starts_at: a.starts_at,
    }
}

/// The alert as core's parsers and templates see it.
pub fn fields_of(alert: &Alert) -> AlertFields {
    AlertFields {
        name: alert.name.clone(),
        status: alert.status.clone(),
        labels: alert.labels.clone(),
        annotations: alert.annotations.clone(),
        fingerprint: alert.fingerprint.clone(),
        starts_at: alert.starts_at.clone(),
    }
}

/// The alert as stored with a run and shown in reports.
pub fn alert_json(alert: &Alert) -> serde_json::Value {
    fields_of(alert).to_json()
}
