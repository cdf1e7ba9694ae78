//! `host approvals` and `host approve`: the questions playbooks are waiting on (`approval.ask`),
//! and an operator's answer to one, kept in the run store.

use std::sync::Arc;

use anstream::{eprintln, print, println};
use clap::Args;

use super::Globals;
use crate::approval::{Approvals, cli};
use crate::commands::Context;
use crate::style;

#[derive(Args)]
#[command(
    after_help = "Examples:\n  host approvals\n  host approvals --json\n\nAnswer with `host approve RUN`."
)]
pub struct ApprovalsArgs {
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(
    after_help = "Your login name must be in the group's `users` in host.toml ([approvers.GROUP]).\n\nExamples:\n  host approve r1a2126ff8f40245b000\n  host approve r1a2126ff8f40245b000 --reject --reason \"not during the release\"\n\nExit status: 0 recorded, 1 refused (not listed, already decided), 2 no such question."
)]
pub struct ApproveArgs {
    /// The run that asked (its one waiting question), or an approval id
    target: String,
    /// Reject instead of approve
    #[arg(long)]
    reject: bool,
    /// Why (kept with the answer; shown in the run's report)
    #[arg(long, value_name = "TEXT", requires = "reject")]
    reason: Option<String>,
}

impl ApprovalsArgs {
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        let approvals = open(globals).await?;
        let pending = approvals.store().approvals(None).await?;
        if self.json {
            println!("{}", crate::text::json_for_terminal(&pending)?);
        } else {
            print!("{}", cli::table(&pending));
        }
        Ok(0)
    }
}

impl ApproveArgs {
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        let approvals = open(globals).await?;
        let (code, line) = cli::approve(&approvals, &self.target, self.reject, self.reason).await?;
        if code == 0 {
            println!("{}", crate::text::escape(&line));
        } else {
            eprintln!("{} {}", style::error(), crate::text::escape(&line));
        }
        Ok(code)
    }
}

/// The approvals over the run store, which both commands need.
async fn open(globals: Globals) -> anyhow::Result<Arc<Approvals>> {
    let mut ctx = Context::load(globals)?;
    ctx.host.store = Some(ctx.open_store().await?);
    ctx.host
        .approvals()
        .ok_or_else(|| anyhow::anyhow!("approvals are not available here"))
}
