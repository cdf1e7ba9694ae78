//! Who may call a webhook: bearer token, basic auth, GitHub-style HMAC of the raw body, or
//! Standard Webhooks signatures with a replay window. Every comparison is constant-time, and
//! the body was already capped by the router before it is hashed here. Replay ids are kept in
//! the run store (a unique key), so a restart or another replica does not accept them again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::config::AuthConfig;
use crate::signing::equal;

/// Ids are remembered for the whole window in which their timestamp would still pass.
pub const REPLAY_WINDOW: Duration =
    Duration::from_secs(2 * crate::signing::STANDARD_WEBHOOKS_TOLERANCE_SECS);

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
                crate::signing::verify_hub_signature(secret, header("x-hub-signature-256"), body)
                    .map(|()| Verified::Done)
            }
            Verifier::StandardWebhooks { key } => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                let id = header("webhook-id");
                crate::signing::verify_standard_webhooks(
                    key,
                    id,
                    header("webhook-timestamp"),
                    header("webhook-signature"),
                    body,
                    now,
                )?;
                Ok(Verified::IfFirst(id.unwrap_or_default().to_string()))
            }
        }
    }
}
