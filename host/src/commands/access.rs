//! `host tokens` (API tokens for scripts and dashboards: created, listed, revoked) and
//! `host audit` (the audit trail). Both work on the run store, and whoever can open the store
//! is an admin: they can mint any token. Tokens are shown once; the store keeps their hash.

use std::io::Read;
use std::time::Duration;

use anstream::{eprintln, print, println};
use clap::{Args, Subcommand};

use super::{ConfigError, Context, EXIT_FAILED, Globals};
use crate::style;
use crate::text::escape;
use runbook_core::access::{
    AuditAct, AuditEvent, Identity, NewAudit, NewToken, Proof, Role, Roles, TokenRecord,
    token_from, token_hash,
};

/// Longest token name (it is shown in audit events and records).
const MAX_NAME: usize = 64;
/// Longest life a token may be given.
const MAX_EXPIRY: Duration = Duration::from_secs(366 * 24 * 3600);

#[derive(Args)]
#[command(
    after_help = "Examples:\n  host tokens create --name grafana --role viewer --expires 30d\n  host tokens create --name deploy-bot --role operator --expires 7d\n  host tokens list\n  host tokens revoke grafana\n\n\
A token is shown once, when created: keep it in your secret store. Send it as\n\
`Authorization: Bearer rbk_…` to the API and the console. Its role is its ceiling:\n\
viewer reads; operator also starts and cancels runs and retries messages; approver also\n\
answers questions of the approver groups whose `users` name the token; admin does all.\n\n\
Exit status: 0 done, 1 no such token, 2 bad name, role or expiry."
)]
pub struct TokensArgs {
    #[command(subcommand)]
    action: TokensAction,
}

#[derive(Subcommand)]
enum TokensAction {
    /// Create a token and print it (once)
    Create {
        /// What it is for (`grafana`); an approver group's `users` may name it
        #[arg(long)]
        name: String,
        /// viewer, operator, approver or admin
        #[arg(long)]
        role: String,
        /// How long it lives (`30d`, `12h`); at most a year
        #[arg(long, value_name = "DURATION")]
        expires: String,
        #[arg(long)]
        json: bool,
    },
    /// Every token (never the token itself): role, expiry, revoked or not
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id or name: refused from then on, by every replica
    Revoke { token: String },
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  host audit\n  host audit --since 24h\n  host audit --since 7d --json\n\n\
Every state-changing act (runs started or cancelled by a person, approvals, outbox retries,\n\
freeze, breakers, maintenance windows, tokens, config reloads): when, what, who, how the\n\
caller was proven, from where."
)]
pub struct AuditArgs {
    /// Only events of the last DURATION (`1h`, `7d`) [default: all]
    #[arg(long, value_name = "DURATION")]
    since: Option<String>,
    /// At most this many (the newest)
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    #[arg(long)]
    json: bool,
}

/// The person at this terminal: store access is admin.
fn cli_identity() -> Identity {
    Identity {
        subject: crate::approval::cli::login_name().replace(|c: char| c.is_control(), ""),
        groups: Vec::new(),
        roles: Roles::of([Role::Admin]),
        proof: Proof::Cli,
    }
}

/// Records an act of this command's user in the audit trail and ships it to `[audit] sinks`.
pub async fn record(ctx: &Context, act: AuditAct, target: Option<&str>, detail: Option<String>) {
    let Ok(store) = ctx.open_store().await else {
        return;
    };
    let source = format!("cli@{}", runbook_runtime::notify::hostname());
    let mut event = NewAudit::by(&cli_identity(), &source, act);
    event.target = target.map(String::from);
    event.detail = detail;
    let notifier = runbook_runtime::notify::Notifier::new(
        &ctx.host.config.notify,
        store.clone(),
        runbook_runtime::notify::ConsoleStream::Stderr,
    );
    let config = &ctx.host.config.audit;
    if let Err(e) = runbook_runtime::audit::record(&store, Some(&notifier), config, event).await {
        eprintln!("{} audit event not recorded: {e:#}", style::warning());
    }
}

fn parse_expiry(text: &str) -> Result<Duration, ConfigError> {
    let span = humantime::parse_duration(text)
        .map_err(|e| ConfigError(format!("--expires {:?}: {e}", crate::text::echo(text))))?;
    if span.is_zero() || span > MAX_EXPIRY {
        return Err(ConfigError(format!(
            "--expires {:?}: between a second and a year",
            crate::text::echo(text)
        )));
    }
    Ok(span)
}

fn check_name(name: &str) -> Result<(), ConfigError> {
    let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > MAX_NAME || !name.chars().all(fine) {
        return Err(ConfigError(format!(
            "--name {:?}: 1 to {MAX_NAME} letters, digits, '-', '_' or '.'",
            crate::text::echo(name)
        )));
    }
    Ok(())
}

fn random_bytes() -> anyhow::Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| anyhow::anyhow!("reading /dev/urandom for a token: {e}"))?;
    Ok(bytes)
}

