//! Notification delivery. A playbook names a channel (`ops`, `security`); the operator's
//! `[notify.<name>]` says what it is. Every message is written to the outbox in the run store
//! first and then delivered by a worker per channel, with retries, backoff and rate limits, so
//! a sink that is down, rate-limiting or restarting loses nothing.

mod attempt;
mod config;
mod email;
pub mod render;
mod sinks;
mod worker;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

pub use attempt::Attempt;
pub use config::{ChannelConfig, DeliveryConfig, SmtpTls};

use crate::store::{NewMessage, OutboxRow, Store};

/// Where the console kinds write: stdout is reserved for the document under `--json`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConsoleStream {
    Stdout,
    Stderr,
}

/// What is stored in the outbox and rendered per kind at delivery time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Notification {
    pub title: String,
    pub body: String,
    /// info, warning, error, critical.
    pub severity: String,
    pub fields: Vec<(String, String)>,
    pub playbook: String,
    pub run_id: String,
    #[serde(default)]
    pub alert: Option<AlertRef>,
    /// Ties a trigger and its later resolve together (PagerDuty's `dedup_key`).
    pub dedup_key: String,
    /// `trigger` while the alert fires, `resolve` once it has resolved.
    pub event_action: String,
    pub created_at: String,
    /// The machine the host runs on, so a message says where it came from.
    pub source: String,
    /// The run's incident priority (P1–P4).
    #[serde(default)]
    pub priority: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertRef {
    pub name: String,
    pub fingerprint: String,
    pub status: String,
}

static PUBLIC_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// `[server] public-url`: run ids in messages become links to the run in the console.
pub fn set_public_url(url: &str) -> anyhow::Result<()> {
    let parsed = url::Url::parse(url)?;
    anyhow::ensure!(
        matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some(),
        "must be an http(s) URL, like https://runbooks.example.com"
    );
    let _ = PUBLIC_URL.set(url.trim_end_matches('/').to_string());
    Ok(())
}

/// The run's page in the console, when `[server] public-url` is set.
pub fn run_link(run_id: &str) -> Option<String> {
    let base = PUBLIC_URL.get()?;
    let id: String = url::form_urlencoded::byte_serialize(run_id.as_bytes()).collect();
    Some(format!("{base}/ui/runs/{id}"))
}

impl Notification {
    /// A message from a run; the alert (if any) decides the dedup key and trigger/resolve.
    pub fn new(
        message: Message,
        playbook: &str,
        run_id: &str,
        alert: Option<AlertRef>,
    ) -> Notification {
        let dedup_key = match &alert {
            Some(a) if !a.fingerprint.is_empty() => format!("runbook-{}", a.fingerprint),
            _ => format!("runbook-{run_id}"),
        };
        let event_action = match &alert {
            Some(a) if a.status == "resolved" => "resolve",
            _ => "trigger",
        };
        Notification {
            title: message.title,
            body: message.body,
            severity: message.severity,
            fields: message.fields,
            playbook: playbook.to_string(),
            run_id: run_id.to_string(),
            alert,
            dedup_key,
            event_action: event_action.to_string(),
            created_at: now_rfc3339(),
            source: hostname(),
            priority: None,
        }
    }

    pub fn with_priority(mut self, priority: Option<crate::severity::Priority>) -> Self {
        self.priority = priority.map(|p| p.to_string());
        self
    }
}

/// The parts a playbook gives.
pub struct Message {
    pub title: String,
    pub body: String,
    pub severity: String,
    pub fields: Vec<(String, String)>,
}

/// What `submit` did with a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    pub outbox_id: i64,
    /// `delivered` (console kinds write at once), `failed`, or `queued` for a worker.
    pub state: String,
}

pub(crate) struct Channel {
    pub name: String,
    pub config: ChannelConfig,
    /// The kind's sink with its secrets loaded, or why it could not be built.
    pub sink: Result<sinks::Sink, String>,
    pub wake: Arc<Notify>,
}

