//! `host notify`: the notification channels: a test message to one, the outbox listed, and what
//! earlier hosts left pending delivered.

use std::sync::Arc;
use std::time::Duration;

use anstream::{eprintln, print, println};
use clap::{Args, Subcommand};

use super::Globals;
use crate::commands::{ConfigError, Context, EXIT_FAILED};
use crate::notify::Notifier;
use crate::render;
use crate::style;

#[derive(Args)]
#[command(
    after_help = "Examples:\n  host notify test ops\n  host notify list --state pending\n  host notify flush --wait 60"
)]
pub struct NotifyArgs {
    #[command(subcommand)]
    action: NotifyAction,
}

#[derive(Subcommand)]
enum NotifyAction {
    /// Send a test message to a channel and wait for its delivery (exit 1 if not delivered)
    #[command(after_help = "Example:\n  host notify test ops --config /etc/runbook/host.toml")]
    Test {
        channel: String,
        /// How long to wait for delivery
        #[arg(long, value_name = "SECS", default_value_t = 30)]
        wait: u64,
    },
    /// The outbox, newest first: every message with its delivery state, attempts and error
    #[command(after_help = "Example:\n  host notify list --state failed")]
    List {
        /// Only pending, delivered or failed messages
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Deliver what earlier hosts left pending, then exit (exit 1 if anything is still pending)
    #[command(after_help = "Example:\n  host notify flush --wait 120")]
    Flush {
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        wait: u64,
    },
}

impl NotifyArgs {
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        let mut ctx = Context::load(globals)?;
        ctx.attach_store_if_any().await;
        let notifier = ctx.host.notifier();
        match self.action {
            NotifyAction::Test { channel, wait } => test(&notifier, &channel, wait).await,
            NotifyAction::List { state, limit, json } => {
                list(&notifier, state.as_deref(), limit, json).await
            }
            NotifyAction::Flush { wait } => flush(&notifier, wait).await,
        }
    }
}

async fn test(notifier: &Arc<Notifier>, channel: &str, wait: u64) -> anyhow::Result<u8> {
    let id = notifier
        .send_test(channel)
        .await
        .map_err(|e| ConfigError(e.to_string()))?;
    notifier.start();
    let row = notifier
        .wait_for_message(id, Duration::from_secs(wait))
        .await?;
    notifier.stop(Duration::from_secs(5)).await;
    print!("{}", render::deliveries(std::slice::from_ref(&row)));
    Ok(if row.state == "delivered" {
        0
    } else {
        EXIT_FAILED
    })
}

async fn list(
    notifier: &Arc<Notifier>,
    state: Option<&str>,
    limit: usize,
    json: bool,
) -> anyhow::Result<u8> {
    if let Some(state) = state
        && !["pending", "delivered", "failed"].contains(&state)
    {
        return Err(ConfigError(format!(
            "--state {state:?}: expected pending, delivered or failed"
        ))
        .into());
    }
    let rows = notifier.store().outbox_list(state, limit).await?;
    if json {
        println!("{}", crate::text::json_for_terminal(&rows)?);
    } else if rows.is_empty() {
        println!("the outbox in {} is empty", notifier.store().describe());
    } else {
        print!("{}", render::outbox(&rows));
    }
    Ok(0)
}

async fn flush(notifier: &Arc<Notifier>, wait: u64) -> anyhow::Result<u8> {
    for (channel, problem) in notifier.problems() {
        eprintln!(
            "{} channel {channel} cannot deliver: {problem}",
            style::warning()
        );
    }
    notifier.start();
    let pending = notifier.wait_for_all(Duration::from_secs(wait)).await?;
    notifier.stop(Duration::from_secs(5)).await;
    if pending.is_empty() {
        println!("nothing pending");
        return Ok(0);
    }
    for (channel, count) in &pending {
        println!("{channel}: {count} still pending");
    }
    Ok(EXIT_FAILED)
}
