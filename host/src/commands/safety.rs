//! `host freeze`, `host unfreeze` and `host budgets`: the storm-safety rails (README "Safety
//! rails"). The freeze switch lives in the run store, so it reaches every `host serve` replica
//! and, through the server, every fleet node sharing it.

use anstream::println;
use clap::Args;

use super::{Context, EXIT_USAGE, Globals};
use crate::text::escape;
use runbook_core::access::AuditAct;

#[derive(Args)]
#[command(
    after_help = "Every mutating capability call (docker start/stop/restart/…, http \
    POST/PUT/…) on every replica and node becomes a dry-run \"would …\" until `host unfreeze`; \
    reads, diagnosis and notifications go on. Calls already under way finish; a call starting \
    up to a second later may still act (each process reads the switch at most once a \
    second).\n\nExamples:\n  host freeze --reason \"database failover in progress\"\n  \
    host freeze --status\n  host unfreeze"
)]
pub struct FreezeArgs {
    /// Why (shown in every frozen call, run and report); one line, at most 500 bytes
    #[arg(long, default_value = "")]
    reason: String,
    /// Only show whether the host is frozen (exit 0 frozen, 1 not)
    #[arg(long, conflicts_with = "reason")]
    status: bool,
}

#[derive(Args)]
#[command(after_help = "Example:\n  host unfreeze")]
pub struct UnfreezeArgs {}

#[derive(Args)]
#[command(
    after_help = "Each [[budget]] of host.toml (and the built-in `restarts` budget unless \
    host.toml replaces it), its use per key within its window and when one use frees up; then \
    the freeze switch.\n\nExample:\n  host budgets --json"
)]
pub struct BudgetsArgs {
    #[arg(long)]
    json: bool,
}

fn print_freeze(freeze: &Option<crate::store::Freeze>) {
    match freeze {
        Some(f) => println!(
            "frozen since {} by {}: {}",
            escape(&f.since),
            escape(&f.by),
            escape(&f.reason)
        ),
        None => println!("not frozen"),
    }
}

impl FreezeArgs {
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        let ctx = Context::load(globals)?;
        let store = ctx.open_store().await?;
        if self.status {
            let freeze = store.freeze_state().await?;
            print_freeze(&freeze);
            return Ok(if freeze.is_some() { 0 } else { 1 });
        }
        let by = crate::approval::cli::login_name();
        let freeze = match crate::safety::freeze_record(&by, &self.reason) {
            Ok(freeze) => freeze,
            Err(e) => {
                eprintln!("error: --reason: {e}\nhint: give a shorter, one-line reason");
                return Ok(EXIT_USAGE);
            }
        };
        store.set_freeze(Some(freeze)).await?;
        let reason = Some(self.reason.clone()).filter(|r| !r.is_empty());
        super::access::record(&ctx, AuditAct::Freeze, None, reason).await;
        print_freeze(&store.freeze_state().await?);
        Ok(0)
    }
}

impl UnfreezeArgs {
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        let ctx = Context::load(globals)?;
        let store = ctx.open_store().await?;
        store.set_freeze(None).await?;
        super::access::record(&ctx, AuditAct::Unfreeze, None, None).await;
        print_freeze(&None);
        Ok(0)
    }
}

impl BudgetsArgs {
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        let ctx = Context::load(globals)?;
        let store = ctx.open_store().await?;
        let budgets =
            crate::safety::effective(&ctx.host.config.budgets).map_err(super::ConfigError)?;
        let report = crate::safety::report(store.as_ref(), &budgets).await?;
        let freeze = store.freeze_state().await?;
        if self.json {
            let freeze = freeze
                .map(|f| serde_json::json!({ "by": f.by, "reason": f.reason, "since": f.since }));
            let doc = serde_json::json!({ "budgets": report, "frozen": freeze });
            println!("{}", crate::text::json_for_terminal(&doc)?);
            return Ok(0);
        }
        for budget in &report {
            println!(
                "{}: {} of {}{}",
                escape(&budget.name),
                budget.rule,
                budget.actions.join(", "),
                if budget.playbooks.is_empty() {
                    String::new()
                } else {
                    format!(" by {}", budget.playbooks.join(", "))
                }
            );
            if budget.uses.is_empty() {
                println!("  (unused)");
            }
            for u in &budget.uses {
                let key = if u.key.is_empty() { "(all)" } else { &u.key };
                println!(
                    "  {:<32} {}/{}  {} in {}",
                    escape(key),
                    u.used,
                    u.max,
                    if u.used >= u.max {
                        "spent; frees"
                    } else {
                        "oldest frees"
                    },
                    crate::safety::human(std::time::Duration::from_secs(u.frees_in_secs))
                );
            }
        }
        print_freeze(&freeze);
        Ok(0)
    }
}
