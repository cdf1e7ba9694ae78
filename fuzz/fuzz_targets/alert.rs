//! Alertmanager (and Grafana) webhook bodies into alerts, as `/hooks/alertmanager` and
//! `host run --alert FILE` read them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runbook_core::alert::{AlertFields, parse_alert, parse_webhook};

fuzz_target!(|body: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    let batch = parse_webhook(value.clone());
    let one = parse_alert(value.clone());
    if let Ok(alerts) = &batch {
        // A payload with alerts gives its first alert to `--alert` too.
        match alerts.first() {
            Some(first) => assert_eq!(one.as_ref().ok(), Some(first)),
            None => assert!(one.is_err(), "an empty batch is no alert"),
        }
        for alert in alerts {
            check(alert);
        }
    }
    if let Ok(alert) = &one {
        check(alert);
    }
});

fn check(alert: &AlertFields) {
    // The name is what a route on `alertname` sees.
    let label = alert.labels.iter().find(|(k, _)| k == "alertname");
    assert_eq!(alert.name, label.map(|(_, v)| v.as_str()).unwrap_or(""));
    // A JSON object has unique keys: one value per label.
    for (i, (k, _)) in alert.labels.iter().enumerate() {
        assert!(
            !alert.labels[..i].iter().any(|(o, _)| o == k),
            "label {k:?} twice"
        );
    }
    // What is stored with a run reads back as the same alert.
    let stored = alert.to_json();
    assert_eq!(&parse_alert(stored).expect("a stored alert parses"), alert);
}
