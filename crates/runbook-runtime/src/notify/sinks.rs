//! The sinks: one attempt to hand a notification to Slack, Telegram, PagerDuty, a webhook,
//! SMTP, a file or the console, and what the answer means for the outbox (delivered, retry
//! later, or failed for good with the sink's own words).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::email::Mailer;
use super::{Attempt, ChannelConfig, ConsoleStream, Notification, render};

pub enum Sink {
    Console(ConsoleStream),
    File(PathBuf),
    Slack {
        client: reqwest::Client,
        url: String,
    },
    Telegram {
        client: reqwest::Client,
        url: String,
        chat_id: String,
    },
    PagerDuty {
        client: reqwest::Client,
        url: String,
        routing_key: String,
    },
    Webhook {
        client: reqwest::Client,
        url: String,
        signing_key: Option<Vec<u8>>,
        headers: BTreeMap<String, String>,
    },
    Email(Box<Mailer>),
}

fn client(config: &ChannelConfig) -> Result<reqwest::Client> {
    // Sinks do not redirect; a redirect means a wrong URL, and following it could carry the
    // message (and a token in the path) somewhere else.
    Ok(reqwest::Client::builder()
        .timeout(config.delivery().timeout())
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("runbook-host/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

fn checked_url(url: &str, what: &str) -> Result<String> {
    let parsed = url::Url::parse(url).with_context(|| format!("{what} is not a URL"))?;
    anyhow::ensure!(
        matches!(parsed.scheme(), "http" | "https"),
        "{what} must be http or https"
    );
    Ok(url.trim_end_matches('/').to_string())
}

impl Sink {
    pub fn build(config: &ChannelConfig, console: ConsoleStream) -> Result<Sink> {
        Ok(match config {
            ChannelConfig::Stdout => Sink::Console(console),
            ChannelConfig::Stderr => Sink::Console(ConsoleStream::Stderr),
            ChannelConfig::File { path } => Sink::File(path.clone()),
            ChannelConfig::Slack { webhook_url, .. } => Sink::Slack {
                client: client(config)?,
                url: checked_url(&webhook_url.load()?, "webhook-url")?,
            },
            ChannelConfig::Telegram {
                bot_token,
                chat_id,
                base_url,
                ..
            } => Sink::Telegram {
                client: client(config)?,
                url: format!(
                    "{}/bot{}/sendMessage",
                    checked_url(base_url, "base-url")?,
                    bot_token.load()?
                ),
                chat_id: chat_id.clone(),
            },
            ChannelConfig::Pagerduty {
                routing_key,
                base_url,
                ..
            } => Sink::PagerDuty {
                client: client(config)?,
                url: format!("{}/v2/enqueue", checked_url(base_url, "base-url")?),
                routing_key: routing_key.load()?,
            },
            ChannelConfig::Webhook {
                url,
                signing_secret,
                headers,
                ..
            } => Sink::Webhook {
                client: client(config)?,
                url: checked_url(url, "url")?,
                signing_key: signing_secret
                    .as_ref()
                    .map(|s| crate::signing::standard_webhooks_key(&s.load()?))
                    .transpose()?,
                headers: headers.clone(),
            },
            ChannelConfig::Email { .. } => Sink::Email(Box::new(Mailer::new(config)?)),
        })
    }

    /// Console and file sinks write at once, in the run; the others go through a worker.
    pub fn is_local(&self) -> bool {
        matches!(self, Sink::Console(_) | Sink::File(_))
    }

    /// Network and file sinks: their pending rows are retried by a worker. A console
    /// message belongs to the process that printed it and is not repeated by another.
    pub fn has_worker(&self) -> bool {
        !matches!(self, Sink::Console(_))
    }

    pub fn deliver_local(&self, channel: &str, n: &Notification) -> Attempt {
        let written = match self {
            Sink::Console(ConsoleStream::Stdout) => std::io::stdout()
                .lock()
                .write_all(render::text(channel, n).as_bytes()),
            Sink::Console(ConsoleStream::Stderr) => std::io::stderr()
                .lock()
                .write_all(render::text(channel, n).as_bytes()),
            Sink::File(path) => {
                // A full disk or a lost mount may come back: the worker retries it.
                return match append_json_line(path, &render::webhook(channel, n)) {
                    Ok(()) => Attempt::Delivered,
                    Err(e) => Attempt::Retry {
                        error: format!("writing to {channel}: {e}"),
                        after: None,
                    },
                };
            }
            _ => unreachable!("network sinks are delivered by a worker"),
        };
        match written {
            Ok(()) => Attempt::Delivered,
            Err(e) => Attempt::Failed(format!("writing to {channel}: {e}")),
        }
    }

    /// One attempt. `parts_sent` parts of a split message already went out; `sent_part` is
    /// told after each further part so a retry resumes instead of repeating.
    pub async fn deliver(
        &self,
        channel: &str,
        outbox_id: i64,
        n: &Notification,
        parts_sent: usize,
        mut sent_part: impl FnMut(usize),
    ) -> Attempt {
        match self {
            Sink::Console(_) | Sink::File(_) => self.deliver_local(channel, n),
            Sink::Slack { client, url } => {
                post(client.post(url).json(&render::slack(n)), classify_plain).await
            }
            Sink::PagerDuty {
                client,
                url,
                routing_key,
            } => {
                let body = render::pagerduty(n, routing_key);
                post(client.post(url).json(&body), classify_plain).await
            }
            Sink::Webhook {
                client,
                url,
                signing_key,
                headers,
            } => {
                let body = serde_json::to_vec(&render::webhook(channel, n)).expect("json");
                let mut request = client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body.clone());
                for (name, value) in headers {
                    request = request.header(name, value);
                }
                if let Some(key) = signing_key {
                    // The id stays the same across retries so the receiver can drop repeats.
                    let id = format!("msg_{}_{outbox_id}", n.run_id);
                    let timestamp = SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs()
                        .to_string();
                    let signature =
                        crate::signing::standard_webhooks_header(key, &id, &timestamp, &body);
                    request = request
                        .header("webhook-id", id)
                        .header("webhook-timestamp", timestamp)
                        .header("webhook-signature", signature);
                }
                post(request, classify_plain).await
            }
            Sink::Telegram {
                client,
                url,
                chat_id,
            } => {
                let parts = render::telegram(n);
                for (i, text) in parts.iter().enumerate().skip(parts_sent) {
                    let body = serde_json::json!({
                        "chat_id": chat_id,
                        "text": text,
                        "parse_mode": "HTML",
                        "disable_web_page_preview": true,
                    });
                    let attempt = post(client.post(url).json(&body), classify_telegram).await;
                    if attempt != Attempt::Delivered {
                        return attempt;
                    }
                    sent_part(i + 1);
                }
                Attempt::Delivered
            }
            Sink::Email(mailer) => mailer.send(n).await,
        }
    }
}

fn append_json_line(path: &PathBuf, value: &serde_json::Value) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(value).expect("json");
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    // One write per line: concurrent runs appending to the same file never interleave a line.
    file.write_all(&line)?;
    file.sync_data()
}

async fn post(
    request: reqwest::RequestBuilder,
    classify: fn(StatusCode, &HeaderMap, &str) -> Attempt,
) -> Attempt {
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return transport_error(e),
    };
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap_or_default();
    classify(status, &headers, &body)
}

