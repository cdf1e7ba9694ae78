//! `host digest`: the figures of the last span of runs (outcomes, times from detection to
//! start, first action and outcome, approvals, top alerts) as the end-of-day report, the weekly
//! summary, or JSON; `--send CHANNEL` delivers it through the outbox as the `[digest]`
//! schedule does.

use std::time::Duration;

use anstream::{print, println};
use clap::Args;

use super::{ConfigError, EXIT_FAILED, Globals};
use crate::commands::Context;
use crate::digest::{self, Period};
use runbook_core::figures::Window;

/// Longest span a digest covers (a year): the figures read every run in it.
const MAX_SPAN: Duration = Duration::from_secs(366 * 86_400);

/// `--since`: a span such as `24h`, `7d`, `90m`, up to a year.
fn span(text: &str) -> Result<Duration, String> {
    let span = humantime::parse_duration(text).map_err(|e| {
        format!("{e}: give a span such as 24h, 7d or 30m (the digest covers that long up to now)")
    })?;
    if span.is_zero() || span > MAX_SPAN {
        return Err("give a span between 1s and 366d".into());
    }
    Ok(span)
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  host digest\n  host digest --since 7d --markdown\n  \
    host digest --since 24h --json\n  host digest --since 24h --send ops\n\n\
    Times are from detection (the alert's startsAt, else when the run was accepted) to the run's \
    start, its first performed mutating call, and its outcome; p50/p90 are nearest-rank."
)]
pub struct DigestArgs {
    /// How far back: the runs accepted in the last SPAN (24h: the end-of-day report, 7d: the
    /// weekly summary)
    #[arg(long, default_value = "24h", value_name = "SPAN", value_parser = span)]
    since: Duration,
    /// The figures as JSON
    #[arg(long, conflicts_with_all = ["markdown", "send"])]
    json: bool,
    /// The report as Markdown (as it is sent)
    #[arg(long)]
    markdown: bool,
    /// Also deliver it to this notify channel (through the outbox) and wait for the delivery
    #[arg(long, value_name = "CHANNEL")]
    send: Option<String>,
}

impl DigestArgs {
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        let mut ctx = Context::load(globals)?;
        let store = ctx.open_store().await?;
        let period = match self.since.as_secs() {
            86_400 => Period::Day,
            604_800 => Period::Week,
            _ => Period::Window,
        };
        let figures = store.figures(&Window::last(self.since)).await?;
        if self.json {
            println!(
                "{}",
                crate::text::json_for_terminal(&digest::json(&figures, period))?
            );
            return Ok(0);
        }
        // Every name in the Markdown is escaped and on one line; for a terminal, control
        // characters are escaped once more.
        let report = digest::markdown(&figures, period);
        if self.markdown {
            print!("{report}");
        } else {
            print!("{}", crate::text::escape_keeping_lines(&report));
        }
        let Some(channel) = self.send else {
            return Ok(0);
        };
        ctx.host.store = Some(store);
        let notifier = ctx.host.notifier();
        if let Some(problem) = notifier.problem(&channel) {
            return Err(ConfigError(format!("channel {channel} cannot deliver: {problem}")).into());
        }
        let key = format!(
            "digest-{}-{}",
            period.as_str(),
            runbook_core::records::now_ms()
        );
        let notification = digest::notification(&figures, period, &key);
        let submitted = notifier
            .submit(&channel, &notification)
            .await
            .map_err(|e| ConfigError(e.to_string()))?;
        notifier.start();
        let row = notifier
            .wait_for_message(submitted.outbox_id, Duration::from_secs(30))
            .await?;
        notifier.stop(Duration::from_secs(5)).await;
        println!("sent to {channel}: {}", row.state);
        Ok(if row.state == "delivered" {
            0
        } else {
            EXIT_FAILED
        })
    }
}
