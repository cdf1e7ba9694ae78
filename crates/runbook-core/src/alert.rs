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
    // Objects, read into `AlertJson` one by one: serde's derive would also take an alert (or a
    // whole payload) written as a JSON array of its fields, so `["", [[]]]` was one empty alert.
    #[schema(value_type = Vec<AlertJson>)]
    alerts: Vec<serde_json::Map<String, Value>>,
}

const NOT_A_WEBHOOK: &str = "not an Alertmanager webhook payload";

/// The payload's alerts and group status; only JSON objects are read as payload and alerts.
fn read_webhook(value: Value) -> Result<(Vec<AlertJson>, Option<String>)> {
    if !value.is_object() {
        bail!(
            "{NOT_A_WEBHOOK}: expected a JSON object, got {}",
            json_kind(&value)
        );
    }
    let hook: WebhookJson = serde_json::from_value(value).context(NOT_A_WEBHOOK)?;
    let alerts = hook
        .alerts
        .into_iter()
        .enumerate()
        .map(|(i, alert)| {
            serde_json::from_value(Value::Object(alert))
                .with_context(|| format!("{NOT_A_WEBHOOK}: alert {}", i + 1))
        })
        .collect::<Result<_>>()?;
    Ok((alerts, hook.status))
}

/// Every alert of an Alertmanager (or Grafana) webhook payload, version 4.
pub fn parse_webhook(value: Value) -> Result<Vec<AlertFields>> {
    let (alerts, group_status) = read_webhook(value)?;
    Ok(alerts
        .into_iter()
        .map(|a| to_alert(a, group_status.clone()))
        .collect())
}

/// One alert, or the first alert of a whole webhook payload.
pub fn parse_alert(value: Value) -> Result<AlertFields> {
    const NOT_AN_ALERT: &str = "not an alert (expected labels, annotations, startsAt, fingerprint)";
    let (alert, group_status) = if value.get("alerts").is_some() {
        let (mut alerts, group_status) = read_webhook(value)?;
        if alerts.is_empty() {
            bail!("the webhook payload has no alerts");
        }
        (alerts.remove(0), group_status)
    } else if value.is_object() {
        let alert: AlertJson = serde_json::from_value(value).context(NOT_AN_ALERT)?;
        (alert, None)
    } else {
        bail!(
            "{NOT_AN_ALERT}: expected a JSON object, got {}",
            json_kind(&value)
        );
    };
    Ok(to_alert(alert, group_status))
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
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

    /// A number parameter reaches the playbook as the very double that was sent: serde_json
    /// without `float_roundtrip` reads some 17-digit decimals one ulp off.
    #[test]
    fn float_parameters_keep_every_bit() {
        let mut bits: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            bits ^= bits << 13;
            bits ^= bits >> 7;
            bits ^= bits << 17;
            let sent = f64::from_bits(bits);
            if !sent.is_finite() {
                continue;
            }
            let body = format!("{{\"x\": {sent:.16e}}}");
            let params = run_params(body.as_bytes()).unwrap();
            let got: f64 = params[0].1.parse().unwrap();
            assert_eq!(
                got.to_bits(),
                sent.to_bits(),
                "{body} became {}",
                params[0].1
            );
        }
    }

    /// serde's derive reads a struct from a JSON array of its fields too: `["", [[]]]` was a
    /// webhook payload with one empty alert (the fuzz target `alert` found it, where `--alert`
    /// refused the same bytes). Payloads and alerts are objects or refused.
    #[test]
    fn arrays_are_neither_payloads_nor_alerts() {
        let err = parse_webhook(json!(["", [[]]])).unwrap_err();
        assert!(
            format!("{err:#}").contains("expected a JSON object, got an array"),
            "{err:#}"
        );
        let err = parse_webhook(json!({"alerts": [["firing", {"alertname": "X"}]]})).unwrap_err();
        assert!(format!("{err:#}").contains("expected a map"), "{err:#}");
        assert!(parse_alert(json!(["", [[]]])).is_err());
        assert!(parse_alert(json!(["firing", {"alertname": "X"}])).is_err());
        assert!(parse_alert(json!({"alerts": [[]]})).is_err());
        // An object alert among them still reads.
        let alerts = parse_webhook(json!({"alerts": [{"labels": {"alertname": "X"}}]})).unwrap();
        assert_eq!(alerts[0].name, "X");
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