/// Retried: the sink may come back. The URL is left out of the message: Slack's and
/// Telegram's carry the secret.
fn transport_error(e: reqwest::Error) -> Attempt {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut detail = String::new();
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        detail = inner.to_string();
        source = inner.source();
    }
    Attempt::Retry {
        error: format!(
            "{kind}: {}",
            if detail.is_empty() {
                e.without_url().to_string()
            } else {
                detail
            }
        ),
        after: None,
    }
}

/// Slack, PagerDuty and webhooks: the status decides; the body is the sink's reason.
fn classify_plain(status: StatusCode, headers: &HeaderMap, body: &str) -> Attempt {
    let reason = || format!("HTTP {}: {}", status.as_u16(), snippet(body));
    if status.is_success() {
        Attempt::Delivered
    } else if status == StatusCode::TOO_MANY_REQUESTS {
        Attempt::Retry {
            error: reason(),
            after: retry_after(headers),
        }
    } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        Attempt::Retry {
            error: reason(),
            after: None,
        }
    } else if status.is_redirection() {
        let to = headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?");
        Attempt::Failed(format!(
            "HTTP {}: redirected to {to}, not followed",
            status.as_u16()
        ))
    } else {
        Attempt::Failed(reason())
    }
}

/// Telegram answers `{"ok": false, "error_code": 429, "description": …, "parameters":
/// {"retry_after": N}}`; the description is the useful part.
fn classify_telegram(status: StatusCode, headers: &HeaderMap, body: &str) -> Attempt {
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    if status.is_success() && json["ok"] != serde_json::Value::Bool(false) {
        return Attempt::Delivered;
    }
    let description = json["description"].as_str().map(String::from);
    let after = json["parameters"]["retry_after"]
        .as_u64()
        .map(Duration::from_secs)
        .or_else(|| retry_after(headers));
    match classify_plain(status, headers, body) {
        Attempt::Retry { error, .. } => Attempt::Retry {
            error: description
                .map(|d| format!("HTTP {}: {d}", status.as_u16()))
                .unwrap_or(error),
            after,
        },
        Attempt::Failed(error) => Attempt::Failed(
            description
                .map(|d| format!("HTTP {}: {d}", status.as_u16()))
                .unwrap_or(error),
        ),
        Attempt::Delivered => Attempt::Failed(format!("Telegram answered ok=false: {body}")),
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

fn snippet(body: &str) -> String {
    let body = body.trim();
    if body.chars().count() > 500 {
        format!("{}…", body.chars().take(500).collect::<String>())
    } else if body.is_empty() {
        "(empty body)".into()
    } else {
        body.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn statuses_map_to_retry_or_failure() {
        let none = HeaderMap::new();
        assert_eq!(
            classify_plain(StatusCode::OK, &none, "ok"),
            Attempt::Delivered
        );
        assert_eq!(
            classify_plain(
                StatusCode::TOO_MANY_REQUESTS,
                &headers(&[("retry-after", "7")]),
                ""
            ),
            Attempt::Retry {
                error: "HTTP 429: (empty body)".into(),
                after: Some(Duration::from_secs(7))
            }
        );
        assert!(matches!(
            classify_plain(StatusCode::BAD_GATEWAY, &none, "x"),
            Attempt::Retry { after: None, .. }
        ));
        assert_eq!(
            classify_plain(StatusCode::BAD_REQUEST, &none, "invalid_payload"),
            Attempt::Failed("HTTP 400: invalid_payload".into())
        );
        let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        let after = retry_after(&headers(&[("retry-after", &date)])).unwrap();
        assert!(after > Duration::from_secs(28) && after <= Duration::from_secs(30));
    }

    #[test]
    fn telegram_retry_after_comes_from_the_body() {
        let body = r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}}"#;
        assert_eq!(
            classify_telegram(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), body),
            Attempt::Retry {
                error: "HTTP 429: Too Many Requests: retry after 3".into(),
                after: Some(Duration::from_secs(3))
            }
        );
        let body = r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#;
        assert_eq!(
            classify_telegram(StatusCode::BAD_REQUEST, &HeaderMap::new(), body),
            Attempt::Failed("HTTP 400: Bad Request: chat not found".into())
        );
    }
}
