//! The `host` command line: parse, set up logging, hand the subcommand to its module in
//! src/commands/, and turn its result into the exit code. Exit codes: 0 resolved, mitigated or
//! no-action; 1 failed (or a host error); 2 a mistake in the command; 3 escalated.

use std::process::ExitCode;

// Through anstream: colour codes reach a terminal only, and never with NO_COLOR set.
use anstream::eprintln;
use clap::{CommandFactory, Parser};

// The layers under the names the subcommands use: the CLI is the one crate that imports them all.
use runbook_core::{panics, records, severity, text, timeline};
use runbook_runtime::{
    approval, bindings, cancel, caps, catalog, config, digest, engine, fleet, incident, notify,
    oci, params, postmortem, render, replay, run, safety, schedule, style,
};
use runbook_server as server;
use runbook_store as store;

mod cli;
mod commands;
mod logging;

use crate::cli::{Cli, Command};
use crate::commands::{ConfigError, EXIT_FAILED, EXIT_USAGE};

fn main() -> ExitCode {
    crate::panics::install_panic_hook();
    let cli = Cli::parse();
    let service = matches!(cli.command, Command::Serve(_) | Command::Agent(_));
    let globals = &cli.globals;
    let _flushed_at_exit =
        match crate::logging::init(globals.log_level.as_deref(), globals.log_format, service) {
            Ok(guard) => guard,
            Err(e) => {
                eprintln!("{} {e:#}", crate::style::error());
                return ExitCode::from(EXIT_USAGE);
            }
        };
    let runtime = tokio::runtime::Runtime::new().expect("starting the tokio runtime");
    let code = runtime.block_on(async_main(cli));
    // Dropping the runtime would wait for every blocking task; host work abandoned at a run's
    // deadline stops on its own, and must not keep the process alive if it has not yet.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

async fn async_main(cli: Cli) -> ExitCode {
    match dispatch(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // Errors can quote a playbook's words (a describe() failure): escaped like the rest.
            eprintln!(
                "{} {}",
                style::error(),
                crate::text::escape_keeping_lines(&format!("{e:#}"))
            );
            let usage = e.downcast_ref::<run::UsageError>().is_some()
                || e.downcast_ref::<ConfigError>().is_some();
            if usage {
                eprintln!(
                    "hint: `host --help` and `host inspect <playbook>` show what is accepted"
                );
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::from(EXIT_FAILED)
            }
        }
    }
}

/// Each subcommand to its module. `globals` (config, store, cache) is for those that load the
/// config; the others write files or ask a server and need none of it.
async fn dispatch(Cli { globals, command }: Cli) -> anyhow::Result<u8> {
    match command {
        Command::Run(args) => args.run(globals).await,
        Command::Test(args) => args.run(globals).await,
        Command::List(args) => args.run(globals).await,
        Command::Inspect(args) => args.run(globals).await,
        Command::Serve(args) => args.run(globals).await,
        Command::Agent(args) => args.run(globals).await,
        Command::Nodes(args) => args.run(globals).await,
        Command::Schedules(args) => args.run(globals).await,
        Command::Approvals(args) => args.run(globals).await,
        Command::Approve(args) => args.run(globals).await,
        Command::Runs(args) => args.run(globals).await,
        Command::Breaker(args) => args.run(globals).await,
        Command::Tokens(args) => args.run(globals).await,
        Command::Audit(args) => args.run(globals).await,
        Command::Maintenance(args) => args.run(globals).await,
        Command::Digest(args) => args.run(globals).await,
        Command::Freeze(args) => args.run(globals).await,
        Command::Unfreeze(args) => args.run(globals).await,
        Command::Budgets(args) => args.run(globals).await,
        Command::Push(args) => args.run(globals).await,
        Command::Pull(args) => args.run(globals).await,
        Command::Lock(args) => args.run(globals).await,
        Command::Keygen(args) => args.run(),
        Command::Sign(args) => args.run(globals).await,
        Command::Wit(args) => args.run(),
        Command::New(args) => args.run(),
        Command::Notify(args) => args.run(globals).await,
        Command::Check(args) => args.run(globals).await,
        Command::Health(args) => args.run().await,
        Command::Completions(args) => args.run(Cli::command()),
        Command::Man(args) => args.run(Cli::command()),
    }
}
