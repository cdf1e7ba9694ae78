//! `host breaker`: the playbooks' circuit breakers as the run store has them (open or closed,
//! until when), and closing one early.

use anstream::{eprintln, print, println};
use clap::{Args, Subcommand};

use super::Globals;
use crate::commands::{ConfigError, Context, EXIT_FAILED};
use crate::store::BreakerState;
use crate::style;
use runbook_core::access::AuditAct;

#[derive(Args)]
#[command(
    after_help = "A playbook's breaker is configured in host.toml:\n  [plugins.bot-down]\n  breaker = { failures = 3, within = \"15m\", cool-down = \"30m\" }\n\
After that many runs ended failed or escalated within the window, new runs of the playbook are\n\
recorded `held` (not executed) and ops is told once; it closes after the cool-down, or now with\n\
`host breaker reset`.\n\nExamples:\n  host breaker status\n  host breaker status --json\n  host breaker reset bot-down\n\n\
Exit status (reset): 0 closed, 1 it was not open, 2 bad name."
)]
pub struct BreakerArgs {
    #[command(subcommand)]
    action: BreakerAction,
}

#[derive(Subcommand)]
enum BreakerAction {
    /// Every configured breaker and every one that ever opened: open or closed, until when
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Close a playbook's open breaker now: its next run executes; earlier failures no longer count
    Reset {
        /// The playbook, as `host list` names it
        playbook: String,
    },
}

impl BreakerArgs {
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        let ctx = Context::load(globals)?;
        match self.action {
            BreakerAction::Status { json } => {
                let store = ctx.open_store().await?;
                let mut breakers = store.breakers().await?;
                // Configured ones that never opened are shown closed.
                for (name, plugin) in &ctx.host.config.plugins {
                    if plugin.breaker.is_some() && !breakers.iter().any(|b| &b.playbook == name) {
                        breakers.push(closed(name));
                    }
                }
                breakers.sort_by(|a, b| a.playbook.cmp(&b.playbook));
                if json {
                    println!("{}", crate::text::json_for_terminal(&breakers)?);
                } else {
                    print!("{}", table(&breakers, &ctx));
                }
                Ok(0)
            }
            BreakerAction::Reset { playbook } => {
                if playbook.is_empty()
                    || playbook.len() > 128
                    || playbook.contains(char::is_control)
                {
                    return Err(ConfigError(format!(
                        "{:?}: not a playbook name (`host breaker status` lists them)",
                        crate::text::echo(&playbook)
                    ))
                    .into());
                }
                let store = ctx.open_store().await?;
                let by = format!(
                    "cli:{}",
                    crate::approval::cli::login_name().replace(|c: char| c.is_control(), "")
                );
                let name = crate::text::escape(&playbook);
                if store.breaker_reset(&playbook, &by).await? {
                    let act = AuditAct::BreakerReset;
                    super::access::record(&ctx, act, Some(&playbook), None).await;
                    println!("breaker of {name} closed by {by}: its next run executes");
                    Ok(0)
                } else {
                    eprintln!("{} the breaker of {name} is not open", style::error());
                    Ok(EXIT_FAILED)
                }
            }
        }
    }
}

fn closed(playbook: &str) -> BreakerState {
    BreakerState {
        playbook: playbook.to_string(),
        open: false,
        opened_at: String::new(),
        until: String::new(),
        opened_ms: 0,
        failures: 0,
        openings: 0,
        reset_by: None,
    }
}

fn table(breakers: &[BreakerState], ctx: &Context) -> String {
    if breakers.is_empty() {
        return "no circuit breakers configured ([plugins.X] breaker) or opened\n".into();
    }
    let mut out = format!(
        "{:<24} {:<7} {:<26} {:<9} {}\n",
        "PLAYBOOK", "STATE", "UNTIL", "OPENINGS", "RULE"
    );
    for b in breakers {
        let rule = ctx
            .host
            .config
            .plugins
            .get(&b.playbook)
            .and_then(|p| p.breaker.as_ref())
            .map(|r| {
                format!(
                    "{} within {}, cool-down {}",
                    r.failures,
                    humantime::format_duration(r.within),
                    humantime::format_duration(r.cool_down)
                )
            })
            .unwrap_or_else(|| "(not configured)".into());
        let (state, until) = match (b.open, &b.reset_by) {
            (true, _) => ("open", b.until.clone()),
            (false, Some(by)) => ("closed", format!("reset by {by}")),
            (false, None) => ("closed", String::new()),
        };
        out.push_str(&format!(
            "{:<24} {:<7} {:<26} {:<9} {}\n",
            crate::text::escape(&b.playbook),
            state,
            crate::text::escape(&until),
            b.openings,
            rule
        ));
    }
    out
}
