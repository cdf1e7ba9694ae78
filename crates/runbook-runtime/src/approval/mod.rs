//! Approval gates: a playbook asks a named group of people (`approval.ask`) and waits for
//! the first valid answer. The question is a row in the store (`ApprovalRecord`), so any
//! process can record the answer: `host approve` at a terminal, the console, the Telegram
//! poller, the Slack interactive endpoint. The asking run learns it from this process
//! (woken at once) or by reading the store (another process, every second).
//!
//! Who may answer is the operator's `[approvers.<group>]`, checked on the identity the
//! channel vouches for (a Telegram user id from the Bot API, a Slack user id from a signed
//! payload, the console's authenticated user, the login name at the CLI), never on a name
//! a message carries. A chat answer also counts only through the channel that carried the
//! question: the `[notify]` channel whose credential vouched for the answer (the Slack
//! signing secret that verified the click, the Telegram bot that received the press) must be
//! one the question was posted to and one of the group's.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Result;

use tokio::sync::Notify;

use crate::notify::{ChannelConfig, Notifier};
use crate::records::{ApprovalRecord, Decision, rfc3339};
use crate::store::Store;
use runbook_core::access::{AuditAct, NewAudit, Proof};

pub mod cli;
mod group;
pub mod slack;
pub mod telegram;
mod text;

pub use group::{Approver, ApproverGroup, check_groups, without_controls};
pub use text::{decision_line, question_text};

/// What `answer` did.
#[derive(Debug)]
pub enum Answered {
    /// This answer decided it.
    Recorded(ApprovalRecord),
    /// Already decided (by someone else, the timeout, or the run's end): nothing changed.
    Closed(ApprovalRecord),
    /// The person is not on the group's list: nothing changed.
    NotAllowed(String),
    NotFound,
}

/// The approvals of one process: the groups, where questions go, and the runs waiting here.
pub struct Approvals {
    store: Arc<Store>,
    notifier: Arc<Notifier>,
    groups: RwLock<Arc<BTreeMap<String, ApproverGroup>>>,
    client: reqwest::Client,
    /// Runs of this process waiting on an approval, by approval id: an answer recorded here
    /// wakes them at once (answers from other processes are read from the store).
    waiting: Mutex<HashMap<String, Arc<Notify>>>,
    telegram: telegram::Pollers,
    /// `host serve`: answers are taken in whenever they come, not only while a run waits.
    listening: std::sync::atomic::AtomicBool,
    /// Chat presses being handled here (recorded, not yet answered to the presser): a run
    /// woken by one lets it finish, so a `host run` that ends right after its answer does not
    /// exit before the presser's button is answered.
    pub(crate) handling: std::sync::atomic::AtomicUsize,
    /// Where chat answers are audited (`[audit]`, replaced on SIGHUP).
    audit: RwLock<Arc<crate::audit::AuditConfig>>,
}

/// Longest a woken run waits for the presses in hand to be answered.
const HANDLING_GRACE: Duration = Duration::from_secs(3);

/// How often a waiting run reads its approval from the store (an answer given to another
/// process: `host approve`, a replica's console).
const STORE_POLL: Duration = Duration::from_millis(500);

impl Approvals {
    pub fn new(
        store: Arc<Store>,
        notifier: Arc<Notifier>,
        groups: BTreeMap<String, ApproverGroup>,
    ) -> Arc<Approvals> {
        Arc::new(Approvals {
            store,
            notifier,
            groups: RwLock::new(Arc::new(groups)),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client builds"),
            waiting: Mutex::new(HashMap::new()),
            handling: std::sync::atomic::AtomicUsize::new(0),
            telegram: telegram::Pollers::default(),
            listening: std::sync::atomic::AtomicBool::new(false),
            audit: RwLock::default(),
        })
    }

    /// The `[audit]` section chat answers are recorded under.
    pub fn audit_to(&self, config: crate::audit::AuditConfig) {
        *self.audit.write().unwrap() = Arc::new(config);
    }

    /// A Slack click or Telegram press reaches no server door, so its answer is audited here;
    /// console, API and CLI answers are audited by whoever took them (they know the caller's
    /// proof and address).
    async fn audit_chat_answer(&self, record: &ApprovalRecord, who: &Approver) {
        let proof = match who {
            Approver::Slack { .. } => Proof::SlackSignature,
            Approver::Telegram { .. } => Proof::TelegramBot,
            Approver::Console { .. } | Approver::Cli(_) => return,
        };
        let event = NewAudit {
            act: AuditAct::ApprovalAnswered,
            actor: who.name(),
            proof: proof.to_string(),
            source: who.via().to_string(),
            target: Some(record.id.clone()),
            detail: Some(record.state.clone()),
        };
        let config = self.audit.read().unwrap().clone();
        let notifier = Some(&*self.notifier);
        if let Err(e) = crate::audit::record(&self.store, notifier, &config, event).await {
            tracing::warn!(approval = %record.id, "chat answer not audited: {e:#}");
        }
    }

