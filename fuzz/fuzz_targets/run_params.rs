//! Generic webhook bodies (`/hooks/run/{playbook}`) into a run's parameters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runbook_core::alert::run_params;

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
                // Exactly: serde_json is built with `float_roundtrip` (correctly rounded).
                let kept = serde_json::from_str::<serde_json::Value>(text).unwrap();
                assert_eq!(&kept, other);
            }
        }
    }
});
