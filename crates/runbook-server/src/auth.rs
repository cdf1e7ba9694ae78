//! Who may call a webhook: bearer token, basic auth, GitHub-style HMAC of the raw body, or
//! Standard Webhooks signatures with a replay window. Every comparison is constant-time, and
//! the body was already capped by the router before it is hashed here. Replay ids are kept in
//! the run store (a unique key), so a restart or another replica does not accept them again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::AuthConfig;

/// Standard Webhooks' tolerance on `webhook-timestamp`.
const TOLERANCE: Duration = Duration::from_secs(5 * 60);
/// Ids are remembered for the whole window in which their timestamp would still pass.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(2 * 5 * 60);
/// Longer `webhook-id`s are refused before they reach the store.
const MAX_ID_BYTES: usize = 256;

pub enum Verifier {
    None,
    Bearer(String),
    Basic { username: String, password: String },
    HmacSha256(Vec<u8>),
    StandardWebhooks { key: Vec<u8> },
}

/// A valid call; with Standard Webhooks, the id to check against the store's replay ids.
pub enum Verified {
    Done,
    IfFirst(String),
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind()) // never the secret
    }
}

impl Verifier {
    pub fn from_config(config: &AuthConfig) -> Result<Verifier> {
        Ok(match config {
            AuthConfig::None => Verifier::None,
            AuthConfig::Bearer { token } => Verifier::Bearer(token.load()?),
            AuthConfig::Basic { username, password } => Verifier::Basic {
                username: username.clone(),
                password: password.load()?,
            },
            AuthConfig::HmacSha256 { secret } => Verifier::HmacSha256(secret.load()?.into_bytes()),
            AuthConfig::StandardWebhooks { secret } => {
                let key = crate::signing::standard_webhooks_key(&secret.load()?)?;
                Verifier::StandardWebhooks { key }
            }
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Verifier::None => "none",
            Verifier::Bearer(_) => "bearer",
            Verifier::Basic { .. } => "basic",
            Verifier::HmacSha256(_) => "hmac-sha256",
            Verifier::StandardWebhooks { .. } => "standard-webhooks",
        }
    }

    /// `Err` carries a reason for the log; the client only ever sees 401.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, String> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        match self {
            Verifier::None => Ok(Verified::Done),
            Verifier::Bearer(token) => {
                let given = header("authorization")
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .ok_or("no bearer token")?;
                equal(given.as_bytes(), token.as_bytes())
                    .then_some(Verified::Done)
                    .ok_or_else(|| "wrong bearer token".into())
            }
            Verifier::Basic { username, password } => {
                let encoded = header("authorization")
                    .and_then(|v| v.strip_prefix("Basic "))
                    .ok_or("no basic credentials")?;
                let decoded = BASE64
                    .decode(encoded)
                    .map_err(|_| "malformed basic credentials")?;
                let expected = format!("{username}:{password}");
                equal(&decoded, expected.as_bytes())
                    .then_some(Verified::Done)
                    .ok_or_else(|| "wrong basic credentials".into())
            }
            Verifier::HmacSha256(secret) => {
                let given = header("x-hub-signature-256")
                    .and_then(|v| v.strip_prefix("sha256="))
                    .ok_or("no X-Hub-Signature-256")?;
                let given = hex::decode(given).map_err(|_| "X-Hub-Signature-256 is not hex")?;
                let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
                mac.update(body);
                mac.verify_slice(&given)
                    .map(|()| Verified::Done)
                    .map_err(|_| "wrong X-Hub-Signature-256".into())
            }
            Verifier::StandardWebhooks { key } => {
                let id = header("webhook-id").ok_or("no webhook-id")?;
                if id.len() > MAX_ID_BYTES {
                    return Err(format!("webhook-id is longer than {MAX_ID_BYTES} bytes"));
                }
                let timestamp = header("webhook-timestamp").ok_or("no webhook-timestamp")?;
                let signatures = header("webhook-signature").ok_or("no webhook-signature")?;
                let sent: u64 = timestamp
                    .parse()
                    .map_err(|_| "webhook-timestamp is not a number")?;
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                if now.abs_diff(sent) > TOLERANCE.as_secs() {
                    return Err(format!(
                        "webhook-timestamp is {}s away from now",
                        now.abs_diff(sent)
                    ));
                }
                let expected = crate::signing::standard_webhooks_mac(key, id, timestamp, body);
                let valid = signatures.split(' ').any(|s| {
                    s.strip_prefix("v1,")
                        .and_then(|b| BASE64.decode(b).ok())
                        .is_some_and(|sig| equal(&sig, &expected))
                });
                if !valid {
                    return Err("no valid v1 signature".into());
                }
                Ok(Verified::IfFirst(id.to_string()))
            }
        }
    }
}

fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
