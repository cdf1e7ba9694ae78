//! The `host` command line: parse, call the library, print. Exit codes: 0 resolved, mitigated or
//! no-action; 1 failed (or a host error); 2 a mistake in the command; 3 escalated.

use std::path::PathBuf;
use std::process::ExitCode;

// Through anstream: colour codes reach a terminal only, and never with NO_COLOR set.
use anstream::{eprintln, print, println};
use clap::{CommandFactory, Parser, Subcommand};

// The layers under the names the subcommands use: the CLI is the one crate that imports them all.
use runbook_core::{panics, records, severity, text, timeline};
use runbook_runtime::{
    approval, bindings, cancel, caps, catalog, config, engine, fleet, incident, notify, params,
    postmortem, render, replay, run, schedule, style,
};
use runbook_server as server;
use runbook_store as store;

mod check;
mod health;
mod logging;
mod scaffold;

use crate::bindings::Capability;
use crate::config::Config;
use crate::engine::default_cache_dir;
use crate::incident::{parse_param, read_alert_file};
use crate::notify::ConsoleStream;
use crate::records::Trigger;
use crate::run::{Host, Prepared, RunRequest, UsageError};
use crate::scaffold::Lang;
use crate::store::{Location, Store, default_store_path};
use crate::timeline::Sink;

