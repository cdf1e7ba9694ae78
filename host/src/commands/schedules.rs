//! `host schedules`: the config's schedules with their next firing, and the last ones (with their
//! runs' outcomes) from the run store.

use anstream::{print, println};
use clap::Args;

use super::Globals;
use crate::commands::Context;

#[derive(Args)]
#[command(after_help = "Examples:\n  host schedules\n  host schedules --history 10 --json")]
pub struct SchedulesArgs {
    /// Also list this many recorded firings of each, newest first
    #[arg(long, default_value_t = 0, value_name = "N")]
    history: usize,
    #[arg(long)]
    json: bool,
}

impl SchedulesArgs {
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        let ctx = Context::load(globals)?;
        let store = ctx.open_store().await?;
        let schedules = &ctx.host.config.schedules;
        let statuses = crate::schedule::statuses(&*store, schedules, self.history).await?;
        if self.json {
            println!("{}", crate::text::json_for_terminal(&statuses)?);
        } else {
            print!("{}", crate::schedule::table(&statuses));
        }
        Ok(0)
    }
}
