//! Who may do what: roles, the identity a request or a command acts as, API tokens as the
//! store keeps them (a hash, never the token), and audit events. Plain data: the server
//! decides who a caller is, the store keeps tokens and events, this says what they mean.
//!
//! Roles are not a ladder: `operator` (start and cancel runs, flush the outbox) and `approver`
//! (answer questions) are beside each other, both above `viewer`, both below `admin`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One role; a caller holds a set of them ([`Roles`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Reads runs, alerts, reports, approvals and the outbox.
    Viewer,
    /// A viewer who also starts and cancels runs and flushes (retries) the outbox.
    Operator,
    /// A viewer who also answers the questions of the approver groups they belong to.
    Approver,
    /// Everything: config-derived pages (safety, maintenance), freeze, breakers, the audit.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Operator, Role::Approver, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    /// Whether holding `self` grants what `needed` allows.
    pub fn covers(self, needed: Role) -> bool {
        match (self, needed) {
            (Role::Admin, _) => true,
            (_, Role::Viewer) => true,
            (held, needed) => held == needed,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "{:?} is not a role (viewer, operator, approver, admin)",
                    crate::text::echo(s)
                )
            })
    }
}

/// The roles a caller holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Roles(u8);

impl Roles {
    pub fn none() -> Roles {
        Roles(0)
    }

    pub fn of(roles: impl IntoIterator<Item = Role>) -> Roles {
        Roles(roles.into_iter().fold(0, |bits, r| bits | 1 << r as u8))
    }

    pub fn contains(self, role: Role) -> bool {
        self.0 & (1 << role as u8) != 0
    }

    /// Whether any role held covers `needed`.
    pub fn allow(self, needed: Role) -> bool {
        self.iter().any(|r| r.covers(needed))
    }

    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.contains(*r))
    }

    /// At most `ceiling`: the roles held that `ceiling` covers (a token's role bounds what its
    /// holder's groups would give).
    pub fn capped(self, ceiling: Role) -> Roles {
        Roles::of(self.iter().filter(|r| ceiling.covers(*r)))
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Role::as_str).collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join("+"))
        }
    }
}

/// How an identity was proven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// `[ui]` basic auth or a `[[ui.users]]` entry.
    Basic,
    /// The static bearer token of `[ui]` or `[webhooks.api]`.
    StaticToken,
    /// An API token from the store (`host tokens create`): its id.
    ApiToken(String),
    /// No auth configured (`kind = "none"`): anyone who can reach the port.
    Open,
    /// A local command with access to the store (which is admin).
    Cli,
    /// A Slack click whose signature a channel's signing secret verified.
    SlackSignature,
    /// A Telegram press delivered to the channel's bot.
    TelegramBot,
    /// A console session from an OpenID Connect sign-in (`[ui.oidc]`): the provider's issuer
    /// vouched for the subject and its groups.
    Session,
}

impl fmt::Display for Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Proof::Basic => f.write_str("basic"),
            Proof::StaticToken => f.write_str("static-token"),
            Proof::ApiToken(id) => write!(f, "token:{id}"),
            Proof::Open => f.write_str("open"),
            Proof::Cli => f.write_str("cli"),
            Proof::SlackSignature => f.write_str("slack-signature"),
            Proof::TelegramBot => f.write_str("telegram-bot"),
            Proof::Session => f.write_str("oidc"),
        }
    }
}

/// Who is acting: a subject, the groups it is in (what `[roles]` and `[approvers.X]` map),
/// the roles that gives, and how it was proven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub groups: Vec<String>,
    pub roles: Roles,
    pub proof: Proof,
}

impl Identity {
    /// The name runs and approvals record (`cancelled by …`).
    pub fn actor(&self) -> String {
        match &self.proof {
            Proof::ApiToken(_) => format!("token:{}", self.subject),
            Proof::Cli => format!("cli:{}", self.subject),
            _ => self.subject.clone(),
        }
    }
}

/// What an API token looks like on the wire: the prefix tells scanners and people what it is.
pub const TOKEN_PREFIX: &str = "rbk_";

/// The hash an API token is stored and looked up under (hex SHA-256 of the whole token).
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A token from 32 random bytes: `rbk_` and 64 hex digits.
pub fn token_from(random: [u8; 32]) -> String {
    format!("{TOKEN_PREFIX}{}", hex::encode(random))
}

