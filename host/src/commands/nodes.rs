//! `host nodes`: the fleet's nodes as the run store knows them: up or not, last seen, runs in
//! flight and queued, version.

use anstream::{print, println};
use clap::Args;

use super::Globals;
use crate::commands::Context;

#[derive(Args)]
#[command(after_help = "Example:\n  host nodes --store postgres://runbook@db/runbook")]
pub struct NodesArgs {
    #[arg(long)]
    json: bool,
}

impl NodesArgs {
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        let ctx = Context::load(globals)?;
        let nodes = ctx.open_store().await?.nodes().await?;
        if self.json {
            println!("{}", crate::text::json_for_terminal(&nodes)?);
        } else {
            let lease = ctx.host.config.server.lease();
            print!("{}", crate::fleet::remote::nodes_table(&nodes, lease));
        }
        Ok(0)
    }
}
