//! Questions in Slack: Block Kit with Approve / Reject buttons, posted through the channel's
//! incoming webhook. A click comes back as a signed `block_actions` payload to
//! `POST /hooks/slack/interactive`: the signature (`X-Slack-Signature`, v0 HMAC-SHA256 of
//! `v0:<timestamp>:<body>` with the app's signing secret) is what vouches for `user.id`, so
//! nothing in the payload is believed before it is checked. The clicker's message is then
//! replaced through the payload's `response_url` (the decision, buttons gone), or an
//! ephemeral line tells only them why their click changed nothing.
//!
//! Incoming webhooks cannot edit what they posted: a question that expires or is lost, or is
//! answered elsewhere (Telegram, the CLI), keeps its buttons in Slack; a click on them then
//! gets an ephemeral "already decided".

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde_json::{Value, json};

use super::{Answered, Approvals, Approver, decision_line};
use crate::notify::ChannelConfig;
use crate::notify::render::{slack_escape, truncate};
use crate::records::ApprovalRecord;
// The signature check and the click's parser are pure functions of the request: in core,
// where `fuzz/` reaches them.
pub use runbook_core::slack::{Click, TOLERANCE_SECS, parse_click, verify};

const HEADER_LIMIT: usize = 150;
const TEXT_LIMIT: usize = 3000;

/// Incoming-webhook body of a question: `text` (the notification fallback) and its blocks.
pub fn question_message(record: &ApprovalRecord) -> Value {
    let mut blocks = question_blocks(record);
    blocks.push(json!({
        "type": "actions",
        "block_id": "approval",
        "elements": [
            button("✅ Approve", "approve", "primary", &record.id),
            button("❌ Reject", "reject", "danger", &record.id),
        ],
    }));
    json!({ "text": fallback(record), "blocks": blocks })
}

/// The `response_url` body that replaces a question with its outcome (no buttons).
pub fn decided_message(record: &ApprovalRecord) -> Value {
    let mut blocks = question_blocks(record);
    blocks.push(json!({
        "type": "section",
        "text": { "type": "mrkdwn", "text": format!("*{}*", slack_escape(&decision_line(record))) },
    }));
    json!({
        "replace_original": true,
        "text": format!("{} — {}", fallback(record), decision_line(record)),
        "blocks": blocks,
    })
}

/// A line only the clicker sees; the question stays as it is.
fn ephemeral(text: &str) -> Value {
    json!({ "response_type": "ephemeral", "replace_original": false, "text": slack_escape(text) })
}

fn fallback(record: &ApprovalRecord) -> String {
    truncate(&format!("Approval needed: {}", record.title), TEXT_LIMIT)
}

fn button(label: &str, action_id: &str, style: &str, id: &str) -> Value {
    json!({
        "type": "button",
        "text": { "type": "plain_text", "text": label, "emoji": true },
        "action_id": action_id,
        "value": id,
        "style": style,
    })
}

fn question_blocks(record: &ApprovalRecord) -> Vec<Value> {
    let mut blocks = vec![json!({
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": truncate(&format!("🙋 Approval needed: {}", record.title), HEADER_LIMIT),
            "emoji": true,
        },
    })];
    if !record.body.trim().is_empty() {
        blocks.push(section(&slack_escape(&record.body)));
    }
    if !record.actions.is_empty() {
        let mut text = "*If approved:*".to_string();
        for action in &record.actions {
            text.push_str(&format!("\n• {}", slack_escape(action)));
        }
        blocks.push(section(&text));
    }
    let mut context = format!(
        "Run `{}` ({}) asks *{}*; expires {}.",
        slack_escape(&record.run_id),
        slack_escape(&record.playbook),
        slack_escape(&record.group),
        slack_escape(&record.expires_at),
    );
    if let Some(link) = crate::notify::run_link(&record.run_id) {
        context.push_str(&format!(" <{}|Open the run>", slack_escape(&link)));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{ "type": "mrkdwn", "text": truncate(&context, TEXT_LIMIT) }],
    }));
    blocks
}

fn section(text: &str) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": truncate(text, TEXT_LIMIT) } })
}

/// A `response_url` is only followed to the origin of the channel's own webhook (Slack's
/// `hooks.slack.com`, or the gateway the operator configured): a signed payload still does
/// not get to send the host to an arbitrary address.
fn same_origin(response_url: &str, webhook_url: &str) -> bool {
    match (url::Url::parse(response_url), url::Url::parse(webhook_url)) {
        (Ok(a), Ok(b)) => {
            matches!(a.scheme(), "http" | "https")
                && a.origin() == b.origin()
                && a.username().is_empty()
                && a.password().is_none()
        }
        _ => false,
    }
}

