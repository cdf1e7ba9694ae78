//! `[approvers.<group>]`: who may answer a group's questions, through which channels, and how
//! long a question waits; and who an answer comes from (`Approver`, the identity the carrying
//! channel vouches for). Checked when host.toml is read and at every answer.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use serde::Deserialize;

use crate::notify::ChannelConfig;
use crate::records::ApprovalRecord;

/// `[approvers.<group>]` in host.toml.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ApproverGroup {
    /// Notification channels (`[notify.<name>]`) the question is posted to. Telegram and
    /// Slack channels get Approve/Reject buttons; any other kind gets the question as text
    /// with the `host approve` command.
    #[serde(default)]
    pub channels: Vec<String>,
    /// People who answer in the console (its `[ui]` basic-auth user name, or the `sub` of an
    /// OpenID Connect sign-in) or with `host approve` (their login name).
    #[serde(default)]
    pub users: Vec<String>,
    /// Identity-provider groups whose members answer in the console (signed in through
    /// `[ui.oidc]`, the groups as its groups claim gives them).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Telegram user ids (numbers, as the Bot API gives `from.id`).
    #[serde(default)]
    pub telegram: Vec<i64>,
    /// Slack user ids (`U024BE7LH`).
    #[serde(default)]
    pub slack: Vec<String>,
    /// The longest a question to this group may wait, whatever the playbook asks.
    #[serde(default = "default_max_wait_secs")]
    pub max_wait_secs: u64,
}

fn default_max_wait_secs() -> u64 {
    3600
}

/// Someone answering, as the channel that carried the answer vouches for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approver {
    /// `channels`: the `[notify]` channels of the bot that received the press (every channel
    /// configured with that bot).
    Telegram {
        id: i64,
        username: Option<String>,
        channels: Vec<String>,
    },
    /// `channels`: the `[notify]` channels whose signing secret verified the click.
    Slack {
        id: String,
        name: Option<String>,
        channels: Vec<String>,
    },
    /// Signed in to the console: the `[ui]` user or the provider's subject, and the groups
    /// the provider vouched for (none with basic auth or a token).
    Console {
        user: String,
        groups: Vec<String>,
    },
    Cli(String),
}

impl Approver {
    /// `telegram`, `slack`, `console` or `cli`.
    pub fn via(&self) -> &'static str {
        match self {
            Approver::Telegram { .. } => "telegram",
            Approver::Slack { .. } => "slack",
            Approver::Console { .. } => "console",
            Approver::Cli(_) => "cli",
        }
    }

    /// As the record and the report name them: `telegram:12345 (@alice)`, `cli:bob`.
    pub fn name(&self) -> String {
        let clean = |s: &str| crate::text::echo(&without_controls(s, false)).into_owned();
        match self {
            Approver::Telegram { id, username, .. } => match username {
                Some(u) => format!("telegram:{id} (@{})", clean(u)),
                None => format!("telegram:{id}"),
            },
            Approver::Slack { id, name, .. } => match name {
                Some(n) => format!("slack:{} ({})", clean(id), clean(n)),
                None => format!("slack:{}", clean(id)),
            },
            Approver::Console { user, .. } => format!("console:{}", clean(user)),
            Approver::Cli(user) => format!("cli:{}", clean(user)),
        }
    }

    /// The chat channels that vouched for this answer; `None` for the console and the CLI,
    /// whose authority is their own (the `[ui]` credentials, a login with the store).
    pub(super) fn channels(&self) -> Option<&[String]> {
        match self {
            Approver::Telegram { channels, .. } | Approver::Slack { channels, .. } => {
                Some(channels)
            }
            Approver::Console { .. } | Approver::Cli(_) => None,
        }
    }
}

/// Control characters out of text people and playbooks hand over (it reaches terminals, chat
/// and logs); with `keep_lines`, newlines stay.
pub fn without_controls(text: &str, keep_lines: bool) -> String {
    text.chars()
        .filter(|c| !c.is_control() || (keep_lines && *c == '\n'))
        .collect()
}

impl ApproverGroup {
    pub fn allows(&self, who: &Approver) -> bool {
        match who {
            Approver::Telegram { id, .. } => self.telegram.contains(id),
            Approver::Slack { id, .. } => self.slack.iter().any(|s| s == id),
            Approver::Console { user, groups } => {
                self.users.iter().any(|u| u == user)
                    || groups.iter().any(|g| self.groups.contains(g))
            }
            Approver::Cli(user) => self.users.iter().any(|u| u == user),
        }
    }

    pub fn max_wait(&self) -> Duration {
        Duration::from_secs(self.max_wait_secs.max(1))
    }

    /// Whether `who`'s answer came through a channel that carried `record`'s question and is
    /// one of this group's: a chat app or bot that never posted it (or posted it for another
    /// group) vouches for nobody here. The console and the CLI carry no channel.
    pub fn carried(&self, record: &ApprovalRecord, who: &Approver) -> bool {
        let Some(vouching) = who.channels() else {
            return true;
        };
        record.messages.iter().any(|posted| {
            posted["channel"].as_str().is_some_and(|channel| {
                posted["kind"].as_str() == Some(who.via())
                    && vouching.iter().any(|c| c == channel)
                    && self.channels.iter().any(|c| c == channel)
            })
        })
    }
}

