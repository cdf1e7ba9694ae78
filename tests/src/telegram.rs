//! A Telegram Bot API stand-in on 127.0.0.1 for the approval tests: the methods the host's
//! question-and-answer loop uses, with the real shapes and the real refusals.
//!
//! - `sendMessage` (HTML checked as Telegram does, `reply_markup.inline_keyboard` kept) gives
//!   increasing message ids per bot;
//! - `getUpdates` confirms every update below `offset`, holds the request for `timeout` seconds
//!   until an update comes, keeps `allowed_updates` once given (as Telegram does), and answers
//!   an earlier request still held with 409 Conflict when a new one comes (two pollers on one
//!   bot);
//! - `answerCallbackQuery` accepts each query id it delivered once (text ≤ 200 characters);
//! - `editMessageText` edits a message it sent, "message to edit not found" otherwise.
//!
//! Tests press buttons with [`Bot::press`], which queues the `callback_query` update Telegram
//! would send.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub use crate::sinks::TELEGRAM_TOKEN;

/// A message the bot sent, as it stands now (edits applied).
#[derive(Clone, Debug)]
pub struct Message {
    pub chat_id: i64,
    pub message_id: i64,
    pub text: String,
    /// The `reply_markup` it carries now (`Value::Null` once an edit removed it).
    pub reply_markup: Value,
    /// Every text it had, oldest first (the first is the one sent).
    pub history: Vec<String>,
}

impl Message {
    /// The `callback_data` of its inline buttons, in order.
    pub fn buttons(&self) -> Vec<String> {
        self.reply_markup["inline_keyboard"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|row| row.as_array().cloned().unwrap_or_default())
            .filter_map(|b| b["callback_data"].as_str().map(String::from))
            .collect()
    }
}

/// One `answerCallbackQuery` the bot accepted.
#[derive(Clone, Debug)]
pub struct CallbackAnswer {
    pub query_id: String,
    pub text: String,
    pub show_alert: bool,
}

/// One `getUpdates` as the bot received it.
#[derive(Clone, Debug)]
pub struct Poll {
    pub offset: Option<i64>,
    pub timeout: u64,
    pub allowed_updates: Option<Vec<String>>,
    /// The status it was answered with (200, or 409 when a newer poll cut it off).
    pub status: u16,
}

#[derive(Default)]
struct State {
    next_message_id: i64,
    messages: Vec<Message>,
    /// Updates not yet confirmed by an `offset` above their id.
    updates: VecDeque<Value>,
    next_update_id: i64,
    /// Callback query ids delivered and not yet answered.
    open_queries: Vec<String>,
    answers: Vec<CallbackAnswer>,
    polls: Vec<Poll>,
    /// Kept from the last `getUpdates` that gave it, as Telegram does.
    allowed_updates: Option<Vec<String>>,
    /// Bumped by each `getUpdates`: a held one that sees a newer number ends with 409.
    poll_generation: u64,
    /// Failed calls: (method, description).
    refusals: Vec<(String, String)>,
}

pub struct Bot {
    pub port: u16,
    shared: Arc<(Mutex<State>, Condvar)>,
}

const WAIT: Duration = Duration::from_secs(60);

