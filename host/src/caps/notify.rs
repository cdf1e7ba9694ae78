//! The `notify` capability: playbooks name a channel, the operator decides what it is.
//! This only kind is `stdout`; `ops` and `security` print there until configured.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use serde::Deserialize;
use serde_json::json;

use crate::bindings::CapError;
use crate::bindings::runbook::host::notify::{self, Message};
use crate::state::{LimitExceeded, RunState};
use crate::timeline::EventKind;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ChannelConfig {
    /// Prints the message on the host's stdout (stderr when stdout carries `--json`).
    Stdout,
}

/// Where the `stdout` kind writes: stdout is reserved for the document under `--json`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConsoleStream {
    Stdout,
    Stderr,
}

pub struct Channels {
    channels: BTreeMap<String, ChannelConfig>,
    console: ConsoleStream,
}

impl Channels {
    /// The operator's channels over the defaults (`stdout`, and `ops`/`security` to stdout).
    pub fn new(configured: &BTreeMap<String, ChannelConfig>, console: ConsoleStream) -> Self {
        let mut channels: BTreeMap<String, ChannelConfig> = ["stdout", "ops", "security"]
            .into_iter()
            .map(|name| (name.to_string(), ChannelConfig::Stdout))
            .collect();
        channels.extend(configured.iter().map(|(k, v)| (k.clone(), v.clone())));
        Self { channels, console }
    }

    pub fn names(&self) -> Vec<&str> {
        self.channels.keys().map(String::as_str).collect()
    }

    fn deliver(
        &self,
        config: &ChannelConfig,
        channel: &str,
        message: &Message,
    ) -> Result<(), CapError> {
        match config {
            ChannelConfig::Stdout => {
                let text = render_text(channel, message);
                let written = match self.console {
                    ConsoleStream::Stdout => std::io::stdout().lock().write_all(text.as_bytes()),
                    ConsoleStream::Stderr => std::io::stderr().lock().write_all(text.as_bytes()),
                };
                written.map_err(|e| CapError::Failed(format!("writing to {channel}: {e}")))
            }
        }
    }
}

/// Plain-text rendering used by the console channel.
pub fn render_text(channel: &str, message: &Message) -> String {
    let mut out = format!(
        "\n── notify {channel} [{}] {}\n",
        message.severity.as_str(),
        message.title
    );
    for line in message.body.lines() {
        out.push_str("   ");
        out.push_str(line);
        out.push('\n');
    }
    for (key, value) in &message.fields {
        out.push_str(&format!("   {key}: {value}\n"));
    }
    out.push('\n');
    out
}

impl notify::Host for RunState {
    async fn send(
        &mut self,
        channel: String,
        message: Message,
    ) -> wasmtime::Result<Result<(), CapError>> {
        self.begin_call()?;
        let started = Instant::now();
        let args = json!({
            "channel": channel,
            "title": message.title,
            "severity": message.severity.as_str(),
            "fields": message.fields.len(),
        });
        let result = self.check_and_send(&channel, &message)?;
        let state = match &result {
            Ok(()) if self.dry_run => "would-send",
            Ok(()) => "delivered",
            Err(_) => "failed",
        };
        if self.dry_run && result.is_ok() {
            self.timeline.call(
                "notify",
                "send",
                args,
                "would",
                Some(format!("would notify {channel}: {}", message.title)),
                started.elapsed(),
            );
        } else {
            self.record_call(
                "notify",
                "send",
                args,
                &result,
                |_| String::new(),
                started.elapsed(),
            );
        }
        if result.is_ok() {
            self.timeline.record(EventKind::Notification {
                channel,
                severity: message.severity.as_str().to_string(),
                title: message.title,
                state: state.to_string(),
            });
        }
        Ok(result)
    }
}

impl RunState {
    fn check_and_send(
        &mut self,
        channel: &str,
        message: &Message,
    ) -> wasmtime::Result<Result<(), CapError>> {
        if !self.grants.notify.iter().any(|c| c == channel) {
            return Ok(Err(CapError::Denied(format!(
                "channel {channel:?} is not granted to this playbook (granted: [{}])",
                self.grants.notify.join(", ")
            ))));
        }
        let Some(config) = self.channels.channels.get(channel) else {
            return Ok(Err(CapError::NotFound(format!(
                "no channel named {channel:?} is configured (configured: {})",
                self.channels.names().join(", ")
            ))));
        };
        self.counters.notifications += 1;
        if self.counters.notifications > self.limits.max_notifications {
            return Err(LimitExceeded(format!(
                "more than {} notifications in one run",
                self.limits.max_notifications
            ))
            .into());
        }
        if self.dry_run {
            return Ok(Ok(()));
        }
        Ok(self.channels.deliver(config, channel, message))
    }
}