impl Approvals {
    /// Posts the question to a Slack channel's incoming webhook.
    pub(super) async fn post_slack(
        &self,
        webhook_url: &str,
        record: &ApprovalRecord,
    ) -> Result<()> {
        let response = self
            .client
            .post(webhook_url)
            .timeout(std::time::Duration::from_secs(10))
            .json(&question_message(record))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("Slack webhook: {}", e.without_url()))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            anyhow::bail!("Slack webhook: {status} {}", crate::text::echo(&body));
        }
        Ok(())
    }

    /// Every Slack channel's signing secret, by channel name (read at each request, so a
    /// rotated secret file applies at once). Secrets that do not load are logged and skipped.
    pub fn slack_signing_secrets(&self) -> Vec<(String, Vec<u8>)> {
        let mut secrets = Vec::new();
        for name in self.notifier.names() {
            if let Some(ChannelConfig::Slack {
                signing_secret: Some(secret),
                ..
            }) = self.channel(name)
            {
                match secret.load() {
                    Ok(value) if !value.is_empty() => {
                        secrets.push((name.to_string(), value.into_bytes()))
                    }
                    Ok(_) => tracing::warn!(channel = name, "Slack signing-secret is empty"),
                    Err(e) => tracing::warn!(channel = name, "Slack signing-secret: {e:#}"),
                }
            }
        }
        secrets
    }

    /// A click verified by the signing secret of the Slack channels `signers`: recorded like
    /// any answer (which counts it only if one of them carried the question to its group),
    /// then the clicker's message replaced (or an ephemeral refusal) through `response_url`.
    pub async fn slack_click(&self, signers: Vec<String>, click: Click) {
        let who = Approver::Slack {
            id: click.user_id.clone(),
            name: click.user_name.clone(),
            channels: signers.clone(),
        };
        let reason = (!click.approve).then(|| "rejected in Slack".to_string());
        let follow_up = match self
            .answer(&click.approval_id, &who, click.approve, reason)
            .await
        {
            Ok(Answered::Recorded(record)) => decided_message(&record),
            Ok(Answered::Closed(record)) => {
                ephemeral(&format!("Already decided: {}", decision_line(&record)))
            }
            Ok(Answered::NotAllowed(why)) => ephemeral(&why),
            Ok(Answered::NotFound) => ephemeral("This question is unknown to the host."),
            Err(e) => {
                tracing::warn!("recording a Slack answer: {e:#}");
                ephemeral("The host could not record your answer; try again.")
            }
        };
        let Some(response_url) = click.response_url else {
            return;
        };
        // Followed only to the webhook origin of a channel that signed the click.
        let channel = signers.iter().find(|name| match self.channel(name) {
            Some(ChannelConfig::Slack { webhook_url, .. }) => webhook_url
                .load()
                .is_ok_and(|w| same_origin(&response_url, &w)),
            _ => false,
        });
        let Some(channel) = channel else {
            tracing::warn!(
                channels = ?signers,
                "Slack response_url is not on the webhook's origin: not followed"
            );
            return;
        };
        let sent = self
            .client
            .post(&response_url)
            .timeout(std::time::Duration::from_secs(10))
            .json(&follow_up)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                tracing::warn!(channel = %channel, "Slack response_url answered {}", r.status())
            }
            Err(e) => tracing::warn!(channel = %channel, "Slack response_url: {}", e.without_url()),
        }
    }
}

