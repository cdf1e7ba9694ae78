//! `host agent`: a fleet node. It dials out to the server, executes the runs routed to this node
//! under this machine's host.toml, and streams their timelines back, until SIGTERM.

use std::path::PathBuf;

use clap::Args;

use super::Globals;
use crate::commands::{ConfigError, Context};
use crate::store::Location;

#[derive(Args)]
#[command(
    after_help = "The agent dials out (no inbound port): it long-polls the server for runs whose \
    route names this node, runs them under THIS machine's host.toml (its grants and limits are \
    the ceiling), and streams their timelines back. The server lists the node's token under \
    [fleet.nodes.NAME].\n\nExamples:\n  RUNBOOK_AGENT_TOKEN=… host agent --server http://runbook.internal:9095 --node web01\n  host agent --server https://a:9095,https://b:9095 --node web01 --token-file /etc/runbook/agent-token\n  host agent --server https://runbook.internal:9095 --node web01 --ca-file /etc/runbook/ca.pem \\\n      --client-cert /etc/runbook/web01.pem --client-key /etc/runbook/web01.key"
)]
pub struct AgentArgs {
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
    #[command(flatten)]
    ca: super::globals::ServerCa,
    /// PEM: this node's client certificate, for a server with `[fleet] client-ca` (mutual
    /// TLS); its subjectAltName must name the node
    #[arg(
        long,
        env = "RUNBOOK_AGENT_CERT",
        value_name = "FILE",
        requires = "client_key"
    )]
    client_cert: Option<PathBuf>,
    /// PEM: the client certificate's private key
    #[arg(
        long,
        env = "RUNBOOK_AGENT_KEY",
        value_name = "FILE",
        requires = "client_cert"
    )]
    client_key: Option<PathBuf>,
}

impl AgentArgs {
    /// The node's notifications queue in its own SQLite outbox (never a database server: an
    /// agent holds no database credentials).
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        self.ca
            .apply(self.client_cert.clone().zip(self.client_key.clone()))?;
        let Context { host, store, .. } = Context::for_service(globals)?;
        let outbox = match store {
            Some(Location::Sqlite(path)) => {
                crate::store::open(&Location::Sqlite(path), None).await?
            }
            Some(Location::Postgres(_)) => anyhow::bail!(ConfigError(
                "host agent keeps only its notification outbox, in a local SQLite file: set \
                 `store` (or --store) to a file path; the server stores the runs"
                    .into()
            )),
            None => crate::store::open_in_memory()?,
        };
        host.use_outbox(outbox);
        let token = match &self.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("--token-file {}: {e}", path.display())))?
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
            ),
            None => std::env::var("RUNBOOK_AGENT_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
        };
        // Without a token the client certificate is the node's only proof (a server with
        // `[fleet] node-auth = "certificate"`); with neither there is nothing to present.
        if token.is_none() && self.client_cert.is_none() {
            anyhow::bail!(ConfigError(
                "the node's token: --token-file FILE or RUNBOOK_AGENT_TOKEN (or, for a server \
                 with [fleet] node-auth = \"certificate\", --client-cert/--client-key alone)"
                    .into()
            ));
        }
        let node = match self.node {
            Some(node) => node,
            None => rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned(),
        };
        let max_runs = self
            .max_runs
            .unwrap_or(host.config.server.max_concurrent_runs);
        crate::fleet::agent::run(
            host,
            crate::fleet::agent::AgentOptions {
                servers: self.server,
                node,
                token,
                max_runs,
            },
        )
        .await?;
        Ok(0)
    }
}
