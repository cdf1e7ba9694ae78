//! Stand-ins for Slack, Telegram, PagerDuty and a generic webhook receiver on 127.0.0.1 (the
//! real services are not reachable from here). Each checks the request the way the real API
//! does — and refuses a malformed one with the real status and error text — records every
//! request, and answers from a script (429 with Retry-After, 500, 400…) before its normal
//! success reply.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Api {
    Slack,
    Telegram,
    PagerDuty,
    Webhook,
}

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
    /// The status this request was answered with.
    pub status: u16,
}

impl Request {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A scripted answer: status, extra headers, body.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn new(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The API's own 429: Slack and PagerDuty send Retry-After; Telegram puts `retry_after`
    /// in the body.
    pub fn too_many_requests(api: Api, secs: u64) -> Self {
        match api {
            Api::Telegram => Reply::new(
                429,
                &json!({"ok": false, "error_code": 429,
                        "description": format!("Too Many Requests: retry after {secs}"),
                        "parameters": {"retry_after": secs}})
                .to_string(),
            ),
            Api::PagerDuty => Reply::new(429, "").header("Retry-After", &secs.to_string()),
            _ => Reply::new(429, "rate_limited").header("Retry-After", &secs.to_string()),
        }
    }
}

pub struct Receiver {
    pub api: Api,
    pub port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
}

/// The Telegram bot token the receiver accepts (the real API answers 401 for any other).
pub const TELEGRAM_TOKEN: &str = "123456:test-token";

impl Receiver {
    pub fn start(api: Api) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let (r, s) = (requests.clone(), script.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (r, s) = (r.clone(), s.clone());
                std::thread::spawn(move || serve(api, stream, &r, &s));
            }
        });
        Receiver {
            api,
            port,
            requests,
            script,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Answers the next requests with these, in order, then normally again.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.script.lock().unwrap().extend(replies);
    }

    pub fn clear_script(&self) {
        self.script.lock().unwrap().clear();
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// Requests answered with a 2xx: what the service actually accepted.
    pub fn accepted(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// Waits for an accepted request that `matches` (or panics after `timeout`).
    pub fn wait_for(&self, timeout: Duration, matches: impl Fn(&Request) -> bool) -> Request {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.accepted().into_iter().find(|r| matches(r)) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{:?} receiver: no matching request after {timeout:?}; requests: {:?}",
                self.api,
                self.requests()
                    .iter()
                    .map(|r| (
                        r.status,
                        r.path.clone(),
                        String::from_utf8_lossy(&r.body).into_owned()
                    ))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `n` requests were accepted (or panics after `timeout`).
    pub fn wait_accepted(&self, n: usize, timeout: Duration) -> Vec<Request> {
        let deadline = Instant::now() + timeout;
        loop {
            let accepted = self.accepted();
            if accepted.len() >= n {
                return accepted;
            }
            assert!(
                Instant::now() < deadline,
                "{:?} receiver: {} of {n} messages accepted after {timeout:?}; requests: {:?}",
                self.api,
                accepted.len(),
                self.requests()
                    .iter()
                    .map(|r| (r.status, String::from_utf8_lossy(&r.body).into_owned()))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn serve(
    api: Api,
    stream: TcpStream,
    requests: &Mutex<Vec<Request>>,
    script: &Mutex<VecDeque<Reply>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let length: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut request = Request {
            method,
            path,
            headers,
            body,
            at: Instant::now(),
            status: 0,
        };
        let scripted = script.lock().unwrap().pop_front();
        let reply = scripted.unwrap_or_else(|| check(api, &request));
        request.status = reply.status;
        requests.lock().unwrap().push(request);
        let mut response = format!(
            "HTTP/1.1 {} X\r\nContent-Length: {}\r\n",
            reply.status,
            reply.body.len()
        );
        for (k, v) in &reply.headers {
            response.push_str(&format!("{k}: {v}\r\n"));
        }
        response.push_str("\r\n");
        response.push_str(&reply.body);
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// What the real API answers to this request when nothing is scripted.
fn check(api: Api, request: &Request) -> Reply {
    let json_type = request
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v.starts_with("application/json"));
    let body = request.json();
    match api {
        Api::Slack => {
            if request.method != "POST" || !json_type {
                return Reply::new(400, "invalid_payload");
            }
            let text_ok = body["text"].as_str().is_some_and(|t| !t.is_empty());
            let blocks_ok = body["blocks"]
                .as_array()
                .is_some_and(|blocks| blocks.iter().all(slack_block_ok));
            if request.path.starts_with(SLACK_RESPONSE_PATH) {
                // A `response_url`: text alone will do (an ephemeral reply); blocks, if any,
                // must be valid, and `response_type` is Slack's.
                let blocks_ok = body["blocks"].is_null() || blocks_ok;
                let type_ok = body["response_type"].is_null()
                    || matches!(
                        body["response_type"].as_str(),
                        Some("ephemeral" | "in_channel")
                    );
                if !text_ok || !blocks_ok || !type_ok {
                    return Reply::new(400, "invalid_blocks");
                }
                return Reply::new(200, "ok");
            }
            if !text_ok || !blocks_ok {
                return Reply::new(400, "invalid_blocks");
            }
            Reply::new(200, "ok")
        }
        Api::Telegram => {
            if request.path != format!("/bot{TELEGRAM_TOKEN}/sendMessage") {
                return Reply::new(
                    401,
                    r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#,
                );
            }
            let text = body["text"].as_str().unwrap_or_default();
            let problem = if !json_type {
                Some("Bad Request: message text is empty")
            } else if body["chat_id"].is_null() {
                Some("Bad Request: chat_id is empty")
            } else if body["chat_id"] == "-100404" {
                Some("Bad Request: chat not found")
            } else if text.is_empty() {
                Some("Bad Request: message text is empty")
            } else if text.chars().count() > 4096 {
                Some("Bad Request: message is too long")
            } else if body["parse_mode"] != "HTML" || !balanced_html(text) {
                Some("Bad Request: can't parse entities")
            } else {
                None
            };
            match problem {
                Some(description) => Reply::new(
                    400,
                    &json!({"ok": false, "error_code": 400, "description": description})
                        .to_string(),
                ),
                None => Reply::new(
                    200,
                    &json!({"ok": true, "result": {"message_id": 1, "chat": {"id": body["chat_id"]}, "text": text}}).to_string(),
                ),
            }
        }
        Api::PagerDuty => {
            let mut errors = Vec::new();
            if request.path != "/v2/enqueue" {
                return Reply::new(404, "");
            }
            if body["routing_key"].as_str().is_none_or(|k| k.len() != 32) {
                errors.push("'routing_key' must be 32 characters");
            }
            let action = body["event_action"].as_str().unwrap_or_default();
            if !["trigger", "acknowledge", "resolve"].contains(&action) {
                errors.push("'event_action' is invalid");
            }
            if action == "trigger" {
                let p = &body["payload"];
                if p["summary"].as_str().is_none_or(str::is_empty) {
                    errors.push("'payload.summary' is missing or blank");
                }
                if p["source"].as_str().is_none_or(str::is_empty) {
                    errors.push("'payload.source' is missing or blank");
                }
                if !["critical", "error", "warning", "info"]
                    .contains(&p["severity"].as_str().unwrap_or_default())
                {
                    errors.push("'payload.severity' is invalid");
                }
            } else if body["dedup_key"].as_str().is_none() {
                errors.push("'dedup_key' is required for acknowledge and resolve");
            }
            if errors.is_empty() {
                Reply::new(
                    202,
                    &json!({"status": "success", "message": "Event processed",
                            "dedup_key": body["dedup_key"]})
                    .to_string(),
                )
            } else {
                Reply::new(
                    400,
                    &json!({"status": "invalid event", "message": "Event object is invalid",
                            "errors": errors})
                    .to_string(),
                )
            }
        }
        Api::Webhook => {
            if request.method == "POST" && json_type && body.is_object() {
                Reply::new(204, "")
            } else {
                Reply::new(400, "expected a JSON object")
            }
        }
    }
}

/// Where the Slack stand-in takes a click's `response_url` POSTs (Slack's are
/// `https://hooks.slack.com/actions/T…/…/…`, on the incoming webhooks' origin).
pub const SLACK_RESPONSE_PATH: &str = "/actions/";

/// A Block Kit block as Slack accepts it in a message: a known type; an `actions` block holds
/// 1–25 buttons, each with plain-text label, an `action_id`, a value within 2000 characters
/// and, if styled, `primary` or `danger`.
fn slack_block_ok(block: &Value) -> bool {
    match block["type"].as_str() {
        Some("header" | "section" | "context" | "divider" | "image" | "rich_text" | "file") => true,
        Some("actions") => block["elements"].as_array().is_some_and(|elements| {
            (1..=25).contains(&elements.len())
                && elements.iter().all(|e| {
                    e["type"] == "button"
                        && e["text"]["type"] == "plain_text"
                        && e["text"]["text"]
                            .as_str()
                            .is_some_and(|t| !t.is_empty() && t.chars().count() <= 75)
                        && e["action_id"]
                            .as_str()
                            .is_some_and(|a| !a.is_empty() && a.len() <= 255)
                        && e["value"]
                            .as_str()
                            .is_none_or(|v| v.chars().count() <= 2000)
                        && (e["style"].is_null()
                            || matches!(e["style"].as_str(), Some("primary" | "danger")))
                })
        }),
        _ => false,
    }
}

/// Telegram's HTML mode: only its tags, every one closed, entities only &lt; &gt; &amp; &quot;.
pub fn balanced_html(text: &str) -> bool {
    let mut open: Vec<&str> = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(['<', '&']) {
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix('&') {
            if !["lt;", "gt;", "amp;", "quot;"]
                .iter()
                .any(|e| after.starts_with(e))
            {
                return false;
            }
            rest = after;
            continue;
        }
        let Some(end) = tail.find('>') else {
            return false;
        };
        let tag = &tail[1..end];
        if let Some(name) = tag.strip_prefix('/') {
            if open.pop() != Some(name) {
                return false;
            }
        } else if ["b", "i", "u", "s", "code", "pre"].contains(&tag) {
            open.push(tag);
        } else {
            return false;
        }
        rest = &tail[end + 1..];
    }
    open.is_empty()
}
