//! Questions in Telegram: `sendMessage` with an inline keyboard (Approve / Reject), answers
//! through `getUpdates` long-polling (no public URL needed), each `callback_query` checked
//! against the group's Telegram user ids (`from.id`, which the Bot API vouches for), then
//! `answerCallbackQuery` (the presser's feedback) and `editMessageText` (the decision, the
//! buttons gone). A press counts only when the bot that received it is the bot of a channel
//! that posted the question to its group: bot B vouches for nothing on bot A's question.
//!
//! The bot token is part of every URL: errors are reported without their URL.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::{Answered, Approvals, Approver, decision_line};
use crate::notify::render::telegram_escape;
use crate::records::ApprovalRecord;
// What a press says and whether it was on our message: pure functions of the update, in core
// where `fuzz/` reaches them.
use runbook_core::telegram::{callback_data, parse_callback, posted_on};

/// Telegram's limit on a message's text (characters).
const TEXT_LIMIT: usize = 4096;
/// Longest a `getUpdates` is held open by Telegram when nothing happens.
const POLL_SECS: u64 = 25;

pub struct Api<'a> {
    client: &'a reqwest::Client,
    base: String,
}

impl<'a> Api<'a> {
    pub fn new(client: &'a reqwest::Client, base_url: &str, token: &str) -> Self {
        Api {
            client,
            base: format!("{}/bot{token}", base_url.trim_end_matches('/')),
        }
    }

    async fn call(&self, method: &str, body: Value, timeout: Duration) -> Result<Value> {
        let response = self
            .client
            .post(format!("{}/{method}", self.base))
            .timeout(timeout)
            .json(&body)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("Telegram {method}: {}", e.without_url()))?;
        let status = response.status();
        let answer: Value = response
            .json()
            .await
            .map_err(|e| anyhow::anyhow!("Telegram {method}: {}", e.without_url()))?;
        if answer["ok"] != true {
            anyhow::bail!(
                "Telegram {method}: {status} {}",
                crate::text::echo(answer["description"].as_str().unwrap_or("no description"))
            );
        }
        Ok(answer["result"].clone())
    }

    /// Posts the question with its buttons; returns the message id.
    pub async fn post_question(&self, chat_id: &str, record: &ApprovalRecord) -> Result<i64> {
        let result = self
            .call(
                "sendMessage",
                json!({
                    "chat_id": chat_id,
                    "text": question_html(record),
                    "parse_mode": "HTML",
                    "reply_markup": { "inline_keyboard": [[
                        { "text": "✅ Approve", "callback_data": callback_data(&record.id, true) },
                        { "text": "❌ Reject", "callback_data": callback_data(&record.id, false) },
                    ]] },
                }),
                Duration::from_secs(10),
            )
            .await?;
        result["message_id"]
            .as_i64()
            .context("Telegram sendMessage: no message_id in the answer")
    }

    /// Edits a posted question to show how it ended, without buttons.
    pub async fn show_decision(&self, posted: &Value, record: &ApprovalRecord) -> Result<()> {
        let text = format!(
            "{}\n\n<b>{}</b>",
            question_html(record),
            telegram_escape(&decision_line(record))
        );
        self.call(
            "editMessageText",
            json!({
                "chat_id": posted["chat_id"],
                "message_id": posted["message_id"],
                "text": fit(text),
                "parse_mode": "HTML",
                "reply_markup": { "inline_keyboard": [] },
            }),
            Duration::from_secs(10),
        )
        .await
        .map(|_| ())
    }

    async fn updates(&self, offset: Option<i64>, wait: u64) -> Result<Vec<Value>> {
        let mut body = json!({ "timeout": wait, "allowed_updates": ["callback_query"] });
        if let Some(offset) = offset {
            body["offset"] = json!(offset);
        }
        let result = self
            .call("getUpdates", body, Duration::from_secs(wait + 10))
            .await?;
        Ok(result.as_array().cloned().unwrap_or_default())
    }

    async fn answer_callback(&self, id: &str, text: &str, alert: bool) -> Result<()> {
        self.call(
            "answerCallbackQuery",
            json!({ "callback_query_id": id, "text": text, "show_alert": alert }),
            Duration::from_secs(10),
        )
        .await
        .map(|_| ())
    }
}

