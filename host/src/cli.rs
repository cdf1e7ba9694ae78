//! The command line's shape: the options every subcommand takes and one line per subcommand. Each
//! subcommand's arguments and examples live with its code in src/commands/.

use clap::{Parser, Subcommand};

use crate::commands::Globals;
use crate::commands::{
    access, agent, approvals, breaker, check, digest, docs, health, inspect, list, maintenance,
    nodes, notify, registry, run, runs, safety, scaffold, schedules, serve, test,
};

/// `host --version`: the crate version and the commit it was built from (host/build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("RUNBOOK_GIT_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "host",
    version = VERSION,
    about = "Runs operators' runbooks as sandboxed WebAssembly playbooks",
    long_about = "Runs operators' runbooks as sandboxed WebAssembly playbooks.\n\n\
        A playbook reaches the world only through the capabilities the host lends it \
        (docker, http, fs-read, notify) and only within the grants in host.toml.",
    after_help = "Examples:\n  host run disk-full\n  host run disk-full -p mounts=/,/var -p warn-percent=70 --dry-run\n  host list\n  host check --config /etc/runbook/host.toml\n\n\
        Exit codes: 0 resolved/mitigated/no-action, 1 failed, 2 bad command, 3 escalated."
)]
pub struct Cli {
    #[command(flatten)]
    pub globals: Globals,
    #[command(subcommand)]
    pub command: Command,
}

// A line per subcommand: its summary for `host --help`; its arguments are the variant's type.
// (`//`, not `///`: clap would take a doc comment here as the CLI's about.)
#[derive(Subcommand)]
pub enum Command {
    /// Run a playbook now and show its timeline
    Run(run::RunArgs),
    /// Replay a playbook against recorded fixtures: no Docker, files or network are touched;
    /// this host's grants still apply. Exit 0 pass, 1 mismatch or expectation failed, 2 bad fixture
    Test(test::TestArgs),
    /// List playbooks with their summary and wanted capabilities
    List(list::ListArgs),
    /// Show a playbook's description, parameters, and wanted vs granted capabilities
    Inspect(inspect::InspectArgs),
    /// Serve webhooks (Alertmanager, generic JSON) and the runs API until SIGTERM
    Serve(serve::ServeArgs),
    /// Execute the runs a server targets at this node (a fleet agent) until SIGTERM
    Agent(agent::AgentArgs),
    /// Fleet nodes from the run store: up, last seen, runs in flight and queued, version
    Nodes(nodes::NodesArgs),
    /// The config's schedules: next firing, and the last one (with its run's outcome) from the store
    Schedules(schedules::SchedulesArgs),
    /// Questions playbooks are waiting on (`approval.ask`), oldest first
    Approvals(approvals::ApprovalsArgs),
    /// Answer a playbook's question: approve (default) or reject, as your login name
    Approve(approvals::ApproveArgs),
    /// The end-of-day report or weekly summary from the run store: outcomes, response times,
    /// top alerts, approvals (text, Markdown or JSON; --send delivers it)
    Digest(digest::DigestArgs),
    /// Recent runs from the run store, newest first (CLI and webhook runs alike)
    Runs(runs::RunsArgs),
    /// API tokens for scripts and dashboards: create (shown once), list, revoke
    Tokens(access::TokensArgs),
    /// The audit trail: every state-changing act, who, how proven, from where, when
    Audit(access::AuditArgs),
    /// Circuit breakers per playbook: which are open (new runs held) and until when; reset one
    Breaker(breaker::BreakerArgs),
    /// Maintenance windows: matching alerts are recorded suppressed, not run; start, list, end
    Maintenance(maintenance::MaintenanceArgs),
    /// Freeze automation: every mutating call everywhere becomes a dry run until `host unfreeze`
    Freeze(safety::FreezeArgs),
    /// End a freeze (`host freeze`): mutating calls act again
    Unfreeze(safety::UnfreezeArgs),
    /// Action budgets: each budget's use per container/node/playbook and when it frees; the freeze state
    Budgets(safety::BudgetsArgs),
    /// Publish a component to an OCI registry (wasm artifact layout); prints its digest
    Push(registry::PushArgs),
    /// Fetch a playbook artifact from a registry, checked, into the local artifact store
    Pull(registry::PullArgs),
    /// Pin every [plugins.X] source to a digest in host.lock (--update: follow moved tags)
    Lock(registry::LockArgs),
    /// Write a signing key pair NAME.key / NAME.pub (ECDSA P-256, cosign-compatible)
    Keygen(registry::KeygenArgs),
    /// Sign a playbook artifact in its registry (cosign's format, `sha256-<hex>.sig` tag)
    Sign(registry::SignArgs),
    /// Write the playbook contract (this host's WIT files) into a directory
    Wit(scaffold::WitArgs),
    /// Create a playbook project in Rust, Python or JavaScript, built against this host's WIT
    New(scaffold::NewArgs),
    /// Notification channels: send a test message, list the outbox, deliver what is pending
    Notify(notify::NotifyArgs),
    /// Validate the config and every playbook; one line per problem, exit 1 if any
    Check(check::CheckArgs),
    /// Ask a running `host serve` whether it is healthy (GET /healthz); exit 0 if so, else 1
    Health(health::HealthArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions(docs::CompletionsArgs),
    /// Print the manual page runbook-host(1) in roff, or write one page per subcommand
    // On the variant, not with the arguments: the doc comment above would reset it.
    #[command(
        long_about = "Print the manual page runbook-host(1) in roff, or write one page per \
        subcommand (runbook-host-run(1), runbook-host-runs-show(1) …) into a directory.\n\n\
        The pages are named runbook-host, not host, so that they never shadow bind9's host(1) \
        (the DNS lookup tool) in `man host`; their synopsis shows the command as you type it."
    )]
    Man(docs::ManArgs),
}