impl Bot {
    pub fn start() -> Bot {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new((
            Mutex::new(State {
                next_message_id: 1,
                next_update_id: 100_000,
                ..State::default()
            }),
            Condvar::new(),
        ));
        let s = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || serve(stream, &s));
            }
        });
        Bot { port, shared }
    }

    /// The `base-url` for `[notify.<name>]` (the host adds `/bot<token>/<method>`).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.0.lock().unwrap()
    }

    pub fn messages(&self) -> Vec<Message> {
        self.state().messages.clone()
    }

    pub fn message(&self, message_id: i64) -> Message {
        self.messages()
            .into_iter()
            .find(|m| m.message_id == message_id)
            .unwrap_or_else(|| panic!("no message {message_id}"))
    }

    pub fn answers(&self) -> Vec<CallbackAnswer> {
        self.state().answers.clone()
    }

    pub fn polls(&self) -> Vec<Poll> {
        self.state().polls.clone()
    }

    pub fn refusals(&self) -> Vec<(String, String)> {
        self.state().refusals.clone()
    }

    /// Waits until `found` picks something from the bot's state (or panics after a minute,
    /// naming `what`).
    pub fn wait_for<T>(&self, what: &str, mut found: impl FnMut(&Bot) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(t) = found(self) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "Telegram stand-in: no {what} after {WAIT:?}; messages: {:#?}; answers: {:#?}; \
                 refusals: {:?}",
                self.messages(),
                self.answers(),
                self.refusals()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The message whose text contains `needle` (a run id), once it was sent.
    pub fn wait_message(&self, needle: &str) -> Message {
        self.wait_for(&format!("message containing {needle:?}"), |bot| {
            bot.messages().into_iter().find(|m| m.text.contains(needle))
        })
    }

    /// The answer to callback query `query_id`, once the host gave it.
    pub fn wait_answer(&self, query_id: &str) -> CallbackAnswer {
        self.wait_for(&format!("answer to callback query {query_id}"), |bot| {
            bot.answers().into_iter().find(|a| a.query_id == query_id)
        })
    }

    /// Waits until a poller confirmed update `update_id` (a later `getUpdates` with an offset
    /// past it): the host has handled it.
    pub fn wait_confirmed(&self, update_id: i64) {
        self.wait_for(&format!("confirmation of update {update_id}"), |bot| {
            bot.polls()
                .iter()
                .any(|p| p.offset.is_some_and(|o| o > update_id))
                .then_some(())
        });
    }

    /// Someone presses an inline button: queues the `callback_query` update Telegram sends
    /// (the presser as `from`, the message the button is on, its `callback_data`). Returns
    /// (update id, callback query id).
    pub fn press(
        &self,
        from_id: i64,
        username: Option<&str>,
        chat_id: i64,
        message_id: i64,
        data: &str,
    ) -> (i64, String) {
        let (lock, wake) = &*self.shared;
        let mut state = lock.lock().unwrap();
        let update_id = state.next_update_id;
        state.next_update_id += 1;
        let query_id = format!("{}{update_id}", 4_000_000_000_000u64 + from_id as u64);
        let text = state
            .messages
            .iter()
            .find(|m| m.chat_id == chat_id && m.message_id == message_id)
            .map(|m| m.text.clone())
            .unwrap_or_default();
        let mut from = json!({ "id": from_id, "is_bot": false, "first_name": "Person" });
        if let Some(username) = username {
            from["username"] = json!(username);
        }
        state.updates.push_back(json!({
            "update_id": update_id,
            "callback_query": {
                "id": query_id,
                "from": from,
                "message": {
                    "message_id": message_id,
                    "from": { "id": 123456, "is_bot": true, "first_name": "Runbooks", "username": "runbook_bot" },
                    "chat": { "id": chat_id, "title": "On call", "type": "supergroup" },
                    "date": 1_790_000_000,
                    "text": text,
                },
                "chat_instance": "-6345436734",
                "data": data,
            }
        }));
        state.open_queries.push(query_id.clone());
        wake.notify_all();
        (update_id, query_id)
    }
}

fn serve(stream: TcpStream, shared: &(Mutex<State>, Condvar)) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let mut length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':')
                && k.trim().eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (status, reply) = match path.strip_prefix(&format!("/bot{TELEGRAM_TOKEN}/")) {
            None => (401, error(401, "Unauthorized")),
            Some(method) => call(shared, method, &body),
        };
        if status != 200 {
            let description = reply["description"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let method = path.rsplit('/').next().unwrap_or_default().to_string();
            shared
                .0
                .lock()
                .unwrap()
                .refusals
                .push((method, description));
        }
        let reply = reply.to_string();
        let response = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        );
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

fn error(code: u16, description: &str) -> Value {
    json!({ "ok": false, "error_code": code, "description": description })
}

fn ok(result: Value) -> (u16, Value) {
    (200, json!({ "ok": true, "result": result }))
}

fn bad_request(description: &str) -> (u16, Value) {
    (400, error(400, &format!("Bad Request: {description}")))
}

