//! `[notify.<name>]` in host.toml: a `kind` and its settings. Secrets are named (env var or
//! file), never inlined; every network kind takes a base URL so a self-hosted gateway (or a
//! test receiver on 127.0.0.1) can stand in for the public API.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ChannelConfig {
    /// Prints on the host's stdout (stderr when stdout carries `--json`).
    Stdout,
    /// Prints on the host's stderr: the terminal's, even when stdout is piped (`| head`) or
    /// redirected; the journal's under systemd. The default `ops` and `security` channels.
    Stderr,
    /// Appends one JSON object per line.
    #[serde(rename_all = "kebab-case")]
    File { path: PathBuf },
    /// Incoming webhook: `text` plus Block Kit `blocks`.
    #[serde(rename_all = "kebab-case")]
    Slack {
        webhook_url: Secret,
        /// The Slack app's signing secret: answers to approval questions posted here come
        /// back to `POST /hooks/slack/interactive` signed with it.
        signing_secret: Option<Secret>,
        #[serde(default)]
        delivery: DeliveryConfig,
    },
    /// Bot API `sendMessage` with HTML formatting; long text is split at 4096 characters.
    #[serde(rename_all = "kebab-case")]
    Telegram {
        bot_token: Secret,
        chat_id: String,
        #[serde(default = "telegram_api")]
        base_url: String,
        #[serde(default)]
        delivery: DeliveryConfig,
    },
    /// Events API v2; the dedup key comes from the alert fingerprint.
    #[serde(rename_all = "kebab-case")]
    Pagerduty {
        routing_key: Secret,
        #[serde(default = "pagerduty_api")]
        base_url: String,
        #[serde(default)]
        delivery: DeliveryConfig,
    },
    /// Generic JSON POST, signed the Standard Webhooks way when `signing-secret` is set.
    #[serde(rename_all = "kebab-case")]
    Webhook {
        url: String,
        signing_secret: Option<Secret>,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        #[serde(default)]
        delivery: DeliveryConfig,
    },
    /// SMTP; `tls = "starttls"` (default), `"tls"` or `"none"` for a local relay.
    #[serde(rename_all = "kebab-case")]
    Email {
        smtp_host: String,
        smtp_port: Option<u16>,
        #[serde(default)]
        tls: SmtpTls,
        username: Option<String>,
        password: Option<Secret>,
        from: String,
        to: Vec<String>,
        #[serde(default)]
        delivery: DeliveryConfig,
    },
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum SmtpTls {
    #[default]
    Starttls,
    Tls,
    None,
}

/// How hard a channel tries. `[notify.<name>.delivery]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct DeliveryConfig {
    /// Attempts before a message is failed for good.
    pub max_attempts: u32,
    /// First retry delay; it doubles per attempt (with jitter) up to `retry-max-secs`.
    pub retry_base_ms: u64,
    pub retry_max_secs: u64,
    /// Per-request timeout.
    pub timeout_secs: u64,
    /// At most one message per this interval [default: 1000 for Slack and Telegram, which
    /// allow about one a second; else 0].
    pub min_interval_ms: Option<u64>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            retry_base_ms: 1000,
            retry_max_secs: 300,
            timeout_secs: 10,
            min_interval_ms: None,
        }
    }
}

impl DeliveryConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.max(1))
    }
}

fn telegram_api() -> String {
    "https://api.telegram.org".into()
}

fn pagerduty_api() -> String {
    "https://events.pagerduty.com".into()
}

impl ChannelConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            ChannelConfig::Stdout => "stdout",
            ChannelConfig::Stderr => "stderr",
            ChannelConfig::File { .. } => "file",
            ChannelConfig::Slack { .. } => "slack",
            ChannelConfig::Telegram { .. } => "telegram",
            ChannelConfig::Pagerduty { .. } => "pagerduty",
            ChannelConfig::Webhook { .. } => "webhook",
            ChannelConfig::Email { .. } => "email",
        }
    }

    pub fn delivery(&self) -> DeliveryConfig {
        match self {
            ChannelConfig::Stdout | ChannelConfig::Stderr | ChannelConfig::File { .. } => {
                DeliveryConfig::default()
            }
            ChannelConfig::Slack { delivery, .. }
            | ChannelConfig::Telegram { delivery, .. }
            | ChannelConfig::Pagerduty { delivery, .. }
            | ChannelConfig::Webhook { delivery, .. }
            | ChannelConfig::Email { delivery, .. } => delivery.clone(),
        }
    }

    /// The spacing between two messages on this channel.
    pub fn min_interval(&self) -> Duration {
        let default = match self {
            ChannelConfig::Slack { .. } | ChannelConfig::Telegram { .. } => 1000,
            _ => 0,
        };
        Duration::from_millis(self.delivery().min_interval_ms.unwrap_or(default))
    }
}