/// Whether `text` has the shape of a token [`token_from`] makes: only such a text is looked up
/// in the store (anything else a caller sends costs no query).
pub fn is_token_shaped(text: &str) -> bool {
    text.strip_prefix(TOKEN_PREFIX).is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// A token to store: its hash and what it allows.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub hash: String,
    pub name: String,
    pub role: Role,
    pub created_by: String,
    pub expires_in: Option<std::time::Duration>,
}

/// A stored API token (never the token itself).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_by: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub revoked_by: Option<String>,
    /// Past its expiry on the store's clock when read.
    pub expired: bool,
}

impl TokenRecord {
    pub fn usable(&self) -> bool {
        !self.expired && self.revoked_at.is_none()
    }
}

/// A console session to store (an OpenID Connect sign-in): the hash of its random id (the
/// browser's cookie; [`token_hash`]), never the id, and who signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub hash: String,
    /// The provider's `sub` claim.
    pub subject: String,
    /// What records name the person by (`preferred_username`, else `sub`).
    pub name: String,
    /// The groups claim as the provider gave it (capped): `[roles]` and `[approvers.X]`
    /// groups map it when the session is used, so a reload applies to live sessions.
    pub groups: Vec<String>,
    pub ttl: std::time::Duration,
}

/// A live session as the store gives it back (expired ones are not given back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub subject: String,
    pub name: String,
    pub groups: Vec<String>,
    pub expires_at: String,
}

/// A sign-in on its way through the provider, stored under the hash of its `state`: what the
/// callback checks the answer against. Taken once: a second callback with the same state finds
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogin {
    pub state_hash: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// The console path to return to (checked to be one of ours before it is stored).
    pub return_to: String,
    pub ttl: std::time::Duration,
}

/// What [`PendingLogin`] gives back to its callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedLogin {
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_to: String,
}

/// Most groups a session keeps, and the longest group name (an IdP's claim is untrusted
/// size-wise: it lands in the store and in every request's identity).
pub const MAX_SESSION_GROUPS: usize = 256;
pub const MAX_GROUP_NAME: usize = 256;

/// Every state-changing act the audit trail records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditAct {
    Login,
    /// The identity provider vouched for the person, and the console still refused them (no
    /// group gives a role). Refusals without a verified identity are only logged.
    LoginRefused,
    Logout,
    RunStarted,
    RunCancelled,
    ApprovalAnswered,
    OutboxRetried,
    Freeze,
    Unfreeze,
    BreakerReset,
    MaintenanceStarted,
    MaintenanceEnded,
    TokenCreated,
    TokenRevoked,
    ConfigReloaded,
}

impl AuditAct {
    pub const ALL: [AuditAct; 15] = [
        AuditAct::Login,
        AuditAct::LoginRefused,
        AuditAct::Logout,
        AuditAct::RunStarted,
        AuditAct::RunCancelled,
        AuditAct::ApprovalAnswered,
        AuditAct::OutboxRetried,
        AuditAct::Freeze,
        AuditAct::Unfreeze,
        AuditAct::BreakerReset,
        AuditAct::MaintenanceStarted,
        AuditAct::MaintenanceEnded,
        AuditAct::TokenCreated,
        AuditAct::TokenRevoked,
        AuditAct::ConfigReloaded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAct::Login => "login",
            AuditAct::LoginRefused => "login-refused",
            AuditAct::Logout => "logout",
            AuditAct::RunStarted => "run-started",
            AuditAct::RunCancelled => "run-cancelled",
            AuditAct::ApprovalAnswered => "approval-answered",
            AuditAct::OutboxRetried => "outbox-retried",
            AuditAct::Freeze => "freeze",
            AuditAct::Unfreeze => "unfreeze",
            AuditAct::BreakerReset => "breaker-reset",
            AuditAct::MaintenanceStarted => "maintenance-started",
            AuditAct::MaintenanceEnded => "maintenance-ended",
            AuditAct::TokenCreated => "token-created",
            AuditAct::TokenRevoked => "token-revoked",
            AuditAct::ConfigReloaded => "config-reloaded",
        }
    }
}