const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_ESCALATED: u8 = 3;

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
struct Cli {
    /// Config file [default: ./host.toml when present, else built-in defaults]
    #[arg(long, global = true, env = "RUNBOOK_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Extra directory of *.wasm playbooks (repeatable); added to the config's plugin-dirs
    #[arg(long = "plugin-dir", global = true, value_name = "DIR")]
    plugin_dirs: Vec<PathBuf>,
    /// Compiled-component cache [default: ~/.cache/runbook-host/components]
    #[arg(long, global = true, env = "RUNBOOK_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile every time instead of using the cache
    #[arg(long, global = true)]
    no_cache: bool,
    /// Run store: a SQLite file, or a PostgreSQL URL (postgres://user@host/db) shared by
    /// several `host serve` replicas [default: ~/.local/state/runbook-host/runs.sqlite3]
    #[arg(long, global = true, env = "RUNBOOK_STORE", value_name = "FILE|URL")]
    store: Option<String>,
    /// Log filter, RUST_LOG-style: error, warn, info, debug, or per module
    /// (`runbook_server=debug,info`) [default: info for serve and agent, else warn]
    #[arg(long, global = true, env = "RUNBOOK_LOG", value_name = "FILTER")]
    log_level: Option<String>,
    /// Log lines as text, or as JSON objects (timestamp, level, message, run id, playbook,
    /// request id, remote address) for a log collector
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "RUNBOOK_LOG_FORMAT",
        value_name = "FORMAT"
    )]
    log_format: crate::logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a playbook now and show its timeline
    #[command(
        after_help = "Examples:\n  host run disk-full\n  host run disk-full -p mounts=/,/data -p critical-percent=95\n  host run disk-full --alert-file alert.json --dry-run --json\n  host run ./my-playbook.wasm\n  host run --plugin my-playbook.wasm --dry-run --json"
    )]
    Run {
        /// Playbook name (see `host list`) or path to a .wasm component
        #[arg(required_unless_present = "plugin")]
        playbook: Option<String>,
        /// A .wasm component to run, by path (instead of PLAYBOOK)
        #[arg(long, value_name = "FILE", conflicts_with = "playbook")]
        plugin: Option<PathBuf>,
        /// A parameter, key=value (repeatable; see `host inspect <playbook>`)
        #[arg(short = 'p', long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// Alertmanager alert (or whole webhook payload) to run against, as JSON
        #[arg(long, value_name = "FILE")]
        alert_file: Option<PathBuf>,
        /// Record mutating calls (restart, prune, notify, non-GET http) as "would …" instead
        #[arg(long)]
        dry_run: bool,
        /// Print one JSON document (timeline, outcome, timings) instead of the live timeline
        #[arg(long)]
        json: bool,
        /// Incident priority P1–P4 [default: the alert's severity label, else P3]
        #[arg(long, value_name = "P1..P4", value_parser = parse_severity)]
        severity: Option<crate::severity::Priority>,
        /// How long to wait for the run's notifications to be delivered before exiting; what
        /// is still pending stays in the outbox for the next host (or `host notify flush`)
        #[arg(long, value_name = "SECS", default_value_t = 15)]
        notify_wait: u64,
        /// Run it on this fleet node instead: the server (--server) hands it to the node's
        /// agent, whose host.toml decides what it may do; the timeline is followed live
        #[arg(long, value_name = "NAME", requires = "server", conflicts_with_all = ["plugin", "alert_file"])]
        node: Option<String>,
        /// With --node: the server, e.g. http://runbook.internal:9095. Bearer tokens:
        /// RUNBOOK_RUN_TOKEN for /hooks/run, RUNBOOK_API_TOKEN for reading the run; basic auth
        /// for reading: RUNBOOK_API_USER and RUNBOOK_API_PASSWORD, or https://user:pass@host
        #[arg(long, env = "RUNBOOK_SERVER", value_name = "URL")]
        server: Option<url::Url>,
        /// Also write the run as a fixture for `host test`: the incident, every capability
        /// call with its result, the outcome (kept with the run too: `host runs export`)
        #[arg(long, value_name = "FILE", conflicts_with = "node")]
        record: Option<PathBuf>,
    },
    /// Replay a playbook against recorded fixtures: no Docker, files or network are touched;
    /// this host's grants still apply. Exit 0 pass, 1 mismatch or expectation failed, 2 bad fixture
    #[command(
        after_help = "Examples:\n  host test disk-full --fixture plugins/disk-full/tests/full.json\n  host test --plugin my-playbook.wasm --fixture tests/healthy.json --fixture tests/down.toml --json"
    )]
    Test {
        /// Playbook name (see `host list`) or path to a .wasm component
        #[arg(required_unless_present = "plugin")]
        playbook: Option<String>,
        /// A .wasm component, by path (instead of PLAYBOOK)
        #[arg(long, value_name = "FILE", conflicts_with = "playbook")]
        plugin: Option<PathBuf>,
        /// A fixture (.json or .toml); repeatable
        #[arg(long, value_name = "FILE", required = true)]
        fixture: Vec<PathBuf>,
        /// One JSON report instead of text
        #[arg(long)]
        json: bool,
    },
    /// List playbooks with their summary and wanted capabilities
    #[command(after_help = "Example:\n  host list --plugin-dir ./playbooks")]
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a playbook's description, parameters, and wanted vs granted capabilities
    #[command(after_help = "Example:\n  host inspect disk-full")]
    Inspect {
        playbook: String,
        #[arg(long)]
        json: bool,
    },
    /// Serve webhooks (Alertmanager, generic JSON) and the runs API until SIGTERM
    #[command(
        after_help = "Endpoints:\n  POST /hooks/alertmanager      Alertmanager/Grafana webhook (routed by [[route]])\n  POST /hooks/run/{playbook}    JSON object of parameters\n  GET  /runs, /runs/{id}, /alerts, /healthz, /metrics\n\nExample:\n  host serve --config examples/host.toml --listen 127.0.0.1:9095"
    )]
    Serve {
        /// Address to listen on [default: [server] listen, else 127.0.0.1:9095]
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Execute the runs a server targets at this node (a fleet agent) until SIGTERM
    #[command(
        after_help = "The agent dials out (no inbound port): it long-polls the server for runs whose \
        route names this node, runs them under THIS machine's host.toml (its grants and limits are \
        the ceiling), and streams their timelines back. The server lists the node's token under \
        [fleet.nodes.NAME].\n\nExamples:\n  RUNBOOK_AGENT_TOKEN=… host agent --server http://runbook.internal:9095 --node web01\n  host agent --server https://a:9095,https://b:9095 --node web01 --token-file /etc/runbook/agent-token"
    )]
    Agent {
        /// The server, or several replicas comma-separated (the next is tried when one fails)
        #[arg(
            long,
            env = "RUNBOOK_SERVER",
            value_name = "URL[,URL…]",
            value_delimiter = ',',
            required = true
        )]
        server: Vec<url::Url>,
        /// This node's name, as routes name it [default: the machine's host name]
        #[arg(long, env = "RUNBOOK_NODE", value_name = "NAME")]
        node: Option<String>,
        /// A file holding the node's token [default: the RUNBOOK_AGENT_TOKEN variable]
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// Runs executing here at once [default: [server] max-concurrent-runs]
        #[arg(long, value_name = "N")]
        max_runs: Option<usize>,
    },
    /// Fleet nodes from the run store: up, last seen, runs in flight and queued, version
    #[command(after_help = "Example:\n  host nodes --store postgres://runbook@db/runbook")]
    Nodes {
        #[arg(long)]
        json: bool,
    },
    /// The config's schedules: next firing, and the last one (with its run's outcome) from the store
    #[command(after_help = "Examples:\n  host schedules\n  host schedules --history 10 --json")]
    Schedules {
        /// Also list this many recorded firings of each, newest first
        #[arg(long, default_value_t = 0, value_name = "N")]
        history: usize,
        #[arg(long)]
        json: bool,
    },
    /// Questions playbooks are waiting on (`approval.ask`), oldest first
    #[command(
        after_help = "Examples:\n  host approvals\n  host approvals --json\n\nAnswer with `host approve RUN`."
    )]
    Approvals {
        #[arg(long)]
        json: bool,
    },
    /// Answer a playbook's question: approve (default) or reject, as your login name
    #[command(
        after_help = "Your login name must be in the group's `users` in host.toml ([approvers.GROUP]).\n\nExamples:\n  host approve r1a2126ff8f40245b000\n  host approve r1a2126ff8f40245b000 --reject --reason \"not during the release\"\n\nExit status: 0 recorded, 1 refused (not listed, already decided), 2 no such question."
    )]
    Approve {
        /// The run that asked (its one waiting question), or an approval id
        target: String,
        /// Reject instead of approve
        #[arg(long)]
        reject: bool,
        /// Why (kept with the answer; shown in the run's report)
        #[arg(long, value_name = "TEXT", requires = "reject")]
        reason: Option<String>,
    },
    /// Recent runs from the run store, newest first (CLI and webhook runs alike)
    #[command(
        after_help = "Examples:\n  host runs\n  host runs --playbook bot-down --limit 5\n  host runs show r1a2126ff8f40245b000"
    )]
    Runs {
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
    },
    /// Write the playbook contract (this host's WIT files) into a directory
    #[command(after_help = "Example:\n  host wit ./wit")]
    Wit { dir: PathBuf },
    /// Create a playbook project in Rust, Python or JavaScript, built against this host's WIT
    #[command(
        after_help = "Examples:\n  host new disk-check\n  host new disk-check --lang python --dir ./playbooks/disk-check\n  host new disk-check --lang js\n\nThe project's README.md says how to build, run and test it."
    )]
    New {
        /// Playbook name: lowercase letters, digits and dashes
        name: String,
        #[arg(long, value_enum, default_value = "rust")]
        lang: Lang,
        /// Where to create it (absent or empty) [default: ./NAME]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Notification channels: send a test message, list the outbox, deliver what is pending
    #[command(
        after_help = "Examples:\n  host notify test ops\n  host notify list --state pending\n  host notify flush --wait 60"
    )]
    Notify {
        #[command(subcommand)]
        action: NotifyAction,
    },
    /// Validate the config and every playbook; one line per problem, exit 1 if any
    #[command(after_help = "Example:\n  host check --config host.toml")]
    Check {
        #[arg(long)]
        json: bool,
    },
    /// Ask a running `host serve` whether it is healthy (GET /healthz); exit 0 if so, else 1
    #[command(
        after_help = "For container HEALTHCHECKs and service monitors.\n\nExamples:\n  host health\n  host health --url http://10.0.0.5:9095/healthz --timeout 2"
    )]
    Health {
        /// The server's /healthz
        #[arg(
            long,
            env = "RUNBOOK_HEALTH_URL",
            value_name = "URL",
            default_value = "http://127.0.0.1:9095/healthz"
        )]
        url: String,
        /// Seconds to wait for the answer
        #[arg(long, value_name = "SECS", default_value_t = 5)]
        timeout: u64,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(
        after_help = "Examples:\n  host completions bash > /etc/bash_completion.d/host\n  host completions zsh > \"${fpath[1]}/_host\"\n  host completions fish > ~/.config/fish/completions/host.fish"
    )]
    Completions { shell: clap_complete::Shell },
    /// Print the manual page runbook-host(1) in roff, or write one page per subcommand
    #[command(
        long_about = "Print the manual page runbook-host(1) in roff, or write one page per \
        subcommand (runbook-host-run(1), runbook-host-runs-show(1) …) into a directory.\n\n\
        The pages are named runbook-host, not host, so that they never shadow bind9's host(1) \
        (the DNS lookup tool) in `man host`; their synopsis shows the command as you type it.",
        after_help = "Examples:\n  host man | man -l -\n  host man --dir /usr/local/share/man/man1 && man runbook-host-run"
    )]
    Man {
        /// Write runbook-host.1 and runbook-host-SUBCOMMAND.1 here instead of printing
        /// runbook-host.1
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
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
    },
}

