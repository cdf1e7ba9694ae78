//! Slack interactivity: the signature on a request (`X-Slack-Signature`, v0 HMAC-SHA256 of
//! `v0:<timestamp>:<body>` with the app's signing secret) and the button click in its
//! `payload`. Nothing in a payload is believed before the signature is checked.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// Slack refuses requests whose timestamp is further than this from now (replays).
pub const TOLERANCE_SECS: u64 = 5 * 60;
/// Slack user ids are short upper-case alphanumerics (`U024BE7LH`, `W…`).
const MAX_USER_ID: usize = 32;
const MAX_NAME_CHARS: usize = 80;

/// The `X-Slack-Signature` header value Slack sends for this body at `timestamp`.
pub fn signature_header(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// The names of the Slack channels whose signing secret signed this request (several when
/// channels share one Slack app's secret): they, and only they, vouch for the click. `Err` is
/// the reason for the log; the caller only ever answers 401.
pub fn verify(
    secrets: &[(String, Vec<u8>)],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: u64,
) -> Result<Vec<String>, String> {
    if secrets.is_empty() {
        return Err("no [notify.<name>] Slack channel has a signing-secret".into());
    }
    let timestamp = timestamp.ok_or("no X-Slack-Request-Timestamp")?;
    let signature = signature.ok_or("no X-Slack-Signature")?;
    let sent: u64 = timestamp
        .parse()
        .map_err(|_| "X-Slack-Request-Timestamp is not a number")?;
    if now.abs_diff(sent) > TOLERANCE_SECS {
        return Err(format!(
            "X-Slack-Request-Timestamp is {}s away from now",
            now.abs_diff(sent)
        ));
    }
    let given = signature
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or("X-Slack-Signature is not v0=<hex>")?;
    // Every secret is tried (no early exit), each comparison constant-time.
    let mut signers = Vec::new();
    for (channel, secret) in secrets {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
        mac.update(format!("v0:{timestamp}:").as_bytes());
        mac.update(body);
        if mac.verify_slice(&given).is_ok() {
            signers.push(channel.clone());
        }
    }
    if signers.is_empty() {
        return Err("wrong X-Slack-Signature".into());
    }
    Ok(signers)
}

/// A button click, as the signed payload tells it.
#[derive(Debug, PartialEq)]
pub struct Click {
    pub approval_id: String,
    pub approve: bool,
    pub user_id: String,
    pub user_name: Option<String>,
    pub response_url: Option<String>,
}

/// `payload=<JSON>` of a `block_actions` interaction; `None` for anything that is not a
/// click on one of our buttons (Slack sends other interactions to the same URL).
pub fn parse_click(body: &[u8]) -> Option<Click> {
    let payload = url::form_urlencoded::parse(body)
        .find(|(key, _)| key == "payload")
        .map(|(_, value)| value.into_owned())?;
    let payload: Value = serde_json::from_str(&payload).ok()?;
    if payload["type"] != "block_actions" {
        return None;
    }
    let action = &payload["actions"][0];
    let approve = match action["action_id"].as_str()? {
        "approve" => true,
        "reject" => false,
        _ => return None,
    };
    let approval_id = action["value"].as_str()?;
    if approval_id.is_empty()
        || approval_id.len() > 32
        || !approval_id.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    let user_id = payload["user"]["id"].as_str()?;
    if user_id.is_empty()
        || user_id.len() > MAX_USER_ID
        || !user_id.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return None;
    }
    let user_name = payload["user"]["username"]
        .as_str()
        .or(payload["user"]["name"].as_str())
        .map(|n| n.chars().take(MAX_NAME_CHARS).collect());
    Some(Click {
        approval_id: approval_id.to_string(),
        approve,
        user_id: user_id.to_string(),
        user_name,
        response_url: payload["response_url"].as_str().map(String::from),
    })
}