/// A chat id as Telegram takes it: a number, or a number in a string.
fn chat_id(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

fn check_text(body: &Value) -> Result<String, (u16, Value)> {
    let text = body["text"].as_str().unwrap_or_default();
    if text.is_empty() {
        return Err(bad_request("message text is empty"));
    }
    if text.chars().count() > 4096 {
        return Err(bad_request("message is too long"));
    }
    if body["parse_mode"] == "HTML" && !crate::sinks::balanced_html(text) {
        return Err(bad_request("can't parse entities"));
    }
    Ok(text.to_string())
}

fn check_markup(body: &Value) -> Result<Value, (u16, Value)> {
    let markup = body.get("reply_markup").cloned().unwrap_or(Value::Null);
    if markup.is_null() {
        return Ok(markup);
    }
    let Some(rows) = markup["inline_keyboard"].as_array() else {
        return Err(bad_request("can't parse reply keyboard markup JSON object"));
    };
    for button in rows
        .iter()
        .flat_map(|r| r.as_array().cloned().unwrap_or_default())
    {
        let data = button["callback_data"].as_str().unwrap_or_default();
        if button["text"].as_str().is_none_or(str::is_empty) {
            return Err(bad_request(
                "text buttons are unallowed in the inline keyboard",
            ));
        }
        if data.is_empty() || data.len() > 64 {
            return Err(bad_request("BUTTON_DATA_INVALID"));
        }
    }
    Ok(markup)
}

fn call(shared: &(Mutex<State>, Condvar), method: &str, body: &Value) -> (u16, Value) {
    let lock = &shared.0;
    match method {
        "sendMessage" => {
            let Some(chat) = chat_id(&body["chat_id"]) else {
                return bad_request("chat_id is empty");
            };
            let text = match check_text(body) {
                Ok(text) => text,
                Err(refusal) => return refusal,
            };
            let markup = match check_markup(body) {
                Ok(markup) => markup,
                Err(refusal) => return refusal,
            };
            let mut state = lock.lock().unwrap();
            let message_id = state.next_message_id;
            state.next_message_id += 1;
            state.messages.push(Message {
                chat_id: chat,
                message_id,
                text: text.clone(),
                reply_markup: markup.clone(),
                history: vec![text.clone()],
            });
            let mut result = json!({
                "message_id": message_id, "date": 1_790_000_000,
                "chat": { "id": chat, "type": "supergroup" }, "text": text,
            });
            if !markup.is_null() {
                result["reply_markup"] = markup;
            }
            ok(result)
        }
        "editMessageText" => {
            let chat = chat_id(&body["chat_id"]);
            let message_id = body["message_id"].as_i64();
            let text = match check_text(body) {
                Ok(text) => text,
                Err(refusal) => return refusal,
            };
            let markup = match check_markup(body) {
                Ok(markup) => markup,
                Err(refusal) => return refusal,
            };
            let mut state = lock.lock().unwrap();
            let Some(message) = state
                .messages
                .iter_mut()
                .find(|m| Some(m.chat_id) == chat && Some(m.message_id) == message_id)
            else {
                return bad_request("message to edit not found");
            };
            // An empty keyboard removes the buttons, as Telegram shows it.
            let markup = if markup["inline_keyboard"]
                .as_array()
                .is_some_and(Vec::is_empty)
            {
                Value::Null
            } else {
                markup
            };
            if message.text == text && message.reply_markup == markup {
                return bad_request(
                    "message is not modified: specified new message content and reply markup \
                     are exactly the same as a current content and reply markup of the message",
                );
            }
            message.text = text.clone();
            message.reply_markup = markup;
            message.history.push(text);
            let result = json!({
                "message_id": message.message_id, "date": 1_790_000_000,
                "chat": { "id": message.chat_id, "type": "supergroup" }, "text": message.text,
            });
            ok(result)
        }
        "answerCallbackQuery" => {
            let query_id = body["callback_query_id"].as_str().unwrap_or_default();
            let text = body["text"].as_str().unwrap_or_default();
            if text.chars().count() > 200 {
                return bad_request("MESSAGE_TOO_LONG");
            }
            let mut state = lock.lock().unwrap();
            let Some(at) = state.open_queries.iter().position(|q| q == query_id) else {
                return bad_request(
                    "query is too old and response timeout expired or query ID is invalid",
                );
            };
            state.open_queries.remove(at);
            state.answers.push(CallbackAnswer {
                query_id: query_id.to_string(),
                text: text.to_string(),
                show_alert: body["show_alert"] == true,
            });
            ok(json!(true))
        }
        "getUpdates" => get_updates(shared, body),
        _ => (404, error(404, "Not Found")),
    }
}

fn get_updates(shared: &(Mutex<State>, Condvar), body: &Value) -> (u16, Value) {
    let (lock, wake) = shared;
    let offset = body["offset"].as_i64();
    let timeout = body["timeout"].as_u64().unwrap_or(0);
    let allowed: Option<Vec<String>> = body["allowed_updates"].as_array().map(|a| {
        a.iter()
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    });
    let mut state = lock.lock().unwrap();
    state.poll_generation += 1;
    let generation = state.poll_generation;
    wake.notify_all(); // an older poll still held ends with 409
    if let Some(offset) = offset {
        state
            .updates
            .retain(|u| u["update_id"].as_i64() >= Some(offset));
    }
    if allowed.is_some() {
        state.allowed_updates = allowed.clone();
    }
    state.polls.push(Poll {
        offset,
        timeout,
        allowed_updates: allowed,
        status: 200,
    });
    let poll_index = state.polls.len() - 1;
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        if state.poll_generation != generation {
            state.polls[poll_index].status = 409;
            return (
                409,
                error(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one \
                     bot instance is running",
                ),
            );
        }
        let wanted = state.allowed_updates.clone();
        let ready: Vec<Value> = state
            .updates
            .iter()
            .filter(|u| {
                wanted
                    .as_ref()
                    .is_none_or(|types| types.iter().any(|t| u.get(t.as_str()).is_some()))
            })
            .take(100)
            .cloned()
            .collect();
        let now = Instant::now();
        if !ready.is_empty() || now >= deadline {
            return ok(Value::Array(ready));
        }
        state = wake.wait_timeout(state, deadline - now).unwrap().0;
    }
}
