//! Standard Webhooks (standardwebhooks.com) signatures, shared by the server that verifies
//! them and the `webhook` notify kind that signs: HMAC-SHA256 over `id.timestamp.body` with the
//! key from a `whsec_<base64>` secret.

use anyhow::Result;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

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