#[derive(Subcommand)]
enum NotifyAction {
    /// Send a test message to a channel and wait for its delivery (exit 1 if not delivered)
    #[command(after_help = "Example:\n  host notify test ops --config /etc/runbook/host.toml")]
    Test {
        channel: String,
        /// How long to wait for delivery
        #[arg(long, value_name = "SECS", default_value_t = 30)]
        wait: u64,
    },
    /// The outbox, newest first: every message with its delivery state, attempts and error
    #[command(after_help = "Example:\n  host notify list --state failed")]
    List {
        /// Only pending, delivered or failed messages
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Deliver what earlier hosts left pending, then exit (exit 1 if anything is still pending)
    #[command(after_help = "Example:\n  host notify flush --wait 120")]
    Flush {
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        wait: u64,
    },
}

fn main() -> ExitCode {
    crate::panics::install_panic_hook();
    let cli = Cli::parse();
    let service = matches!(cli.command, Command::Serve { .. } | Command::Agent { .. });
    let _flushed_at_exit =
        match crate::logging::init(cli.log_level.as_deref(), cli.log_format, service) {
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
            let usage = e.downcast_ref::<UsageError>().is_some()
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

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ConfigError(String);

fn parse_severity(text: &str) -> Result<crate::severity::Priority, String> {
    crate::severity::Priority::parse(text)
}

async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    // Writing files and asking a server need no config, engine or store.
    match &cli.command {
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "host", &mut script);
            write_stdout(&script)?;
            return Ok(0);
        }
        Command::Man { dir: Some(dir) } => {
            std::fs::create_dir_all(dir)?;
            clap_mangen::generate_to(man_command(), dir)?;
            println!("{}", dir.display());
            return Ok(0);
        }
        Command::Man { dir: None } => {
            let mut page = Vec::new();
            clap_mangen::Man::new(man_command()).render(&mut page)?;
            write_stdout(&page)?;
            return Ok(0);
        }
        Command::Health { url, timeout } => {
            let answer = crate::health::probe(url, std::time::Duration::from_secs(*timeout)).await;
            return Ok(match answer {
                Ok(line) => {
                    println!("healthy: {line}");
                    0
                }
                Err(e) => {
                    eprintln!("unhealthy: {e:#}");
                    EXIT_FAILED
                }
            });
        }
        Command::Wit { dir } => {
            for path in scaffold::write_wit(dir)? {
                println!("{}", path.display());
            }
            return Ok(0);
        }
        Command::New { name, lang, dir } => {
            let made = scaffold::new_project(name, *lang, dir.as_deref())
                .map_err(|e| ConfigError(format!("{e:#}")))?;
            println!("created {} in {}\n", name, made.dir.display());
            print!("{}", made.readme);
            return Ok(0);
        }
        _ => {}
    }
    let mut config =
        Config::discover(cli.config.as_deref()).map_err(|e| ConfigError(format!("{e:#}")))?;
    config.plugin_dirs.extend(cli.plugin_dirs);
    let cache_dir = if cli.no_cache {
        None
    } else {
        cli.cache_dir
            .or_else(|| config.cache_dir.clone())
            .or_else(default_cache_dir)
    };
    let config_connections = config.store_connections;
    let store_location = cli
        .store
        .or_else(|| config.store.clone())
        .map(|s| Location::parse(&s))
        .or_else(|| default_store_path().map(Location::Sqlite));
    // Only the server runs playbooks over and over: it reserves an instance pool up front.
    let mut host = if matches!(cli.command, Command::Serve { .. } | Command::Agent { .. }) {
        Host::for_server(config, cache_dir)?
    } else {
        let host = Host::new(config, cache_dir)?;
        // Seconds for a Python playbook: said before the silence, not after it.
        host.engine.on_first_compile(|name| {
            eprintln!("compiling {name} (first run; cached afterwards)…");
        });
        host
    };
    if let Command::Runs {
        action,
        limit,
        playbook,
        json,
    } = &cli.command
    {
        if let Some(RunsAction::Cancel {
            id,
            server: Some(server),
        }) = action
        {
            let token = std::env::var("RUNBOOK_API_TOKEN").ok();
            return crate::cancel::cli::on_server(server, id, token.as_deref()).await;
        }
        let location =
            store_location.ok_or_else(|| anyhow::anyhow!("no run store: pass --store FILE|URL"))?;
        let store = crate::store::open(&location, config_connections).await?;
        return show_runs(&*store, action.as_ref(), *limit, playbook.as_deref(), *json).await;
    }
    if matches!(
        cli.command,
        Command::Approvals { .. } | Command::Approve { .. }
    ) {
        let location =
            store_location.ok_or_else(|| anyhow::anyhow!("no run store: pass --store FILE|URL"))?;
        host.store = Some(crate::store::open(&location, config_connections).await?);
        return approvals_command(&host, &cli.command).await;
    }
    if let Command::Schedules { history, json } = &cli.command {
        let location =
            store_location.ok_or_else(|| anyhow::anyhow!("no run store: pass --store FILE|URL"))?;
        let store = crate::store::open(&location, config_connections).await?;
        let statuses = crate::schedule::statuses(&*store, &host.config.schedules, *history).await?;
        if *json {
            println!("{}", crate::text::json_for_terminal(&statuses)?);
        } else {
            print!("{}", crate::schedule::table(&statuses));
        }
        return Ok(0);
    }
    if let Command::Nodes { json } = &cli.command {
        let location =
            store_location.ok_or_else(|| anyhow::anyhow!("no run store: pass --store FILE|URL"))?;
        let store = crate::store::open(&location, config_connections).await?;
        let nodes = store.nodes().await?;
        if *json {
            println!("{}", crate::text::json_for_terminal(&nodes)?);
        } else {
            print!(
                "{}",
                crate::fleet::remote::nodes_table(&nodes, host.config.server.lease())
            );
        }
        return Ok(0);
    }
    if let Command::Agent {
        server,
        node,
        token_file,
        max_runs,
    } = &cli.command
    {
        return agent_command(host, store_location, server, node, token_file, *max_runs).await;
    }
    if let Command::Run {
        node: Some(node),
        server: Some(server),
        playbook,
        params,
        dry_run,
        json,
        severity,
        ..
    } = &cli.command
    {
        let (run_auth, api_auth) = crate::fleet::remote::ApiAuth::from_env(server);
        let severity = severity.map(|s| s.as_str().to_string());
        let status = crate::fleet::remote::run_on_node(crate::fleet::remote::RemoteRun {
            server,
            node,
            playbook: playbook.as_deref().unwrap_or_default(),
            params,
            dry_run: *dry_run,
            severity: severity.as_deref(),
            run_auth,
            api_auth,
            json: *json,
        })
        .await?;
        return Ok(match status.as_str() {
            "resolved" | "mitigated" | "no-action" => 0,
            "escalated" => EXIT_ESCALATED,
            _ => EXIT_FAILED,
        });
    }
    if let Command::Serve { listen } = &cli.command {
        let location =
            store_location.ok_or_else(|| anyhow::anyhow!("no run store: pass --store FILE|URL"))?;
        host.store = Some(crate::store::open(&location, config_connections).await?);
        if let Some(listen) = listen {
            host.config.server.listen = listen.clone();
        }
        // Reading the console takes [webhooks.api]; its forms take [ui].
        let console = host.config.webhooks.contains_key("api") || host.config.ui.auth.is_some();
        // Logged as the server's own lines: the binary's target ("host") is outside the
        // `runbook_host=info` filter, which is how this line used to go missing.
        crate::server::serve(host, |addr| {
            tracing::info!(
                target: "crate::server",
                "listening on http://{addr} (run store {})",
                location.describe()
            );
            if console {
                tracing::info!(target: "crate::server", "console: http://{addr}/ui");
            }
        })
        .await?;
        return Ok(0);
    }
    if matches!(cli.command, Command::Run { .. } | Command::Notify { .. })
        && let Some(location) = &store_location
    {
        match crate::store::open(location, config_connections).await {
            Ok(store) => host.store = Some(store),
            Err(e) => eprintln!(
                "{} runs and notifications will not be stored: {e:#}",
                style::warning()
            ),
        }
    }
    if let Command::Run { json: true, .. } = &cli.command {
        host.console = ConsoleStream::Stderr;
    }

