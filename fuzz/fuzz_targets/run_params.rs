//! Generic webhook bodies (`/hooks/run/{playbook}`) into a run's parameters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runbook_core::alert::run_params;
use serde_json::Value;

fuzz_target!(|body: &[u8]| {
    let Ok(params) = run_params(body) else {
        // Refused: only what is not an empty body or a JSON object.
        let object = serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v.is_object());
        assert!(!body.is_empty() && !object);
        return;
    };
    let value: serde_json::Value = if body.is_empty() {
        serde_json::json!({})
    } else {
        serde_json::from_slice(body).expect("accepted bodies are JSON")
    };
    let object = value.as_object().expect("accepted bodies are objects");
    assert_eq!(params.len(), object.len(), "one parameter per key");
    for (key, text) in &params {
        // A string stays itself; anything else is its JSON text, which parses back.
        match &object[key] {
            serde_json::Value::String(s) => assert_eq!(s, text),
            other => {
                let kept = serde_json::from_str::<serde_json::Value>(text).unwrap();
                assert!(same(&kept, other), "{kept} {other}");
            }
        }
    }
});

/// Equal JSON, floats to within their last bits: serde_json's parser is not correctly rounded
/// (no `float_roundtrip`), so a long decimal may read back one ulp away.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= x.abs().max(y.abs()) * 4.0 * f64::EPSILON
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}
