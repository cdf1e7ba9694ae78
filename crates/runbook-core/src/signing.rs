//! Standard Webhooks (standardwebhooks.com) signatures, shared by the server that verifies
//! them and the `webhook` notify kind that signs: HMAC-SHA256 over `id.timestamp.body` with the
//! key from a `whsec_<base64>` secret. Also GitHub's `X-Hub-Signature-256`. Every comparison
//! is constant-time.

use anyhow::Result;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The HMAC key inside a `whsec_<base64>` secret (the prefix is optional).
pub fn standard_webhooks_key(secret: &str) -> Result<Vec<u8>> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    BASE64
        .decode(encoded)
        .map_err(|e| anyhow::anyhow!("standard-webhooks secret is not whsec_<base64>: {e}"))
}

pub fn standard_webhooks_mac(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// The `webhook-signature` header value.
pub fn standard_webhooks_header(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    format!(
        "v1,{}",
        BASE64.encode(standard_webhooks_mac(key, id, timestamp, body))
    )
}

/// Standard Webhooks' tolerance on `webhook-timestamp`, in seconds.
pub const STANDARD_WEBHOOKS_TOLERANCE_SECS: u64 = 5 * 60;
/// Longer `webhook-id`s are refused before they reach the store.
pub const MAX_WEBHOOK_ID_BYTES: usize = 256;

/// Checks a Standard Webhooks request (its three headers as sent) at `now` (seconds since
/// the epoch): the id is short, the timestamp within the tolerance, and one of the
/// space-separated `v1,<base64>` signatures is the MAC of this body. `Err` is the reason for
/// the log; the caller answers 401 and checks the id against the ones already seen.
pub fn verify_standard_webhooks(
    key: &[u8],
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now: u64,
) -> Result<(), String> {
    let id = id.ok_or("no webhook-id")?;
    if id.len() > MAX_WEBHOOK_ID_BYTES {
        return Err(format!(
            "webhook-id is longer than {MAX_WEBHOOK_ID_BYTES} bytes"
        ));
    }
    let timestamp = timestamp.ok_or("no webhook-timestamp")?;
    let signatures = signatures.ok_or("no webhook-signature")?;
    let sent: u64 = timestamp
        .parse()
        .map_err(|_| "webhook-timestamp is not a number")?;
    if now.abs_diff(sent) > STANDARD_WEBHOOKS_TOLERANCE_SECS {
        return Err(format!(
            "webhook-timestamp is {}s away from now",
            now.abs_diff(sent)
        ));
    }
    let expected = standard_webhooks_mac(key, id, timestamp, body);
    let valid = signatures.split(' ').any(|s| {
        s.strip_prefix("v1,")
            .and_then(|b| BASE64.decode(b).ok())
            .is_some_and(|sig| equal(&sig, &expected))
    });
    if !valid {
        return Err("no valid v1 signature".into());
    }
    Ok(())
}

/// Checks GitHub's `X-Hub-Signature-256: sha256=<hex>` (HMAC-SHA256 of the raw body).
pub fn verify_hub_signature(
    secret: &[u8],
    header: Option<&str>,
    body: &[u8],
) -> Result<(), String> {
    let given = header
        .and_then(|v| v.strip_prefix("sha256="))
        .ok_or("no X-Hub-Signature-256")?;
    let given = hex::decode(given).map_err(|_| "X-Hub-Signature-256 is not hex")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&given)
        .map_err(|_| "wrong X-Hub-Signature-256".into())
}

/// The `X-Hub-Signature-256` header value (what GitHub sends).
pub fn hub_signature_header(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Constant-time equality (the lengths are not secret).
pub fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