    match cli.command {
        Command::Notify { action } => notify_command(&host, action).await,
        Command::Run {
            playbook,
            plugin,
            params,
            alert_file,
            dry_run,
            json,
            severity,
            notify_wait,
            record: record_to,
            ..
        } => {
            let alert = match &alert_file {
                Some(path) => Some(
                    read_alert_file(path)
                        .map_err(|e| ConfigError(format!("--alert-file: {e:#}")))?,
                ),
                None => None,
            };
            let prepared = match plugin {
                Some(path) => host.prepare_file(&path).await?,
                None => prepare_named_or_file(&host, &playbook.unwrap_or_default()).await?,
            };
            let trigger = if alert.is_some() {
                Trigger::Alert
            } else {
                Trigger::Cli
            };
            let request = RunRequest {
                params,
                alert,
                trigger,
                by: None,
                dry_run,
                dedup_key: None,
                severity,
            };
            let sink: Option<Sink> = if json {
                None
            } else {
                out(&format!(
                    "▶ {} ({}, {}{})\n",
                    crate::text::escape(&prepared.source.name),
                    crate::text::escape(&prepared.source.origin.to_string()),
                    trigger.as_str(),
                    if dry_run { ", dry run" } else { "" }
                ));
                Some(Box::new(|event| {
                    out(&format!("{}\n", render::event_line(event)))
                }))
            };
            let notifier = host.notifier();
            notifier.start();
            let tape = record_to
                .as_ref()
                .map(|_| crate::replay::Tape::Recording(Vec::new()));
            let (record, _) = host.run_taped(&prepared, request, sink, tape).await?;
            if let Some(path) = &record_to {
                crate::replay::cli::write_recording(&record, path)?;
            }
            let deliveries = notifier
                .wait_for_run(&record.run_id, std::time::Duration::from_secs(notify_wait))
                .await?;
            notifier.stop(std::time::Duration::from_secs(5)).await;
            for (channel, problem) in notifier.problems() {
                if deliveries.iter().any(|d| d.channel == channel) {
                    eprintln!(
                        "{} channel {channel} cannot deliver until fixed: {problem}",
                        style::warning()
                    );
                }
            }
            if json {
                let mut doc = serde_json::to_value(&record)?;
                doc["deliveries"] = serde_json::to_value(&deliveries)?;
                out(&format!("{}\n", crate::text::json_for_terminal(&doc)?));
            } else {
                out(&render::deliveries(&deliveries));
                out(&render::summary(&record));
                if let Some(reason) = &record.reason {
                    eprintln!(
                        "{} {} failed: {}",
                        style::error(),
                        record.playbook,
                        crate::text::escape(reason)
                    );
                }
            }
            // The process ends here: the kernel unmaps a 35 MB compiled Python component at
            // exit for less than wasmtime's drop, which unregisters and unmaps it piece by piece.
            std::mem::forget(prepared);
            Ok(match record.status {
                // Stopped before it finished (`host runs cancel`): not a success to chain on.
                "failed" | "cancelled" => EXIT_FAILED,
                "escalated" => EXIT_ESCALATED,
                _ => 0,
            })
        }
        Command::Test {
            playbook,
            plugin,
            fixture,
            json,
        } => {
            let prepared = match plugin {
                Some(path) => host.prepare_file(&path).await?,
                None => prepare_named_or_file(&host, &playbook.unwrap_or_default()).await?,
            };
            crate::replay::cli::test_command(&host, &prepared, &fixture, json).await
        }
        Command::List { json } => {
            let mut rows = Vec::new();
            for entry in host.playbooks().await {
                let row = match host.prepare_entry(&entry).await {
                    Ok(p) => serde_json::json!({
                        "name": entry.name,
                        "origin": entry.origin.to_string(),
                        "summary": p.description.summary,
                        "capabilities": p.description.capabilities.iter().map(Capability::as_str).collect::<Vec<_>>(),
                    }),
                    Err(e) => serde_json::json!({
                        "name": entry.name,
                        "origin": entry.origin.to_string(),
                        "error": format!("{e:#}"),
                    }),
                };
                rows.push(row);
            }
            if json {
                println!("{}", crate::text::json_for_terminal(&rows)?);
            } else {
                print!("{}", render::playbook_list(&rows));
            }
            // Everything else is listed; a broken playbook still fails the command.
            let broken = rows.iter().any(|row| row.get("error").is_some());
            Ok(if broken { EXIT_FAILED } else { 0 })
        }
        Command::Inspect { playbook, json } => {
            let prepared = prepare_named_or_file(&host, &playbook).await?;
            let grants = host.grants_for(&prepared.source);
            let limits = host.limits_for(&prepared.source.name);
            let d = &prepared.description;
            if json {
                let doc = serde_json::json!({
                    "name": d.name, "summary": d.summary, "version": d.version,
                    "origin": prepared.source.origin.to_string(),
                    "params": d.params.iter().map(|p| serde_json::json!({"name": p.name, "type": crate::params::type_of(p).to_string(), "description": p.description, "default": p.default, "required": p.required})).collect::<Vec<_>>(),
                    "wants": d.capabilities.iter().map(Capability::as_str).collect::<Vec<_>>(),
                    "grants": grants, "limits": limits,
                });
                println!("{}", crate::text::json_for_terminal(&doc)?);
                return Ok(0);
            }
            print!(
                "{}",
                render::inspect(d, &prepared.source.origin.to_string(), &grants, &limits)
            );
            Ok(0)
        }
        Command::Runs { .. }
        | Command::Approvals { .. }
        | Command::Approve { .. }
        | Command::Schedules { .. }
        | Command::Serve { .. }
        | Command::Agent { .. }
        | Command::Nodes { .. }
        | Command::Wit { .. }
        | Command::New { .. }
        | Command::Health { .. }
        | Command::Completions { .. }
        | Command::Man { .. } => {
            unreachable!("handled above")
        }
        Command::Check { json } => {
            let mut report = check::check(&host).await;
            if let Some(location) = &store_location {
                let store = check::check_store(location, config_connections).await;
                if !store.ok {
                    report
                        .problems
                        .push(format!("run store {}: {}", store.location, store.detail));
                }
                report.store = Some(store);
            }
            if json {
                println!("{}", crate::text::json_for_terminal(&report)?);
            } else {
                println!(
                    "config: {}",
                    report
                        .config
                        .as_deref()
                        .unwrap_or("(none: built-in defaults)")
                );
                if let Some(store) = &report.store {
                    println!(
                        "store: {} {} · {}",
                        store.backend, store.location, store.detail
                    );
                }
                for p in &report.playbooks {
                    println!(
                        "  {} {:<14} {} · {}",
                        if p.ok { style::ok() } else { style::err() },
                        crate::text::escape(&p.name),
                        crate::text::escape(&p.origin),
                        crate::text::escape(&p.detail)
                    );
                }
                for problem in &report.problems {
                    eprintln!("problem: {problem}");
                }
                for warning in &report.warnings {
                    eprintln!("warning: {warning}");
                }
                if report.problems.is_empty() && report.warnings.is_empty() {
                    println!("all good");
                }
            }
            Ok(if report.problems.is_empty() {
                0
            } else {
                EXIT_FAILED
            })
        }
    }
}