/// Checks `[approvers]` against the channels (called when the config is read).
pub fn check_groups(
    groups: &BTreeMap<String, ApproverGroup>,
    channels: &BTreeMap<String, ChannelConfig>,
) -> Result<()> {
    for (name, group) in groups {
        for channel in &group.channels {
            let default = matches!(channel.as_str(), "stdout" | "ops" | "security");
            anyhow::ensure!(
                default || channels.contains_key(channel),
                "[approvers.{name}]: channel {channel:?} is not a [notify.<name>] channel"
            );
        }
        anyhow::ensure!(
            !(group.users.is_empty()
                && group.groups.is_empty()
                && group.telegram.is_empty()
                && group.slack.is_empty()),
            "[approvers.{name}]: nobody may answer; list `users`, `groups`, `telegram` or \
             `slack` ids"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group() -> ApproverGroup {
        ApproverGroup {
            channels: vec!["tg".into()],
            users: vec!["alice".into()],
            groups: vec!["db-oncall".into()],
            telegram: vec![111],
            slack: vec!["U111".into()],
            max_wait_secs: 60,
        }
    }

    fn telegram(id: i64, username: Option<&str>) -> Approver {
        Approver::Telegram {
            id,
            username: username.map(String::from),
            channels: vec!["tg".into()],
        }
    }

    fn slack(id: &str, name: Option<&str>, channels: &[&str]) -> Approver {
        Approver::Slack {
            id: id.into(),
            name: name.map(String::from),
            channels: channels.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn console(user: &str, groups: &[&str]) -> Approver {
        Approver::Console {
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn an_identity_provider_group_answers_its_own_questions_only() {
        let g = group();
        assert!(g.allows(&console("zoe", &["db-oncall"])));
        assert!(g.allows(&console("zoe", &["web", "db-oncall"])));
        assert!(!g.allows(&console("zoe", &["web-oncall"])));
        assert!(!g.allows(&console("zoe", &[])));
        // A group name is not a user name, nor a user name a group.
        assert!(!g.allows(&console("db-oncall", &[])));
        assert!(!g.allows(&console("zoe", &["alice"])));
        // Groups come from a sign-in only: the CLI's login name is never a group.
        assert!(!g.allows(&Approver::Cli("db-oncall".into())));
    }

    #[test]
    fn only_listed_identities_of_the_answering_channel_may_answer() {
        let g = group();
        assert!(g.allows(&telegram(111, Some("mallory"))));
        assert!(!g.allows(&telegram(222, Some("alice"))));
        assert!(g.allows(&slack("U111", None, &["slack"])));
        assert!(!g.allows(&slack("U222", Some("U111"), &["slack"])));
        assert!(g.allows(&Approver::Cli("alice".into())));
        assert!(g.allows(&console("alice", &[])));
        // An id of one channel is not a name on another.
        assert!(!g.allows(&Approver::Cli("111".into())));
        assert!(!g.allows(&console("U111", &[])));
    }

    #[test]
    fn a_chat_answer_counts_only_through_a_channel_that_carried_the_question() {
        let g = ApproverGroup {
            channels: vec!["tg".into(), "slack".into()],
            ..group()
        };
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
                serde_json::json!({"channel": "tg", "kind": "telegram", "chat_id": "-1", "message_id": 7}),
                serde_json::json!({"channel": "slack", "kind": "slack"}),
                serde_json::json!({"channel": "mail", "kind": "outbox", "outbox_id": 3}),
            ],
        };
        // Positive controls: the channels that posted it, of the group.
        assert!(g.carried(&record, &telegram(111, None)));
        assert!(g.carried(&record, &slack("U111", None, &["slack"])));
        assert!(g.carried(&record, &slack("U111", None, &["other-app", "slack"])));
        // Another Slack app, another bot, or no channel at all vouches for nothing here.
        assert!(!g.carried(&record, &slack("U111", None, &["other-app"])));
        assert!(!g.carried(&record, &slack("U111", None, &[])));
        let other_bot = Approver::Telegram {
            id: 111,
            username: None,
            channels: vec!["tg-b".into()],
        };
        assert!(!g.carried(&record, &other_bot));
        // A channel name of the other kind is not a carrier: a Slack signer named like the bot.
        assert!(!g.carried(&record, &slack("U111", None, &["tg"])));
        // Posted there but no longer a channel of the group (reloaded): refused.
        let moved = ApproverGroup {
            channels: vec!["tg".into()],
            ..group()
        };
        assert!(!moved.carried(&record, &slack("U111", None, &["slack"])));
        assert!(moved.carried(&record, &telegram(111, None)));
        // The console and the CLI carry no channel: their own auth vouches.
        assert!(g.carried(&record, &console("alice", &[])));
        assert!(g.carried(&record, &Approver::Cli("alice".into())));
    }

    #[test]
    fn names_carry_no_control_characters() {
        let who = telegram(5, Some("eve\u{1b}[2J\nroot"));
        assert_eq!(who.name(), "telegram:5 (@eve[2Jroot)");
        assert_eq!(Approver::Cli("bob".into()).name(), "cli:bob");
    }

    #[test]
    fn groups_must_name_known_channels_and_someone_to_answer() {
        let mut channels = BTreeMap::new();
        channels.insert(
            "tg".to_string(),
            ChannelConfig::File {
                path: "/tmp/x".into(),
            },
        );
        let mut groups = BTreeMap::new();
        groups.insert("oncall".to_string(), group());
        assert!(check_groups(&groups, &channels).is_ok());
        groups.get_mut("oncall").unwrap().channels = vec!["nope".into()];
        let e = check_groups(&groups, &channels).unwrap_err().to_string();
        assert!(
            e.contains("\"nope\" is not a [notify.<name>] channel"),
            "{e}"
        );
        let nobody = ApproverGroup {
            users: vec![],
            groups: vec![],
            telegram: vec![],
            slack: vec![],
            channels: vec!["ops".into()],
            ..group()
        };
        groups.insert("oncall".to_string(), nobody);
        let e = check_groups(&groups, &channels).unwrap_err().to_string();
        assert!(e.contains("nobody may answer"), "{e}");
    }
}