pub struct Notifier {
    channels: BTreeMap<String, Arc<Channel>>,
    store: Arc<Store>,
    console: ConsoleStream,
    shutdown: watch::Sender<bool>,
    workers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// The channels every host has until the operator configures them: `stdout`, and `ops` /
/// `security` on stderr. Messages to people are not the command's output: `host run disk-full
/// | head -2` must neither swallow them nor record a delivery failed on a closed pipe.
const DEFAULT_CHANNELS: [(&str, ChannelConfig); 3] = [
    ("stdout", ChannelConfig::Stdout),
    ("ops", ChannelConfig::Stderr),
    ("security", ChannelConfig::Stderr),
];

impl Notifier {
    /// Builds every channel's sink now so a missing secret is reported at start, not at 3 am;
    /// a broken channel still queues (nothing is lost) and says why it cannot deliver.
    pub fn new(
        configured: &BTreeMap<String, ChannelConfig>,
        store: Arc<Store>,
        console: ConsoleStream,
    ) -> Notifier {
        let mut configs: BTreeMap<String, ChannelConfig> = DEFAULT_CHANNELS
            .into_iter()
            .map(|(name, config)| (name.to_string(), config))
            .collect();
        configs.extend(configured.iter().map(|(k, v)| (k.clone(), v.clone())));
        let channels = configs
            .into_iter()
            .map(|(name, config)| {
                let sink = sinks::Sink::build(&config, console).map_err(|e| format!("{e:#}"));
                let channel = Channel {
                    name: name.clone(),
                    config,
                    sink,
                    wake: Arc::new(Notify::new()),
                };
                (name, Arc::new(channel))
            })
            .collect();
        Notifier {
            channels,
            store,
            console,
            shutdown: watch::channel(false).0,
            workers: Mutex::new(Vec::new()),
        }
    }

    pub fn names(&self) -> Vec<&str> {
        self.channels.keys().map(String::as_str).collect()
    }

    pub fn channel_config(&self, channel: &str) -> Option<ChannelConfig> {
        self.channels.get(channel).map(|c| c.config.clone())
    }

    pub fn kind_of(&self, channel: &str) -> Option<&'static str> {
        self.channels.get(channel).map(|c| c.config.kind())
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Channels whose sink could not be built (missing secret, bad URL), with the reason.
    pub fn problems(&self) -> Vec<(String, String)> {
        self.channels
            .values()
            .filter_map(|c| c.sink.as_ref().err().map(|e| (c.name.clone(), e.clone())))
            .collect()
    }

    /// Writes the message to the outbox, then delivers it: console kinds at once, network
    /// kinds by their channel's worker.
    pub async fn submit(
        &self,
        channel: &str,
        notification: &Notification,
    ) -> Result<Submitted, SubmitError> {
        self.submit_once(channel, notification, None).await
    }

    /// `submit`, queued at most once per `once_key` whichever process queues it.
    pub async fn submit_once(
        &self,
        channel: &str,
        notification: &Notification,
        once_key: Option<String>,
    ) -> Result<Submitted, SubmitError> {
        let Some(ch) = self.channels.get(channel) else {
            return Err(SubmitError::NoChannel(format!(
                "no channel named {channel:?} is configured (configured: {})",
                self.names().join(", ")
            )));
        };
        let payload = serde_json::to_value(notification).expect("notification serializes");
        let message = NewMessage {
            run_id: Some(notification.run_id.clone()),
            channel: channel.to_string(),
            kind: ch.config.kind().to_string(),
            payload,
            dedup_key: Some(notification.dedup_key.clone()),
            event_action: Some(notification.event_action.clone()),
            created_at: notification.created_at.clone(),
        };
        let stored = |e: anyhow::Error| SubmitError::Store(format!("writing to the outbox: {e:#}"));
        let (outbox_id, state) = match &ch.sink {
            Ok(sink) if sink.is_local() => {
                // Held from the insert, so no worker sends it while we do; if this process
                // dies before marking it, a worker retries it once the hold ends.
                let (id, new) = self
                    .store
                    .enqueue_held(message, once_key, worker::LOCAL_HOLD)
                    .await
                    .map_err(stored)?;
                if !new {
                    // Queued before (another process, an earlier sweep): its own delivery
                    // or a worker sees to it; a second append would be a repeat.
                    ch.wake.notify_one();
                    (id, "queued")
                } else {
                    let attempt = sink.deliver_local(channel, notification);
                    worker::record_local(&*self.store, id, &ch.config, &attempt).await;
                    match attempt {
                        Attempt::Delivered => (id, "delivered"),
                        Attempt::Retry { .. } => (id, "queued"),
                        Attempt::Failed(_) => (id, "failed"),
                    }
                }
            }
            _ => {
                let id = self
                    .store
                    .enqueue(message, once_key)
                    .await
                    .map_err(stored)?;
                ch.wake.notify_one();
                (id, "queued")
            }
        };
        Ok(Submitted {
            outbox_id,
            state: state.to_string(),
        })
    }

    /// Starts one delivery worker per network or file channel (idempotent). They also pick up
    /// what an earlier host left pending: a file append its process died before marking is
    /// retried like a webhook (the line carries `dedup_key`, so a reader drops a repeat).
    pub fn start(self: &Arc<Self>) {
        let mut workers = self.workers.lock().unwrap();
        if !workers.is_empty() {
            return;
        }
        for channel in self.channels.values() {
            let Ok(sink) = &channel.sink else { continue };
            if !sink.has_worker() {
                continue;
            }
            workers.push(tokio::spawn(worker::run(
                channel.clone(),
                self.store.clone(),
                self.shutdown.subscribe(),
            )));
        }
    }