/// A run's output on stdout (colour only on a terminal). A reader that leaves early
/// (`host run disk-full | head -2`) ends the output, never the run: it goes on to its end and
/// its outcome, stored and in the exit status, is what it would have been.
fn out(text: &str) {
    use std::io::Write;
    let mut stdout = anstream::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("{} writing the run to stdout: {e}", style::warning());
        }
        _ => {}
    }
}

/// The command line as the manual pages name it: runbook-host(1), runbook-host-run(1) … (bind9
/// owns host(1)); the synopsis keeps the `host` the operator types.
fn man_command() -> clap::Command {
    Cli::command().display_name("runbook-host").bin_name("host")
}

/// Generated text to stdout as is; a reader that stops early (`host man | head`) is no error.
fn write_stdout(bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// On the command line (only there) a playbook may be given as a component file: anything with
/// a slash or ending in `.wasm` is a path the operator chose.
/// `host agent`: the node's notifications queue in its own SQLite outbox (never a database
/// server: an agent holds no database credentials).
async fn agent_command(
    host: Host,
    store_location: Option<Location>,
    servers: &[url::Url],
    node: &Option<String>,
    token_file: &Option<PathBuf>,
    max_runs: Option<usize>,
) -> anyhow::Result<u8> {
    let outbox = match store_location {
        Some(Location::Sqlite(path)) => crate::store::open(&Location::Sqlite(path), None).await?,
        Some(Location::Postgres(_)) => anyhow::bail!(ConfigError(
            "host agent keeps only its notification outbox, in a local SQLite file: set `store` \
             (or --store) to a file path; the server stores the runs"
                .into()
        )),
        None => crate::store::open_in_memory()?,
    };
    host.use_outbox(outbox);
    let token = match token_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("--token-file {}: {e}", path.display())))?
            .trim_end_matches(['\n', '\r'])
            .to_string(),
        None => std::env::var("RUNBOOK_AGENT_TOKEN").map_err(|_| {
            ConfigError("the node's token: --token-file FILE or RUNBOOK_AGENT_TOKEN".into())
        })?,
    };
    let node = match node {
        Some(node) => node.clone(),
        None => rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned(),
    };
    let max_runs = max_runs.unwrap_or(host.config.server.max_concurrent_runs);
    crate::fleet::agent::run(
        host,
        crate::fleet::agent::AgentOptions {
            servers: servers.to_vec(),
            node,
            token,
            max_runs,
        },
    )
    .await?;
    Ok(0)
}

