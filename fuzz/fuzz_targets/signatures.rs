//! Webhook signatures: Standard Webhooks, GitHub's X-Hub-Signature-256 and Slack's v0. A body
//! signed with a key verifies; the same body altered by one byte, another id or a stale
//! timestamp never does; whatever the sender puts in the headers is only ever a refusal.
//! Input: line 1 the secret, line 2 the id, line 3 a signature header as sent, the rest the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runbook_core::signing::{
    MAX_WEBHOOK_ID_BYTES, STANDARD_WEBHOOKS_TOLERANCE_SECS, hub_signature_header,
    standard_webhooks_header, standard_webhooks_key, verify_hub_signature,
    verify_standard_webhooks,
};
use runbook_core::slack;

const NOW: u64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == b'\n');
    let key = parts.next().unwrap_or_default();
    let id = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let sent = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = parts.next().unwrap_or_default();
    let altered = altered(body);
    let ts = NOW.to_string();

    // Standard Webhooks.
    let _ = standard_webhooks_key(&String::from_utf8_lossy(key));
    let header = standard_webhooks_header(key, &id, &ts, body);
    let verify = |id: &str, ts: &str, sig: &str, body: &[u8]| {
        verify_standard_webhooks(key, Some(id), Some(ts), Some(sig), body, NOW)
    };
    assert_eq!(
        verify(&id, &ts, &header, body).is_ok(),
        id.len() <= MAX_WEBHOOK_ID_BYTES
    );
    assert!(
        verify(&id, &ts, &header, &altered).is_err(),
        "altered body accepted"
    );
    assert!(
        verify(&format!("{id}x"), &ts, &header, body).is_err(),
        "other id accepted"
    );
    let stale = (NOW - STANDARD_WEBHOOKS_TOLERANCE_SECS - 1).to_string();
    let restamped = standard_webhooks_header(key, &id, &stale, body);
    assert!(
        verify(&id, &stale, &restamped, body).is_err(),
        "stale timestamp accepted"
    );
    // Several signatures: one right one is enough, whatever else is sent beside it.
    assert_eq!(
        verify(&id, &ts, &format!("{sent} {header}"), body).is_ok(),
        id.len() <= MAX_WEBHOOK_ID_BYTES
    );
    if verify(&id, &ts, &sent, body).is_ok() {
        // What the sender wrote verified: then it names this body, not the altered one.
        assert!(verify(&id, &ts, &sent, &altered).is_err());
    }

    // GitHub.
    let hub = hub_signature_header(key, body);
    assert!(verify_hub_signature(key, Some(&hub), body).is_ok());
    assert!(verify_hub_signature(key, Some(&hub), &altered).is_err());
    assert!(verify_hub_signature(key, Some(&hub[..hub.len() - 1]), body).is_err());
    if verify_hub_signature(key, Some(&sent), body).is_ok() {
        assert!(verify_hub_signature(key, Some(&sent), &altered).is_err());
    }

    // Slack: every channel whose secret signed it, none other.
    let secrets = vec![
        ("a".to_string(), key.to_vec()),
        ("b".to_string(), [key, b"x"].concat()),
    ];
    let signed = slack::signature_header(key, &ts, body);
    let signers = slack::verify(&secrets, Some(&ts), Some(&signed), body, NOW).expect("signed");
    assert_eq!(signers, ["a"]);
    assert!(slack::verify(&secrets, Some(&ts), Some(&signed), &altered, NOW).is_err());
    let later = (NOW + slack::TOLERANCE_SECS + 1).to_string();
    let restamped = slack::signature_header(key, &later, body);
    assert!(slack::verify(&secrets, Some(&later), Some(&restamped), body, NOW).is_err());
    if slack::verify(&secrets, Some(&ts), Some(&sent), body, NOW).is_ok() {
        assert!(slack::verify(&secrets, Some(&ts), Some(&sent), &altered, NOW).is_err());
    }
});

/// The body with one byte changed (or one added to an empty body).
fn altered(body: &[u8]) -> Vec<u8> {
    let mut altered = body.to_vec();
    match altered.first_mut() {
        Some(b) => *b ^= 1,
        None => altered.push(0),
    }
    altered
}
