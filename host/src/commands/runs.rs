//! `host runs`: the run store's recent runs, and one run shown, reported, exported as a fixture
//! or cancelled (through the store, or a server's API with `--server`).

use std::path::PathBuf;

use anstream::{eprintln, print, println};
use clap::{Args, Subcommand};

use super::Globals;
use crate::commands::{Context, EXIT_USAGE};
use crate::render;
use crate::store::{Store, StoredRun};
use crate::style;
use runbook_core::access::AuditAct;

#[derive(Args)]
#[command(
    after_help = "Examples:\n  host runs\n  host runs --playbook bot-down --limit 5\n  host runs show r1a2126ff8f40245b000"
)]
pub struct RunsArgs {
    #[command(subcommand)]
    action: Option<RunsAction>,
    /// How many runs to list
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Only this playbook's runs
    #[arg(long)]
    playbook: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum RunsAction {
    /// One run with its whole timeline (every capability call) and artifacts
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// One run as a post-incident review in Markdown (the post-mortem template's headings)
    #[command(after_help = "Example:\n  host runs report r1a2126ff8f40245b000 > INC-review.md")]
    Report { id: String },
    /// Write a run recorded with `host run --record` as a fixture for `host test`
    #[command(
        after_help = "Example:\n  host runs export r1a2126ff8f40245b000 --fixture tests/outage.json"
    )]
    Export {
        id: String,
        #[arg(long, value_name = "FILE")]
        fixture: PathBuf,
    },
    /// Stop a queued or running run: it ends `cancelled`, saying who asked
    #[command(
        after_help = "A queued run ends at once; a running one stops at its next capability call or         epoch tick (an approval wait, a docker or http call included).

Examples:
  host runs cancel r1a2126ff8f40245b000
  RUNBOOK_API_TOKEN=… host runs cancel r1a2126ff8f40245b000 --server http://10.0.0.5:9095

Exit status: 0 cancelled, 1 refused (already ended or being cancelled), 2 no such run."
    )]
    Cancel {
        id: String,
        /// Ask this server (`POST /runs/{id}/cancel`, bearer token from RUNBOOK_API_TOKEN)
        /// instead of the local store
        #[arg(long, value_name = "URL")]
        server: Option<url::Url>,
        #[command(flatten)]
        ca: super::globals::ServerCa,
    },
}

impl RunsArgs {
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        let ctx = Context::load(globals)?;
        if let Some(RunsAction::Cancel {
            id,
            server: Some(server),
            ca,
        }) = &self.action
        {
            ca.apply(None)?;
            let token = std::env::var("RUNBOOK_API_TOKEN").ok();
            return crate::cancel::cli::on_server(server, id, token.as_deref()).await;
        }
        let store = ctx.open_store().await?;
        let code = self.on_store(&*store).await?;
        // The server's door audits a cancel over the API; one on the store is audited here.
        if let Some(RunsAction::Cancel { id, .. }) = &self.action
            && code == 0
        {
            super::access::record(&ctx, AuditAct::RunCancelled, Some(id), None).await;
        }
        Ok(code)
    }

    async fn on_store(&self, store: &Store) -> anyhow::Result<u8> {
        match &self.action {
            None => self.list(store).await,
            Some(RunsAction::Show { id, json }) => {
                let Some(run) = find(store, id, true).await? else {
                    return Ok(EXIT_USAGE);
                };
                if *json {
                    println!("{}", crate::text::json_for_terminal(&run)?);
                } else {
                    print!("{}", render::stored_run(&run));
                }
                Ok(0)
            }
            Some(RunsAction::Export { id, fixture }) => {
                let Some(run) = find(store, id, false).await? else {
                    return Ok(EXIT_USAGE);
                };
                if !crate::replay::cli::export_fixture(&run, fixture)? {
                    eprintln!(
                        "{} run {id} was not recorded; run it with `host run --record FILE`",
                        style::error()
                    );
                    return Ok(EXIT_USAGE);
                }
                Ok(0)
            }
            Some(RunsAction::Cancel { id, .. }) => crate::cancel::cli::on_store(store, id).await,
            Some(RunsAction::Report { id }) => {
                let Some(run) = find(store, id, true).await? else {
                    return Ok(EXIT_USAGE);
                };
                print!("{}", crate::postmortem::render_from(store, &run).await);
                Ok(0)
            }
        }
    }

    async fn list(&self, store: &Store) -> anyhow::Result<u8> {
        let runs = store.list(self.limit, self.playbook.as_deref()).await?;
        if self.json {
            println!("{}", crate::text::json_for_terminal(&runs)?);
        } else if runs.is_empty() {
            println!("no runs yet in {}", store.describe());
        } else {
            print!("{}", render::runs_table(&runs));
        }
        Ok(0)
    }
}

/// The run, or `None` once the operator is told it is not in the store (and, with `hint`, where
/// to look).
async fn find(store: &Store, id: &str, hint: bool) -> anyhow::Result<Option<StoredRun>> {
    let run = store.get(id).await?;
    if run.is_none() {
        eprintln!("{} no run {id:?} in {}", style::error(), store.describe());
        if hint {
            eprintln!("hint: `host runs` lists the recent ones");
        }
    }
    Ok(run)
}