async fn prepare_named_or_file(host: &Host, name_or_path: &str) -> anyhow::Result<Prepared> {
    if name_or_path.contains('/') || name_or_path.ends_with(".wasm") {
        host.prepare_file(std::path::Path::new(name_or_path)).await
    } else {
        host.prepare(name_or_path).await
    }
}

async fn notify_command(host: &Host, action: NotifyAction) -> anyhow::Result<u8> {
    let notifier = host.notifier();
    let secs = std::time::Duration::from_secs;
    match action {
        NotifyAction::Test { channel, wait } => {
            let id = notifier
                .send_test(&channel)
                .await
                .map_err(|e| ConfigError(e.to_string()))?;
            notifier.start();
            let row = notifier.wait_for_message(id, secs(wait)).await?;
            notifier.stop(secs(5)).await;
            print!("{}", render::deliveries(std::slice::from_ref(&row)));
            Ok(if row.state == "delivered" {
                0
            } else {
                EXIT_FAILED
            })
        }
        NotifyAction::List { state, limit, json } => {
            if let Some(state) = &state
                && !["pending", "delivered", "failed"].contains(&state.as_str())
            {
                return Err(ConfigError(format!(
                    "--state {state:?}: expected pending, delivered or failed"
                ))
                .into());
            }
            let rows = notifier
                .store()
                .outbox_list(state.as_deref(), limit)
                .await?;
            if json {
                println!("{}", crate::text::json_for_terminal(&rows)?);
            } else if rows.is_empty() {
                println!("the outbox in {} is empty", notifier.store().describe());
            } else {
                print!("{}", render::outbox(&rows));
            }
            Ok(0)
        }
        NotifyAction::Flush { wait } => {
            for (channel, problem) in notifier.problems() {
                eprintln!(
                    "{} channel {channel} cannot deliver: {problem}",
                    style::warning()
                );
            }
            notifier.start();
            let pending = notifier.wait_for_all(secs(wait)).await?;
            notifier.stop(secs(5)).await;
            if pending.is_empty() {
                println!("nothing pending");
                return Ok(0);
            }
            for (channel, count) in &pending {
                println!("{channel}: {count} still pending");
            }
            Ok(EXIT_FAILED)
        }
    }
}

