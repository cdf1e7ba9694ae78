//! The agent's line to the servers: JSON over HTTP(S) with the node's bearer token, moving to
//! the next server (replica) when one does not answer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::AgentId;

/// A refusal the server means (4xx): retrying the same request cannot help.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub message: String,
}

/// Larger than anything the server sends back (runs with their alert and parameters).
const MAX_ANSWER_BYTES: usize = 16 << 20;

pub struct Uplink {
    client: reqwest::Client,
    servers: Vec<url::Url>,
    current: AtomicUsize,
    /// None: the node proves itself by its client certificate alone (a server with
    /// `[fleet] node-auth = "certificate"`).
    token: Option<String>,
    pub agent: AgentId,
}

impl Uplink {
    pub fn new(servers: Vec<url::Url>, token: Option<String>, agent: AgentId) -> Result<Self> {
        anyhow::ensure!(
            !servers.is_empty(),
            "no server to connect to (--server URL)"
        );
        let client = crate::server_link::client_builder()?
            .connect_timeout(Duration::from_secs(5))
            // The token goes to the servers named on the command line, nowhere else.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(format!("runbook-host-agent/{}", agent.version))
            .build()?;
        Ok(Self {
            client,
            servers,
            current: AtomicUsize::new(0),
            token,
            agent,
        })
    }

    /// The server in use, for messages.
    pub fn server(&self) -> &url::Url {
        &self.servers[self.current.load(Ordering::Relaxed) % self.servers.len()]
    }

    fn url(&self, segments: &[&str]) -> url::Url {
        let mut url = self.server().clone();
        url.path_segments_mut()
            .expect("an http(s) URL has a path")
            .pop_if_empty()
            .extend(segments);
        url
    }

    /// POSTs `body` to the path under the server's URL. `Ok(Err(_))`: the server refused
    /// (4xx); `Err(_)`: it did not answer or failed (5xx), and the next call goes to the next
    /// server.
    pub async fn post<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &impl Serialize,
        timeout: Duration,
    ) -> Result<Result<T, Refused>> {
        let url = self.url(segments);
        let answer = self.send(&url, body, timeout).await;
        if answer.is_err() && self.servers.len() > 1 {
            self.current.fetch_add(1, Ordering::Relaxed);
        }
        answer
    }

    /// `post` for an answer of raw bytes (a component), refused past `cap` bytes.
    pub async fn post_for_bytes(
        &self,
        segments: &[&str],
        body: &impl Serialize,
        timeout: Duration,
        cap: usize,
    ) -> Result<Result<Vec<u8>, Refused>> {
        let url = self.url(segments);
        let answer = self.exchange(&url, body, timeout, cap).await;
        if answer.is_err() && self.servers.len() > 1 {
            self.current.fetch_add(1, Ordering::Relaxed);
        }
        answer
    }

    async fn send<T: DeserializeOwned>(
        &self,
        url: &url::Url,
        body: &impl Serialize,
        timeout: Duration,
    ) -> Result<Result<T, Refused>> {
        Ok(
            match self.exchange(url, body, timeout, MAX_ANSWER_BYTES).await? {
                Ok(bytes) => Ok(serde_json::from_slice(&bytes).with_context(|| {
                    format!("the answer of {}", crate::redact::url(url.as_str()))
                })?),
                Err(refused) => Err(refused),
            },
        )
    }

    async fn exchange(
        &self,
        url: &url::Url,
        body: &impl Serialize,
        timeout: Duration,
        cap: usize,
    ) -> Result<Result<Vec<u8>, Refused>> {
        let mut request = self.client.post(url.clone());
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let mut response = request
            .json(body)
            .timeout(timeout)
            .send()
            .await
            .with_context(|| format!("POST {}", crate::redact::url(url.as_str())))?;
        let status = response.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            bytes.extend_from_slice(&chunk);
            anyhow::ensure!(
                bytes.len() <= cap,
                "the server's answer is over {cap} bytes"
            );
        }
        if status.is_server_error() {
            anyhow::bail!(
                "{} answered {status}: {}",
                crate::redact::url(url.as_str()),
                message_of(&bytes)
            );
        }
        if status.is_client_error() {
            return Ok(Err(Refused {
                status: status.as_u16(),
                message: message_of(&bytes),
            }));
        }
        Ok(Ok(bytes))
    }
}

/// The server's `{"error": …}`, or the body as text, capped and escaped for a log line.
fn message_of(body: &[u8]) -> String {
    let text = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(String::from))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    crate::text::escape(&crate::text::echo(&text)).into_owned()
}