impl fmt::Display for AuditAct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditAct {
    type Err = String;

    fn from_str(s: &str) -> Result<AuditAct, String> {
        AuditAct::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("{:?} is not an audit act", crate::text::echo(s)))
    }
}

/// Longest text kept in an audit field: events carry untrusted strings (a run id from a URL,
/// a reason typed in a form).
pub const MAX_AUDIT_TEXT: usize = 512;

/// An act to record. `source` is where it came from (the peer address, `cli@host`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAudit {
    pub act: AuditAct,
    pub actor: String,
    pub proof: String,
    pub source: String,
    /// What it was done to (a run id, a token id, a playbook), if anything.
    pub target: Option<String>,
    pub detail: Option<String>,
}

impl NewAudit {
    pub fn by(identity: &Identity, source: &str, act: AuditAct) -> NewAudit {
        NewAudit {
            act,
            actor: identity.actor(),
            proof: identity.proof.to_string(),
            source: source.to_string(),
            target: None,
            detail: None,
        }
    }

    pub fn target(mut self, target: impl Into<String>) -> NewAudit {
        self.target = Some(target.into());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> NewAudit {
        self.detail = Some(detail.into());
        self
    }

    /// Every field cut to [`MAX_AUDIT_TEXT`] bytes (at a character boundary).
    pub fn capped(mut self) -> NewAudit {
        for text in [&mut self.actor, &mut self.proof, &mut self.source]
            .into_iter()
            .chain(self.target.as_mut())
            .chain(self.detail.as_mut())
        {
            if text.len() > MAX_AUDIT_TEXT {
                let mut end = MAX_AUDIT_TEXT;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.truncate(end);
            }
        }
        self
    }
}

/// A recorded act.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: i64,
    pub at: String,
    pub act: AuditAct,
    pub actor: String,
    pub proof: String,
    pub source: String,
    pub target: Option<String>,
    pub detail: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_covers_all_and_operator_and_approver_are_beside_each_other() {
        assert!(Role::ALL.iter().all(|r| Role::Admin.covers(*r)));
        assert!(Role::ALL.iter().all(|r| r.covers(Role::Viewer)));
        assert!(!Role::Operator.covers(Role::Approver));
        assert!(!Role::Approver.covers(Role::Operator));
        assert!(!Role::Viewer.covers(Role::Operator));
        assert!(!Role::Operator.covers(Role::Admin));
        let both = Roles::of([Role::Operator, Role::Approver]);
        assert!(both.allow(Role::Approver) && both.allow(Role::Operator));
        assert!(!both.allow(Role::Admin));
        assert!(!Roles::none().allow(Role::Viewer));
    }

    #[test]
    fn a_ceiling_keeps_only_what_it_covers() {
        let all = Roles::of(Role::ALL);
        assert_eq!(all.capped(Role::Viewer), Roles::of([Role::Viewer]));
        assert_eq!(
            all.capped(Role::Operator),
            Roles::of([Role::Viewer, Role::Operator])
        );
        assert_eq!(all.capped(Role::Admin), all);
    }

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        for a in AuditAct::ALL {
            assert_eq!(a.as_str().parse::<AuditAct>(), Ok(a));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn tokens_are_hashed_and_long_fields_capped() {
        let token = token_from([7; 32]);
        assert!(token.starts_with(TOKEN_PREFIX) && token.len() == 68);
        assert!(is_token_shaped(&token));
        for junk in [
            "rbk_",
            "rbk_00",
            &format!("{token}0"),
            &token.to_uppercase(),
            &token.replace("rbk_", "rbx_"),
        ] {
            assert!(!is_token_shaped(junk), "{junk}");
        }
        assert_eq!(token_hash(&token).len(), 64);
        assert_ne!(token_hash(&token), token_hash(&token_from([8; 32])));
        let long = NewAudit {
            act: AuditAct::Freeze,
            actor: "é".repeat(400),
            proof: "cli".into(),
            source: "x".into(),
            target: None,
            detail: Some("y".repeat(2000)),
        }
        .capped();
        assert!(long.actor.len() <= MAX_AUDIT_TEXT && long.actor.starts_with('é'));
        assert_eq!(long.detail.unwrap().len(), MAX_AUDIT_TEXT);
    }
}
