//! Alerts as monitoring sends them: an Alertmanager (or Grafana) webhook payload, version 4,
//! or one alert of it. Untrusted JSON in, plain fields out; the runtime turns these into the
//! contract's `alert` record.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::Value;

/// One alert, every value a string (a non-string label is kept as its JSON text).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AlertFields {
    /// The `alertname` label (empty when there is none).
    pub name: String,
    pub status: String,
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    pub fingerprint: String,
    pub starts_at: String,
}

/// One alert of an Alertmanager (Grafana) webhook payload: what the host reads of it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertJson {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    labels: serde_json::Map<String, Value>,
    #[serde(default)]
    annotations: serde_json::Map<String, Value>,
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

/// Every alert of an Alertmanager (or Grafana) webhook payload, version 4.
pub fn parse_webhook(value: Value) -> Result<Vec<AlertFields>> {
    let hook: WebhookJson =
        serde_json::from_value(value).context("not an Alertmanager webhook payload")?;
    let group_status = hook.status;
    Ok(hook
        .alerts
        .into_iter()
        .map(|a| to_alert(a, group_status.clone()))
        .collect())
}

/// One alert, or the first alert of a whole webhook payload.
pub fn parse_alert(value: Value) -> Result<AlertFields> {
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

fn to_alert(alert: AlertJson, group_status: Option<String>) -> AlertFields {
    let labels = pairs(alert.labels);
    // The name is the label as routes match it: a non-string `alertname` too.
    let name = labels
        .iter()
        .find(|(k, _)| k == "alertname")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    AlertFields {
        name,
        status: alert
            .status
            .or(group_status)
            .unwrap_or_else(|| "firing".into()),
        labels,
        annotations: pairs(alert.annotations),
        fingerprint: alert.fingerprint.unwrap_or_default(),
        starts_at: alert.starts_at.unwrap_or_default(),
    }
}

fn pairs(map: serde_json::Map<String, Value>) -> Vec<(String, String)> {
    map.into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (k, v)
        })
        .collect()
}

impl AlertFields {
    /// The alert as stored with a run and shown in reports (and as `parse_alert` reads it).
    pub fn to_json(&self) -> Value {
        let map = |pairs: &[(String, String)]| -> serde_json::Map<String, Value> {
            pairs
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect()
        };
        serde_json::json!({
            "name": self.name,
            "status": self.status,
            "labels": map(&self.labels),
            "annotations": map(&self.annotations),
            "fingerprint": self.fingerprint,
            "startsAt": self.starts_at,
        })
    }
}

/// The parameters of a generic webhook (`/hooks/run/{playbook}`): an empty body, or a JSON
/// object whose values are kept as strings (a non-string as its JSON text). `Err` is the
/// message of the 400 answer.
pub fn run_params(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(pairs(map)),
        Ok(_) => Err("the body must be a JSON object of parameters".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_webhook_gives_every_alert_with_the_group_status() {
        let alerts = parse_webhook(json!({"status": "resolved", "alerts": [
            {"labels": {"alertname": "DiskFull", "instance": "a:9100"}, "fingerprint": "f1"},
            {"status": "firing", "labels": {}},
        ]}))
        .unwrap();
        assert_eq!(alerts[0].name, "DiskFull");
        assert_eq!(alerts[0].status, "resolved");
        assert_eq!(alerts[1].status, "firing");
        assert!(parse_webhook(json!({"alerts": "no"})).is_err());
        assert!(parse_alert(json!({"alerts": []})).is_err());
    }

    /// A non-string `alertname` was kept as a label (`5`) but the name was empty, so
    /// `{{ alert.name }}` and a route on `alertname="5"` disagreed, and the stored alert read
    /// back as another one (the round-trip invariant of `fuzz/` target `alert`).
    #[test]
    fn a_non_string_alertname_is_the_name_routes_see() {
        let alert = parse_alert(json!({"labels": {"alertname": 5}})).unwrap();
        assert_eq!(alert.name, "5");
        assert_eq!(parse_alert(alert.to_json()).unwrap(), alert);
    }
}