fn question_html(record: &ApprovalRecord) -> String {
    let mut text = format!(
        "🙋 <b>Approval needed: {}</b>\n",
        telegram_escape(&record.title)
    );
    if !record.body.is_empty() {
        text.push_str(&format!("\n{}\n", telegram_escape(&record.body)));
    }
    if !record.actions.is_empty() {
        text.push_str("\n<b>If approved:</b>\n");
        for action in &record.actions {
            text.push_str(&format!("• {}\n", telegram_escape(action)));
        }
    }
    text.push_str(&format!(
        "\nRun <code>{}</code> ({}) asks <b>{}</b>; expires {}.",
        telegram_escape(&record.run_id),
        telegram_escape(&record.playbook),
        telegram_escape(&record.group),
        telegram_escape(&record.expires_at),
    ));
    if let Some(link) = crate::notify::run_link(&record.run_id) {
        text.push_str(&format!("\n{}", telegram_escape(&link)));
    }
    fit(text)
}

/// Cuts a message to Telegram's limit on a line boundary (never inside a tag or entity:
/// the escaped text has no newline inside either).
fn fit(text: String) -> String {
    if text.chars().count() <= TEXT_LIMIT {
        return text;
    }
    let mut out = String::new();
    for line in text.lines() {
        if out.chars().count() + line.chars().count() + 2 > TEXT_LIMIT {
            out.push('…');
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// One `getUpdates` loop per bot token in this process, while runs here wait on questions
/// posted through it (`host serve` keeps its loops for its whole life).
#[derive(Default)]
pub struct Pollers {
    running: Mutex<HashSet<String>>,
}

impl Pollers {
    /// Starts the loop of `channel`'s bot unless one runs.
    pub fn ensure(&self, approvals: &Arc<Approvals>, channel: &str, api: Api<'_>) {
        if !self.running.lock().unwrap().insert(api.base.clone()) {
            return;
        }
        let base = api.base.clone();
        let weak = Arc::downgrade(approvals);
        let channel = channel.to_string();
        tokio::spawn(poll(weak, channel, base));
    }
}

async fn poll(approvals: Weak<Approvals>, channel: String, base: String) {
    let mut offset: Option<i64> = None;
    let mut failures = 0u32;
    loop {
        let Some(live) = approvals.upgrade() else {
            return;
        };
        // Keep polling only while a run of this process waits (or the server lives). Checked
        // and given up under `running`'s lock: a question posted meanwhile (counted waiting
        // before `ensure`) either keeps this loop or starts the next.
        {
            let mut running = live.telegram.running.lock().unwrap();
            if live.waiting.lock().unwrap().is_empty() && !live.keep_polling() {
                running.remove(&base);
                return;
            }
        }
        let api = Api {
            client: &live.client,
            base: base.clone(),
        };
        match api.updates(offset, POLL_SECS).await {
            Ok(updates) => {
                failures = 0;
                for update in updates {
                    if let Some(id) = update["update_id"].as_i64() {
                        offset = Some(offset.map_or(id + 1, |o| o.max(id + 1)));
                    }
                    if let Some(query) = update.get("callback_query") {
                        handle(&live, &api, query).await;
                    }
                }
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(channel, "polling Telegram for answers: {e:#}");
                drop(live);
                // Backs off to a minute; a 409 (another poller on this bot) ends the same way.
                let wait = Duration::from_secs(2u64.saturating_pow(failures.min(6)).min(60));
                tokio::time::sleep(wait).await;
            }
        }
    }
}

async fn handle(approvals: &Approvals, api: &Api<'_>, query: &Value) {
    use std::sync::atomic::Ordering::SeqCst;
    // Counted until the presser is answered (`Approvals::presses_answered`).
    struct InHand<'a>(&'a std::sync::atomic::AtomicUsize);
    impl Drop for InHand<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, SeqCst);
        }
    }
    approvals.handling.fetch_add(1, SeqCst);
    let _in_hand = InHand(&approvals.handling);
    let query_id = query["id"].as_str().unwrap_or_default();
    let (text, alert) = match decide(approvals, &approvals.bot_channels(&api.base), query).await {
        Ok(Answered::Recorded(record)) => (decision_line(&record), false),
        Ok(Answered::Closed(record)) => {
            (format!("Already decided: {}", decision_line(&record)), true)
        }
        Ok(Answered::NotAllowed(why)) => (why, true),
        Ok(Answered::NotFound) => (
            "This button is not one of this host's open questions.".to_string(),
            true,
        ),
        Err(e) => {
            tracing::warn!("recording a Telegram answer: {e:#}");
            (
                "The host could not record your answer; try again.".to_string(),
                true,
            )
        }
    };
    // Every press is answered, even one that decides nothing: otherwise the presser's
    // button spins until Telegram gives up.
    let text: String = text.chars().take(200).collect();
    if let Err(e) = api.answer_callback(query_id, &text, alert).await {
        tracing::warn!("answering a Telegram callback: {e:#}");
    }
}

