//! `host maintenance`: operators' ad hoc maintenance windows in the run store (start, list,
//! end). While one is in force, matching alerts and runs are recorded `suppressed`, not run.
//! Config windows (`[[maintenance]]` in host.toml) are listed too.

use anstream::{eprintln, print, println};
use clap::{Args, Subcommand};

use super::Globals;
use crate::commands::{ConfigError, Context, EXIT_FAILED};
use crate::store::{NewWindow, WindowRecord};
use crate::style;
use runbook_core::access::AuditAct;

#[derive(Args)]
#[command(
    after_help = "Examples:\n  host maintenance start --for 2h --match 'instance=\"web01\"' --reason \"disk swap\"\n  host maintenance start --for 30m --match 'alertname=~\"Disk.*\"' --match 'env=\"prod\"'\n  host maintenance start --for 1h --node web01\n  host maintenance list\n  host maintenance end mw-3f9a1c2b7e\n\n\
Matchers are Alertmanager's (=, !=, =~, !~), as [[route]] spells them; all of a window's must\n\
match. A scheduled run is matched on its labels `schedule` and `playbook`. Runs a person starts\n\
(console, `host run`) are never suppressed.\n\n\
Exit status: 0 done, 1 no such window in force, 2 bad matcher, duration or reason."
)]
pub struct MaintenanceArgs {
    #[command(subcommand)]
    action: MaintenanceAction,
}

#[derive(Subcommand)]
enum MaintenanceAction {
    /// Open a window now: matching alerts and runs are recorded `suppressed` until it ends
    Start {
        /// How long it lasts (`90m`, `2h`, `1d`); at most 30 days
        #[arg(long = "for", value_name = "DURATION")]
        duration: String,
        /// An alert label matcher (`instance="web01"`); repeat for more, all must match
        #[arg(long = "match", value_name = "MATCHER")]
        matchers: Vec<String>,
        /// A fleet node whose runs it suppresses; repeat for more
        #[arg(long = "node", value_name = "NODE")]
        nodes: Vec<String>,
        /// Why, for the console and the runs it suppresses
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Windows in force now (with --all: and those that ended within a day), and config windows
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// End a window now: the next matching alert runs
    End {
        /// The window's id (`host maintenance list`)
        id: String,
    },
}

fn by() -> String {
    format!(
        "cli:{}",
        crate::approval::cli::login_name().replace(|c: char| c.is_control(), "")
    )
}

/// Everything checked before the store is opened (the server's rule, the console's too): a
/// bad window stores nothing.
fn new_window(
    duration: &str,
    matchers: Vec<String>,
    nodes: Vec<String>,
    reason: Option<String>,
) -> Result<NewWindow, ConfigError> {
    crate::server::new_window(duration, matchers, nodes, reason, by()).map_err(|e| {
        ConfigError(format!(
            "{} (--for, --match, --node, --reason)",
            crate::text::escape(&e)
        ))
    })
}

impl MaintenanceArgs {
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        match self.action {
            MaintenanceAction::Start {
                duration,
                matchers,
                nodes,
                reason,
                json,
            } => {
                let window = new_window(&duration, matchers, nodes, reason)?;
                let ctx = Context::load(globals)?;
                let store = ctx.open_store().await?;
                let window = store.window_start(window).await?;
                let act = AuditAct::MaintenanceStarted;
                super::access::record(&ctx, act, Some(&window.id), window.reason.clone()).await;
                if json {
                    println!("{}", crate::text::json_for_terminal(&window)?);
                } else {
                    println!(
                        "maintenance window {} in force until {}: matching alerts are recorded \
                         suppressed\nend it sooner: host maintenance end {}",
                        window.id, window.ends_at, window.id
                    );
                }
                Ok(0)
            }
            MaintenanceAction::List { all, json } => {
                let ctx = Context::load(globals)?;
                let store = ctx.open_store().await?;
                let windows = store.windows(all).await?;
                if json {
                    println!("{}", crate::text::json_for_terminal(&windows)?);
                } else {
                    print!("{}", table(&windows, &ctx));
                }
                Ok(0)
            }
            MaintenanceAction::End { id } => {
                if id.len() > 64 || id.contains(char::is_control) {
                    return Err(ConfigError(format!(
                        "{:?}: not a window id (`host maintenance list`)",
                        crate::text::echo(&id)
                    ))
                    .into());
                }
                let ctx = Context::load(globals)?;
                let store = ctx.open_store().await?;
                let by = by();
                let id_shown = crate::text::escape(&id);
                if store.window_end(&id, &by).await? {
                    super::access::record(&ctx, AuditAct::MaintenanceEnded, Some(&id), None).await;
                    println!("maintenance window {id_shown} ended by {by}");
                    Ok(0)
                } else {
                    eprintln!(
                        "{} no maintenance window {id_shown} is in force",
                        style::error()
                    );
                    Ok(EXIT_FAILED)
                }
            }
        }
    }
}

fn table(windows: &[WindowRecord], ctx: &Context) -> String {
    let esc = |s: &str| crate::text::escape(s).into_owned();
    let mut out = String::new();
    if windows.is_empty() {
        out.push_str("no ad hoc maintenance window in force\n");
    } else {
        out.push_str(&format!(
            "{:<14} {:<8} {:<26} {:<24} {}\n",
            "ID", "STATE", "ENDS", "BY", "SCOPE (REASON)"
        ));
    }
    for w in windows {
        let state = if w.active { "active" } else { "ended" };
        let scope = w
            .matchers
            .iter()
            .cloned()
            .chain(w.nodes.iter().map(|n| format!("node {n}")))
            .collect::<Vec<_>>()
            .join(", ");
        let reason = w
            .reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<14} {:<8} {:<26} {:<24} {}{}\n",
            esc(&w.id),
            state,
            esc(&w.ends_at),
            esc(&w.created_by),
            esc(&scope),
            esc(&reason)
        ));
    }
    let config = &ctx.host.config.maintenance;
    if !config.is_empty() {
        out.push_str("\nconfig windows (host.toml):\n");
        let now = jiff::Timestamp::now();
        for w in config {
            let when = match w.occurrence_at(now) {
                Some((start, end)) if start <= now => format!("active until {end}"),
                Some((start, end)) => format!("next {start} to {end}"),
                None => "over".into(),
            };
            out.push_str(&format!("  {:<24} {}\n", w.name, when));
        }
    }
    out
}
