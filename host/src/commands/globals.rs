//! The options every subcommand takes, parsed by src/cli.rs and handed to the commands.

use std::path::PathBuf;

use clap::Args;

// The options every subcommand takes (`global`): where the config, playbooks, compile cache and
// run store are, and how to log. (A `//` comment: a doc comment here would become the CLI's about.)
#[derive(Args)]
pub struct Globals {
    /// Config file [default: ./host.toml when present, else built-in defaults]
    #[arg(long, global = true, env = "RUNBOOK_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Extra directory of *.wasm playbooks (repeatable); added to the config's plugin-dirs
    #[arg(long = "plugin-dir", global = true, value_name = "DIR")]
    pub plugin_dirs: Vec<PathBuf>,
    /// Compiled-component cache [default: ~/.cache/runbook-host/components]
    #[arg(long, global = true, env = "RUNBOOK_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile every time instead of using the cache
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// Run store: a SQLite file, or a PostgreSQL URL (postgres://user@host/db) shared by
    /// several `host serve` replicas [default: ~/.local/state/runbook-host/runs.sqlite3]
    #[arg(long, global = true, env = "RUNBOOK_STORE", value_name = "FILE|URL")]
    pub store: Option<String>,
    /// Log filter, RUST_LOG-style: error, warn, info, debug, or per module
    /// (`runbook_server=debug,info`) [default: info for serve and agent, else warn]
    #[arg(long, global = true, env = "RUNBOOK_LOG", value_name = "FILTER")]
    pub log_level: Option<String>,
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
    pub log_format: crate::logging::LogFormat,
}

/// How a command that calls a `host serve` checks it over HTTPS.
#[derive(Args, Clone, Default)]
pub struct ServerCa {
    /// PEM file of the CA(s) the server's certificate must chain to: pins the server (the
    /// system's trust store is then not used) [default: the system's trust store]
    #[arg(long, env = "RUNBOOK_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

impl ServerCa {
    /// Applies to every call this process makes to a server; `identity` for an agent's
    /// client certificate.
    pub fn apply(&self, identity: Option<(PathBuf, PathBuf)>) -> anyhow::Result<()> {
        runbook_runtime::server_link::set(runbook_runtime::server_link::ServerLink {
            ca_file: self.ca_file.clone(),
            client_identity: identity,
        })
        .map_err(|e| crate::commands::ConfigError(format!("{e:#}")).into())
    }
}