/// Seconds since the epoch, for [`verify`].
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, ts: &str, body: &[u8]) -> String {
        runbook_core::slack::signature_header(secret.as_bytes(), ts, body)
    }

    #[test]
    fn signature_is_checked_against_every_secret_and_the_clock() {
        // Slack's documented example: secret, timestamp, body and signature.
        let secret = "8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert_eq!(sign(secret, "1531420618", body), expected);
        let secrets = vec![
            ("other".to_string(), b"nope".to_vec()),
            ("slack".to_string(), secret.as_bytes().to_vec()),
        ];
        let ok = |ts: Option<&str>, sig: Option<&str>, now| verify(&secrets, ts, sig, body, now);
        assert_eq!(
            ok(Some("1531420618"), Some(expected), 1531420618 + 299),
            Ok(vec!["slack".to_string()])
        );
        // Two channels of one Slack app (one secret): both signed it.
        let shared = vec![
            ("slack".to_string(), secret.as_bytes().to_vec()),
            ("other".to_string(), b"nope".to_vec()),
            ("slack-2".to_string(), secret.as_bytes().to_vec()),
        ];
        assert_eq!(
            verify(
                &shared,
                Some("1531420618"),
                Some(expected),
                body,
                1531420618
            ),
            Ok(vec!["slack".to_string(), "slack-2".to_string()])
        );
        assert!(ok(Some("1531420618"), Some(expected), 1531420618 + 301).is_err());
        assert!(ok(Some("1531420618"), Some(expected), 1531420618 - 301).is_err());
        assert!(ok(None, Some(expected), 1531420618).is_err());
        assert!(ok(Some("1531420618"), None, 1531420618).is_err());
        assert!(ok(Some("1531420619"), Some(expected), 1531420618).is_err());
        assert!(ok(Some("1531420618"), Some("v0=zz"), 1531420618).is_err());
        assert!(ok(Some("1531420618"), Some(&expected[3..]), 1531420618).is_err());
        assert!(verify(&[], Some("1531420618"), Some(expected), body, 1531420618).is_err());
    }

    #[test]
    fn clicks_are_parsed_and_anything_else_is_ignored() {
        let form = |payload: Value| {
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("payload", &payload.to_string())
                .finish()
        };
        let click = |action: &str, value: &str, user: &str| {
            form(json!({
                "type": "block_actions",
                "user": {"id": user, "username": "alice", "name": "alice"},
                "actions": [{"action_id": action, "value": value}],
                "response_url": "https://hooks.slack.com/actions/T/1/x",
            }))
        };
        assert_eq!(
            parse_click(click("approve", "0123456789abcdef", "U111").as_bytes()),
            Some(Click {
                approval_id: "0123456789abcdef".into(),
                approve: true,
                user_id: "U111".into(),
                user_name: Some("alice".into()),
                response_url: Some("https://hooks.slack.com/actions/T/1/x".into()),
            })
        );
        assert!(
            !parse_click(click("reject", "ab", "U111").as_bytes())
                .unwrap()
                .approve
        );
        for bad in [
            click("delete", "ab", "U111"),
            click("approve", "'; drop", "U111"),
            click("approve", "ab", "U1 11"),
            click("approve", "ab", ""),
            form(json!({"type": "view_submission"})),
            "payload=not-json".into(),
            String::new(),
        ] {
            assert_eq!(parse_click(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn response_urls_stay_on_the_webhooks_origin() {
        let hook = "https://hooks.slack.com/services/T/B/X";
        assert!(same_origin("https://hooks.slack.com/actions/T/1/x", hook));
        for bad in [
            "https://evil.example/actions",
            "http://hooks.slack.com/actions",
            "https://hooks.slack.com:8443/actions",
            "https://user@hooks.slack.com/actions",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(!same_origin(bad, hook), "{bad}");
        }
    }

    #[test]
    fn the_question_has_two_buttons_and_the_decision_none() {
        let record = ApprovalRecord {
            id: "0123456789abcdef".into(),
            title: "Restart <web-1>?".into(),
            body: "down & out".into(),
            actions: vec!["restart web-1".into()],
            run_id: "r1".into(),
            playbook: "asks".into(),
            group: "oncall".into(),
            state: "pending".into(),
            asked_at: "2026-01-01T00:00:00Z".into(),
            expires_at: "2026-01-01T00:01:00Z".into(),
            answered_by: None,
            answered_via: None,
            answered_at: None,
            reason: None,
            messages: Vec::new(),
        };
        let question = question_message(&record);
        let actions = question["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "actions")
            .unwrap();
        let ids: Vec<_> = actions["elements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["action_id"].clone(),
                    b["value"].clone(),
                    b["style"].clone(),
                )
            })
            .collect();
        assert_eq!(
            ids,
            [
                (
                    json!("approve"),
                    json!("0123456789abcdef"),
                    json!("primary")
                ),
                (json!("reject"), json!("0123456789abcdef"), json!("danger")),
            ]
        );
        assert!(question.to_string().contains("down &amp; out"));
        let decided = decided_message(&ApprovalRecord {
            state: "approved".into(),
            answered_by: Some("slack:U111 (alice)".into()),
            ..record
        });
        assert_eq!(decided["replace_original"], true);
        assert!(!decided.to_string().contains("\"actions\""));
        assert!(
            decided
                .to_string()
                .contains("Approved by slack:U111 (alice)")
        );
    }
}