impl Approvals {
    /// The `[notify]` Telegram channels whose bot is the one at `base` (its API URL and token):
    /// the channels a press received by that bot can have come through.
    fn bot_channels(&self, base: &str) -> Vec<String> {
        self.notifier
            .names()
            .into_iter()
            .filter(|name| match self.channel(name) {
                Some(crate::notify::ChannelConfig::Telegram {
                    bot_token,
                    base_url,
                    ..
                }) => bot_token
                    .load()
                    .is_ok_and(|token| Api::new(&self.client, &base_url, &token).base == base),
                _ => false,
            })
            .map(String::from)
            .collect()
    }
}

/// What a button press received by the bot of `channels` decides: the approval its data
/// names, answered by `from.id`, and only when pressed on a message that question was posted
/// as through one of those channels (the data alone names nothing, and another bot's message
/// is not this bot's to answer).
async fn decide(approvals: &Approvals, channels: &[String], query: &Value) -> Result<Answered> {
    let Some((id, approve)) = query["data"].as_str().and_then(parse_callback) else {
        return Ok(Answered::NotFound);
    };
    let Some(user) = query["from"]["id"].as_i64() else {
        return Ok(Answered::NotFound);
    };
    let Some(record) = approvals.store().approval(id).await? else {
        return Ok(Answered::NotFound);
    };
    if !posted_on(&record, channels, &query["message"]) {
        tracing::warn!(
            approval = id,
            user,
            "Telegram answer refused: pressed on a message that is not the question's as this bot posted it"
        );
        return Ok(Answered::NotFound);
    }
    let who = Approver::Telegram {
        id: user,
        username: query["from"]["username"].as_str().map(String::from),
        channels: channels.to_vec(),
    };
    let reason = (!approve).then(|| "rejected in Telegram".to_string());
    approvals.answer(id, &who, approve, reason).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_data_round_trips_and_refuses_anything_else() {
        let data = callback_data("0123456789abcdef", true);
        assert!(data.len() <= 64);
        assert_eq!(parse_callback(&data), Some(("0123456789abcdef", true)));
        assert_eq!(parse_callback("ap:0123:n"), Some(("0123", false)));
        for bad in [
            "",
            "ap:",
            "ap:xyz:y",
            "ap:01:maybe",
            "other:01:y",
            "ap:'; drop:y",
        ] {
            assert_eq!(parse_callback(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_press_counts_only_on_the_questions_own_message() {
        let record = ApprovalRecord {
            id: "0123456789abcdef".into(),
            run_id: "r".into(),
            playbook: "p".into(),
            group: "oncall".into(),
            title: "t".into(),
            body: String::new(),
            actions: Vec::new(),
            state: "pending".into(),
            asked_at: String::new(),
            expires_at: String::new(),
            answered_by: None,
            answered_via: None,
            answered_at: None,
            reason: None,
            messages: vec![
                json!({"channel": "tg", "kind": "telegram", "chat_id": "-1001", "message_id": 7}),
                json!({"channel": "pub", "kind": "telegram", "chat_id": "@ops", "message_id": 9}),
                json!({"channel": "mail", "kind": "outbox", "outbox_id": 7}),
            ],
        };
        let bots = ["tg".to_string(), "pub".to_string()];
        let on = |chat: Value, message_id: i64| {
            posted_on(
                &record,
                &bots,
                &json!({"message_id": message_id, "chat": chat}),
            )
        };
        assert!(on(json!({"id": -1001}), 7));
        assert!(on(json!({"id": -1009, "username": "ops"}), 9));
        assert!(!on(json!({"id": -1002}), 7), "another chat");
        assert!(!on(json!({"id": -1001}), 8), "another message");
        assert!(
            !on(json!({"id": -1009, "username": "other"}), 9),
            "not @ops"
        );
        assert!(!on(json!({"id": -1001}), 9));
        assert!(!posted_on(&record, &bots, &Value::Null));
        // The same chat and message seen by another bot: not its question.
        let message = json!({"message_id": 7, "chat": {"id": -1001}});
        assert!(!posted_on(&record, &["other".to_string()], &message));
        assert!(!posted_on(&record, &[], &message));
        assert!(posted_on(&record, &["tg".to_string()], &message));
    }
}