    /// Stops claiming new messages and lets in-flight attempts finish within `grace`.
    pub async fn stop(&self, grace: Duration) {
        let _ = self.shutdown.send(true);
        for channel in self.channels.values() {
            channel.wake.notify_one();
        }
        let workers: Vec<_> = std::mem::take(&mut *self.workers.lock().unwrap());
        let all = futures::future::join_all(workers);
        let _ = tokio::time::timeout(grace, all).await;
    }

    /// Waits until none of the run's messages is pending, or `wait` has passed.
    pub async fn wait_for_run(&self, run_id: &str, wait: Duration) -> Result<Vec<OutboxRow>> {
        self.wait_until(wait, || self.store.outbox_for_run(run_id))
            .await
    }

    /// Waits until nothing in the outbox is pending on a channel that can deliver.
    pub async fn wait_for_all(&self, wait: Duration) -> Result<Vec<(String, i64)>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let pending: Vec<(String, i64)> = self
                .store
                .outbox_pending()
                .await?
                .into_iter()
                .filter(|(channel, _)| self.channels.get(channel).is_some_and(|c| c.sink.is_ok()))
                .collect();
            if pending.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(pending);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_until<F: Future<Output = Result<Vec<OutboxRow>>>>(
        &self,
        wait: Duration,
        rows: impl Fn() -> F,
    ) -> Result<Vec<OutboxRow>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let current = rows().await?;
            // A message on a channel that cannot deliver (missing secret) stays pending until
            // the operator fixes it; waiting for it would only delay the exit.
            let waiting = |r: &OutboxRow| {
                r.state == "pending"
                    && self
                        .channels
                        .get(&r.channel)
                        .is_some_and(|c| c.sink.is_ok())
            };
            if !current.iter().any(waiting) || tokio::time::Instant::now() >= deadline {
                return Ok(current);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Queues a test message to `channel`; returns its outbox id.
    pub async fn send_test(&self, channel: &str) -> Result<i64> {
        if let Some(problem) = self.problem(channel) {
            anyhow::bail!("channel {channel} cannot deliver: {problem}");
        }
        let notification = Notification::new(
            Message {
                title: "Test notification from runbook-host".into(),
                body: format!("If you can read this, channel `{channel}` works."),
                severity: "info".into(),
                fields: vec![
                    ("channel".into(), channel.to_string()),
                    (
                        "kind".into(),
                        self.kind_of(channel).unwrap_or("?").to_string(),
                    ),
                ],
            },
            "notify-test",
            &format!("notify-test-{}", now_ms()),
            None,
        );
        let submitted = self
            .submit(channel, &notification)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(submitted.outbox_id)
    }

    /// Why `channel` cannot deliver, if it cannot.
    pub fn problem(&self, channel: &str) -> Option<String> {
        self.channels
            .get(channel)
            .and_then(|c| c.sink.as_ref().err().cloned())
    }

    pub async fn wait_for_message(&self, id: i64, wait: Duration) -> Result<OutboxRow> {
        let rows = self
            .wait_until(wait, || async move {
                Ok(self.store.outbox_row(id).await?.into_iter().collect())
            })
            .await?;
        rows.into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("outbox message {id} vanished"))
    }

    /// An alert resolved: every PagerDuty channel whose last message for it was a trigger
    /// gets a resolve with the same dedup key, closing the incident it opened.
    ///
    /// Queued once per channel and firing (the alert's start time is in its fingerprint's
    /// episode key), so the same resolve delivered to several replicas resolves once.
    pub async fn resolve_incident(&self, alert: &AlertRef) -> Result<Vec<i64>> {
        let dedup_key = format!("runbook-{}", alert.fingerprint);
        let mut queued = Vec::new();
        for channel in self.channels.values() {
            if channel.config.kind() != "pagerduty" {
                continue;
            }
            let Some(last) = self
                .store
                .last_for_dedup_key(&channel.name, &dedup_key)
                .await?
            else {
                continue;
            };
            if last.event_action.as_deref() != Some("trigger") {
                continue;
            }
            let previous: Notification = serde_json::from_str(&last.payload)?;
            let notification = Notification {
                title: format!("Resolved: {}", alert.name),
                body: format!("The alert {} resolved.", alert.name),
                severity: "info".into(),
                fields: Vec::new(),
                alert: Some(alert.clone()),
                event_action: "resolve".into(),
                created_at: now_rfc3339(),
                ..previous
            };
            // Once per trigger it answers: the trigger's outbox row is unique.
            let once = format!("resolve:{}", last.id);
            let submitted = self
                .submit_once(&channel.name, &notification, Some(once))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            queued.push(submitted.outbox_id);
        }
        Ok(queued)
    }

    pub fn console(&self) -> ConsoleStream {
        self.console
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("{0}")]
    NoChannel(String),
    #[error("{0}")]
    Store(String),
}

pub use crate::records::{now_ms, now_rfc3339};

pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}