async fn approvals_command(host: &Host, command: &Command) -> anyhow::Result<u8> {
    use crate::approval::cli;
    let approvals = host
        .approvals()
        .ok_or_else(|| anyhow::anyhow!("approvals are not available here"))?;
    match command {
        Command::Approvals { json } => {
            let pending = approvals.store().approvals(None).await?;
            if *json {
                println!("{}", crate::text::json_for_terminal(&pending)?);
            } else {
                print!("{}", cli::table(&pending));
            }
            Ok(0)
        }
        Command::Approve {
            target,
            reject,
            reason,
        } => {
            let (code, line) = cli::approve(&approvals, target, *reject, reason.clone()).await?;
            if code == 0 {
                println!("{}", crate::text::escape(&line));
            } else {
                eprintln!("{} {}", style::error(), crate::text::escape(&line));
            }
            Ok(code)
        }
        _ => unreachable!("only approvals commands"),
    }
}

async fn show_runs(
    store: &Store,
    action: Option<&RunsAction>,
    limit: usize,
    playbook: Option<&str>,
    json: bool,
) -> anyhow::Result<u8> {
    match action {
        None => {
            let runs = store.list(limit, playbook).await?;
            if json {
                println!("{}", crate::text::json_for_terminal(&runs)?);
            } else if runs.is_empty() {
                println!("no runs yet in {}", store.describe());
            } else {
                print!("{}", render::runs_table(&runs));
            }
            Ok(0)
        }
        Some(RunsAction::Show { id, json }) => {
            let Some(run) = store.get(id).await? else {
                eprintln!("{} no run {id:?} in {}", style::error(), store.describe());
                eprintln!("hint: `host runs` lists the recent ones");
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
            let Some(run) = store.get(id).await? else {
                eprintln!("{} no run {id:?} in {}", style::error(), store.describe());
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
            let Some(run) = store.get(id).await? else {
                eprintln!("{} no run {id:?} in {}", style::error(), store.describe());
                eprintln!("hint: `host runs` lists the recent ones");
                return Ok(EXIT_USAGE);
            };
            print!("{}", crate::postmortem::render_from(store, &run).await);
            Ok(0)
        }
    }
}