    /// `host serve`: polls every Telegram channel of every group for answers from now on
    /// (a question asked by a run of another process, or before a restart, is answered
    /// here too).
    pub fn listen(self: &Arc<Self>) {
        self.listening
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let channels: std::collections::BTreeSet<String> = self
            .groups
            .read()
            .unwrap()
            .values()
            .flat_map(|g| g.channels.iter().cloned())
            .collect();
        for channel in channels {
            if let Some(ChannelConfig::Telegram {
                bot_token,
                base_url,
                ..
            }) = self.channel(&channel)
            {
                match bot_token.load() {
                    Ok(token) => self.telegram.ensure(
                        self,
                        &channel,
                        telegram::Api::new(&self.client, &base_url, &token),
                    ),
                    Err(e) => tracing::warn!(channel, "cannot poll Telegram for answers: {e:#}"),
                }
            }
        }
    }

    fn keep_polling(&self) -> bool {
        self.listening.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// SIGHUP: who may answer changes for every question from now on.
    pub fn reload(&self, groups: BTreeMap<String, ApproverGroup>) {
        *self.groups.write().unwrap() = Arc::new(groups);
    }

    pub fn group(&self, name: &str) -> Option<ApproverGroup> {
        self.groups.read().unwrap().get(name).cloned()
    }

    pub fn group_names(&self) -> Vec<String> {
        self.groups.read().unwrap().keys().cloned().collect()
    }

    fn channel(&self, name: &str) -> Option<ChannelConfig> {
        self.notifier.channel_config(name)
    }

    /// Records the question and posts it to the group's channels; returns the record (with
    /// where it was posted) and one line per channel that could not carry it.
    pub async fn open(
        self: &Arc<Self>,
        mut record: ApprovalRecord,
        group: &ApproverGroup,
    ) -> Result<(ApprovalRecord, Vec<String>)> {
        self.store.open_approval(record.clone()).await?;
        // Counted as waiting before it is posted: a Telegram poller started for it (or one
        // about to stop) sees a run waiting and keeps polling (`wait` takes the entry over).
        self.waiting
            .lock()
            .unwrap()
            .insert(record.id.clone(), Arc::new(Notify::new()));
        let mut problems = Vec::new();
        for channel in &group.channels {
            match self.post(channel, &record).await {
                Ok(posted) => record.messages.push(posted),
                Err(e) => problems.push(format!("{channel}: {e:#}")),
            }
        }
        let stored = if record.messages.is_empty() {
            Ok(())
        } else {
            self.store
                .set_approval_messages(&record.id, record.messages.clone())
                .await
        };
        if stored.is_err() || record.messages.is_empty() {
            // No wait follows for sure: `wait` registers again if it comes.
            self.waiting.lock().unwrap().remove(&record.id);
        }
        stored?;
        Ok((record, problems))
    }

    async fn post(
        self: &Arc<Self>,
        channel: &str,
        record: &ApprovalRecord,
    ) -> Result<serde_json::Value> {
        match self.channel(channel) {
            Some(ChannelConfig::Telegram {
                bot_token,
                chat_id,
                base_url,
                ..
            }) => {
                let api = telegram::Api::new(&self.client, &base_url, &bot_token.load()?);
                let message_id = api.post_question(&chat_id, record).await?;
                // Answers come back through getUpdates: this process polls while it waits.
                self.telegram.ensure(self, channel, api);
                Ok(serde_json::json!({
                    "channel": channel, "kind": "telegram",
                    "chat_id": chat_id, "message_id": message_id,
                }))
            }
            Some(ChannelConfig::Slack { webhook_url, .. }) => {
                self.post_slack(&webhook_url.load()?, record).await?;
                // Answers come back signed to `POST /hooks/slack/interactive` (`host serve`).
                Ok(serde_json::json!({ "channel": channel, "kind": "slack" }))
            }
            Some(_) => {
                // Any other kind: the question as text, through the outbox.
                let notification = crate::notify::Notification::new(
                    crate::notify::Message {
                        title: format!("Approval needed: {}", record.title),
                        body: question_text(record),
                        severity: "warning".into(),
                        fields: Vec::new(),
                    },
                    &record.playbook,
                    &record.run_id,
                    None,
                );
                let submitted = self
                    .notifier
                    .submit(channel, &notification)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                Ok(serde_json::json!({
                    "channel": channel, "kind": "outbox", "outbox_id": submitted.outbox_id,
                }))
            }
            None => anyhow::bail!("no channel named {channel:?} is configured"),
        }
    }

    /// Waits for the approval's end: an answer (from any process), or `until`, when it
    /// expires. Returns the decided record.
    pub async fn wait(
        self: &Arc<Self>,
        id: &str,
        until: tokio::time::Instant,
    ) -> Result<ApprovalRecord> {
        let wake = self
            .waiting
            .lock()
            .unwrap()
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone();
        let _forget = Forget(self, id);
        loop {
            if let Some(record) = self.store.approval(id).await?
                && record.state != "pending"
            {
                self.presses_answered().await;
                return Ok(record);
            }
            if tokio::time::Instant::now() >= until {
                let expired = Decision {
                    state: "expired",
                    by: None,
                    via: "timeout".into(),
                    reason: Some("nobody answered in time".into()),
                    at: rfc3339(SystemTime::now()),
                };
                if let Some(record) = self.store.decide_approval(id, expired).await? {
                    self.show_decision(&record).await;
                    return Ok(record);
                }
                continue; // an answer won the race: read it
            }
            let next = (tokio::time::Instant::now() + STORE_POLL).min(until);
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep_until(next) => {}
            }
        }
    }