impl TokensArgs {
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        match self.action {
            TokensAction::Create {
                name,
                role,
                expires,
                json,
            } => {
                // Everything checked before the store is opened: a bad command stores nothing.
                check_name(&name)?;
                let role: Role = role.parse().map_err(ConfigError)?;
                let expires_in = parse_expiry(&expires)?;
                let ctx = Context::load(globals)?;
                let store = ctx.open_store().await?;
                if store
                    .tokens()
                    .await?
                    .iter()
                    .any(|t| t.name == name && t.usable())
                {
                    return Err(ConfigError(format!(
                        "a usable token named {name} exists: revoke it first (host tokens revoke {name})"
                    ))
                    .into());
                }
                let token = token_from(random_bytes()?);
                let created = store
                    .token_create(NewToken {
                        hash: token_hash(&token),
                        name,
                        role,
                        created_by: cli_identity().actor(),
                        expires_in: Some(expires_in),
                    })
                    .await?;
                let detail = format!("{} {role}", created.name);
                record(
                    &ctx,
                    AuditAct::TokenCreated,
                    Some(&created.id),
                    Some(detail),
                )
                .await;
                if json {
                    let doc = serde_json::json!({ "token": token, "record": created });
                    println!("{}", crate::text::json_for_terminal(&doc)?);
                } else {
                    println!("{token}");
                    eprintln!(
                        "token {} ({}, role {role}, expires {}): shown once, keep it now",
                        created.id,
                        escape(&created.name),
                        created.expires_at.as_deref().unwrap_or("never")
                    );
                }
                Ok(0)
            }
            TokensAction::List { json } => {
                let ctx = Context::load(globals)?;
                let tokens = ctx.open_store().await?.tokens().await?;
                if json {
                    println!("{}", crate::text::json_for_terminal(&tokens)?);
                } else {
                    print!("{}", table(&tokens));
                }
                Ok(0)
            }
            TokensAction::Revoke { token } => {
                if token.len() > MAX_NAME + 8 || token.contains(char::is_control) {
                    return Err(ConfigError(format!(
                        "{:?}: not a token id or name (host tokens list)",
                        crate::text::echo(&token)
                    ))
                    .into());
                }
                let ctx = Context::load(globals)?;
                let store = ctx.open_store().await?;
                if store.token_revoke(&token, &cli_identity().actor()).await? {
                    record(&ctx, AuditAct::TokenRevoked, Some(&token), None).await;
                    println!("token {} revoked", escape(&token));
                    Ok(0)
                } else {
                    eprintln!(
                        "{} no usable token {} (host tokens list)",
                        style::error(),
                        escape(&token)
                    );
                    Ok(EXIT_FAILED)
                }
            }
        }
    }
}

fn table(tokens: &[TokenRecord]) -> String {
    if tokens.is_empty() {
        return "no API tokens (host tokens create --name NAME --role viewer --expires 30d)\n"
            .into();
    }
    let mut out = format!(
        "{:<18} {:<20} {:<9} {:<10} {:<26} {}\n",
        "ID", "NAME", "ROLE", "STATE", "EXPIRES", "CREATED BY"
    );
    for t in tokens {
        let state = match (&t.revoked_at, t.expired) {
            (Some(_), _) => "revoked",
            (None, true) => "expired",
            (None, false) => "usable",
        };
        out.push_str(&format!(
            "{:<18} {:<20} {:<9} {:<10} {:<26} {}\n",
            escape(&t.id),
            escape(&t.name),
            t.role.as_str(),
            state,
            t.expires_at.as_deref().unwrap_or("never"),
            escape(&t.created_by)
        ));
    }
    out
}

impl AuditArgs {
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        let since_ms = match &self.since {
            Some(text) => {
                let span = humantime::parse_duration(text).map_err(|e| {
                    ConfigError(format!("--since {:?}: {e}", crate::text::echo(text)))
                })?;
                crate::records::now_ms()
                    .saturating_sub(span.as_millis().min(i64::MAX as u128) as i64)
            }
            None => 0,
        };
        let ctx = Context::load(globals)?;
        let events = ctx
            .open_store()
            .await?
            .audit_since(since_ms, self.limit.clamp(1, 100_000))
            .await?;
        if self.json {
            println!("{}", crate::text::json_for_terminal(&events)?);
        } else {
            print!("{}", audit_table(&events));
        }
        Ok(0)
    }
}

/// One line per event; every field escaped for the terminal (events hold untrusted text).
fn audit_table(events: &[AuditEvent]) -> String {
    if events.is_empty() {
        return "no audit events\n".into();
    }
    let mut out = String::new();
    for e in events {
        out.push_str(&format!(
            "{} {:<19} {} ({}) from {}{}{}\n",
            escape(&e.at),
            e.act.as_str(),
            escape(&e.actor),
            escape(&e.proof),
            escape(&e.source),
            e.target
                .as_deref()
                .map(|t| format!(" on {}", escape(t)))
                .unwrap_or_default(),
            e.detail
                .as_deref()
                .map(|d| format!(": {}", escape(d)))
                .unwrap_or_default(),
        ));
    }
    out
}
