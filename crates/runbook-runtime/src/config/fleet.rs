//! `[fleet]`: how long node-bound runs wait, and how each node's agent proves its node.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use serde::Deserialize;

use super::Secret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct FleetConfig {
    /// How long a run for a node waits for that node's agent before it ends `undeliverable`
    /// (and ops are told). It never runs anywhere else.
    pub node_wait_secs: u64,
    /// The longest an agent's poll is held open when nothing is queued for it.
    pub poll_secs: u64,
    /// Runs waiting for any node's agent, all nodes together; beyond it a node-bound run is
    /// refused (503, retry later). Node-bound runs never count against `[server]
    /// queue-limit`, so a node that is down cannot keep this server's own runs out.
    pub queue_limit: usize,
    /// Runs waiting for one node's agent.
    pub queue_limit_per_node: usize,
    /// `[fleet.nodes.<name>] token = { env = "…" }`: the bearer token each node's agent
    /// presents. A token names one node: an agent can take only its own node's runs.
    pub nodes: BTreeMap<String, NodeConfig>,
    /// PEM: the CA of the nodes' client certificates (mutual TLS; needs `[server] tls`).
    /// With it, every agent call must also present a certificate from this CA whose
    /// subjectAltName names the node its token is for.
    pub client_ca: Option<PathBuf>,
    /// How an agent proves its node (see [`NodeAuth`]); unset: a token, and a certificate as
    /// well when `client-ca` is set.
    pub node_auth: Option<NodeAuth>,
}

/// `[fleet] node-auth`: what an agent presents to be its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum NodeAuth {
    /// The node's bearer token.
    #[serde(rename = "token")]
    Token,
    /// The token, and a client certificate (from `client-ca`) naming the same node.
    #[serde(rename = "token+certificate")]
    TokenAndCertificate,
    /// The client certificate alone: it names the node; nodes have no token.
    #[serde(rename = "certificate")]
    Certificate,
}

impl NodeAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeAuth::Token => "token",
            NodeAuth::TokenAndCertificate => "token+certificate",
            NodeAuth::Certificate => "certificate",
        }
    }
}

impl FleetConfig {
    /// `node-auth` as written, or what `client-ca` implies without it.
    pub fn node_auth(&self) -> NodeAuth {
        match (self.node_auth, &self.client_ca) {
            (Some(auth), _) => auth,
            (None, Some(_)) => NodeAuth::TokenAndCertificate,
            (None, None) => NodeAuth::Token,
        }
    }

    /// A node-auth that fits the rest of `[fleet]`: a certificate needs the CA to check it
    /// against, a CA that nothing would check is a mistake, and with certificates alone a
    /// node's token would be ignored (refused rather than left to look like it counts).
    pub(super) fn check_node_auth(&self) -> Result<()> {
        let auth = self.node_auth();
        match (auth, &self.client_ca) {
            (NodeAuth::Token, Some(_)) => anyhow::bail!(
                "[fleet] node-auth = \"token\" with client-ca: the certificates would not be \
                 checked; use \"token+certificate\" or remove client-ca"
            ),
            (NodeAuth::TokenAndCertificate | NodeAuth::Certificate, None) => anyhow::bail!(
                "[fleet] node-auth = \"{}\" needs [fleet] client-ca (the CA of the nodes' \
                 client certificates)",
                auth.as_str()
            ),
            _ => {}
        }
        for (node, config) in &self.nodes {
            match (auth, &config.token) {
                (NodeAuth::Certificate, Some(_)) => anyhow::bail!(
                    "[fleet.nodes.{node}] token: node-auth = \"certificate\" takes no token \
                     (the node's client certificate is its identity); remove it"
                ),
                (NodeAuth::Token | NodeAuth::TokenAndCertificate, None) => anyhow::bail!(
                    "[fleet.nodes.{node}] needs a token (node-auth = \"{}\")",
                    auth.as_str()
                ),
                _ => {}
            }
        }
        Ok(())
    }
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            node_wait_secs: 300,
            poll_secs: 25,
            queue_limit: 256,
            queue_limit_per_node: 32,
            nodes: BTreeMap::new(),
            client_ca: None,
            node_auth: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeConfig {
    /// None only with `node-auth = "certificate"`.
    pub token: Option<Secret>,
}