    /// Waits (bounded) until no press handled here is still to be answered to its presser.
    async fn presses_answered(&self) {
        let until = tokio::time::Instant::now() + HANDLING_GRACE;
        while self.handling.load(std::sync::atomic::Ordering::SeqCst) > 0
            && tokio::time::Instant::now() < until
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// An answer from `who`, through whichever channel: checked against the group's list,
    /// then recorded if the approval is still pending; the posted messages are edited.
    pub async fn answer(
        &self,
        id: &str,
        who: &Approver,
        approve: bool,
        reason: Option<String>,
    ) -> Result<Answered> {
        let Some(record) = self.store.approval(id).await? else {
            return Ok(Answered::NotFound);
        };
        if record.state != "pending" {
            return Ok(Answered::Closed(record));
        }
        let group = self.group(&record.group);
        if !group.as_ref().is_some_and(|g| g.allows(who)) {
            tracing::warn!(
                approval = id,
                who = %who.name(),
                group = %record.group,
                "approval answer refused: not on the group's list"
            );
            return Ok(Answered::NotAllowed(format!(
                "{} is not on the approvers list of group {:?}",
                who.name(),
                record.group
            )));
        }
        if !group.is_some_and(|g| g.carried(&record, who)) {
            tracing::warn!(
                approval = id,
                who = %who.name(),
                group = %record.group,
                channels = ?who.channels().unwrap_or_default(),
                "approval answer refused: it came through a channel that did not carry the question"
            );
            return Ok(Answered::NotAllowed(format!(
                "this question was not posted to group {:?} through the {} channel that carried \
                 this answer",
                record.group,
                who.via()
            )));
        }
        let decision = Decision {
            state: if approve { "approved" } else { "rejected" },
            by: Some(who.name()),
            via: who.via().into(),
            reason: reason
                .map(|r| crate::text::truncate_owned(without_controls(&r, true), MAX_REASON_BYTES)),
            at: rfc3339(SystemTime::now()),
        };
        match self.store.decide_approval(id, decision).await? {
            Some(decided) => {
                if let Some(wake) = self.waiting.lock().unwrap().get(id) {
                    wake.notify_one();
                }
                self.audit_chat_answer(&decided, who).await;
                self.show_decision(&decided).await;
                Ok(Answered::Recorded(decided))
            }
            None => Ok(match self.store.approval(id).await? {
                Some(record) => Answered::Closed(record),
                None => Answered::NotFound,
            }),
        }
    }

    /// Edits every posted message to show how the approval ended (buttons removed); failures
    /// are logged, the decision stands.
    pub async fn show_decision(&self, record: &ApprovalRecord) {
        for posted in &record.messages {
            let channel = posted["channel"].as_str().unwrap_or_default();
            let result = match (posted["kind"].as_str(), self.channel(channel)) {
                (
                    Some("telegram"),
                    Some(ChannelConfig::Telegram {
                        bot_token,
                        base_url,
                        ..
                    }),
                ) => match bot_token.load() {
                    Ok(token) => {
                        telegram::Api::new(&self.client, &base_url, &token)
                            .show_decision(posted, record)
                            .await
                    }
                    Err(e) => Err(e),
                },
                // Slack: an incoming webhook cannot edit what it posted; only a click's
                // `response_url` can (`slack::Approvals::slack_click`), so an expired, lost
                // or elsewhere-answered question keeps its buttons there.
                _ => Ok(()),
            };
            if let Err(e) = result {
                tracing::warn!(approval = %record.id, channel, "editing the question's message: {e:#}");
            }
        }
    }

    /// The rescuer: questions whose run ended while they waited end `lost`, and their
    /// messages say so. Returns how many.
    pub async fn rescue(&self) -> Result<usize> {
        let lost = self
            .store
            .orphaned_approvals(&rfc3339(SystemTime::now()))
            .await?;
        for record in &lost {
            self.show_decision(record).await;
        }
        Ok(lost.len())
    }
}

/// Removes a run's waker when its wait ends, however it ends.
struct Forget<'a>(&'a Approvals, &'a str);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.waiting.lock().unwrap().remove(self.1);
    }
}

pub const MAX_REASON_BYTES: usize = 1024;

/// A new approval id: 16 random hex digits (it rides in Telegram's 64-byte callback data).
pub fn new_id() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_err()
    {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        bytes = (nanos ^ u64::from(std::process::id()).rotate_left(32)).to_le_bytes();
    }
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sixteen_hex_digits_and_differ() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
