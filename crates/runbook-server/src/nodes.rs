//! The fleet's nodes as host.toml names them: each node's bearer token (replaced on SIGHUP),
//! how long runs wait for a node, and the intake's door for runs bound to one. State only:
//! the agent API reads it, it imports no handler.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use crate::admission::Refusal;
use crate::config::{FleetConfig, NodeAuth};
use crate::store::Store as RunStore;

/// (node, its token) of every configured node; replaced on SIGHUP. The intake reads it too:
/// a node not listed has no agent that could ever take its runs. With `node-auth =
/// "certificate"` every token is empty, and an empty token never matches.
pub type NodeTokens = Arc<std::sync::RwLock<Vec<(String, Vec<u8>)>>>;

pub struct Fleet {
    pub(super) tokens: NodeTokens,
    pub node_wait: Duration,
    pub(super) poll_max: Duration,
    /// Cancelled when the server starts shutting down: held polls answer at once, so the
    /// graceful shutdown does not wait out a long poll.
    pub closing: CancellationToken,
    /// `[fleet] node-auth`: token, certificate, or both (fixed for the process: a reload
    /// refuses to change it, as it refuses `client-ca`).
    pub(super) auth: NodeAuth,
}

impl Fleet {
    pub fn from_config(config: &FleetConfig) -> anyhow::Result<Self> {
        Ok(Self {
            tokens: Arc::new(std::sync::RwLock::new(Self::tokens_of(config)?)),
            node_wait: Duration::from_secs(config.node_wait_secs),
            poll_max: Duration::from_secs(config.poll_secs.max(1)),
            closing: CancellationToken::new(),
            auth: config.node_auth(),
        })
    }

    /// A reloaded host.toml's node tokens (checked before anything is swapped).
    pub fn tokens_of(config: &FleetConfig) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let mut tokens = Vec::new();
        for (node, node_config) in &config.nodes {
            let Some(token) = &node_config.token else {
                // node-auth = "certificate" (Config::load refuses a tokenless node otherwise).
                tokens.push((node.clone(), Vec::new()));
                continue;
            };
            let token = token
                .load()
                .map_err(|e| anyhow::anyhow!("[fleet.nodes.{node}] token: {e:#}"))?;
            anyhow::ensure!(
                token.len() >= 16,
                "[fleet.nodes.{node}] token: at least 16 characters (it is all that stands \
                 between anyone who can reach the server and that node's runs)"
            );
            tokens.push((node.clone(), token.into_bytes()));
        }
        Ok(tokens)
    }

    pub fn set_tokens(&self, tokens: Vec<(String, Vec<u8>)>) {
        *self.tokens.write().unwrap() = tokens;
    }

    /// What the intake checks a node-bound run against (the same tokens, reloaded with them).
    pub fn intake(&self, config: &FleetConfig) -> NodeIntake {
        NodeIntake {
            nodes: self.tokens.clone(),
            queue_limit: config.queue_limit,
            per_node: config.queue_limit_per_node,
        }
    }

    /// The node whose token the request carries. Every token is compared (in constant time),
    /// so timing does not say which one nearly matched.
    pub(super) fn node_of(&self, headers: &HeaderMap) -> Option<String> {
        let given = headers
            .get(header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?
            .as_bytes();
        let mut found = None;
        for (node, token) in self.tokens.read().unwrap().iter() {
            if !token.is_empty() && bool::from(token.as_slice().ct_eq(given)) {
                found = Some(node.clone());
            }
        }
        found
    }

    /// Every configured node (what a certificate may name).
    pub(super) fn nodes(&self) -> Vec<String> {
        let tokens = self.tokens.read().unwrap();
        tokens.iter().map(|(node, _)| node.clone()).collect()
    }
}

/// The door for runs bound to a node: the node must be configured (else no agent could ever
/// take the run: refused, not queued to end `undeliverable` and page ops), and runs waiting
/// for nodes have their own bound, per node and in total, apart from `[server] queue-limit`.
pub struct NodeIntake {
    nodes: NodeTokens,
    queue_limit: usize,
    per_node: usize,
}

impl NodeIntake {
    pub fn knows(&self, node: &str) -> bool {
        self.nodes
            .read()
            .unwrap()
            .iter()
            .any(|(name, _)| name == node)
    }

    /// Whether one more run may wait for `node`. Counted in the store (every replica's
    /// admissions), so concurrent admissions can pass the bound by the few in flight.
    pub async fn check(&self, store: &RunStore, node: &str) -> Result<(), Refusal> {
        if !self.knows(node) {
            return Err(Refusal::UnknownNode(format!(
                "node {node} is not one of this server's fleet nodes (configured: {}); \
                 add [fleet.nodes.{node}] with its agent's token to host.toml",
                self.configured()
            )));
        }
        let depths = store
            .queue_depths(Some(node))
            .await
            .map_err(|e| Refusal::store("counting the runs waiting for nodes", e))?;
        if depths.node >= self.per_node {
            return Err(Refusal::NodeBusy(format!(
                "{} runs already wait for node {node}'s agent ([fleet] queue-limit-per-node = \
                 {}); retry later",
                depths.node, self.per_node
            )));
        }
        if depths.nodes >= self.queue_limit {
            return Err(Refusal::NodeBusy(format!(
                "{} runs already wait for fleet nodes ([fleet] queue-limit = {}); retry later",
                depths.nodes, self.queue_limit
            )));
        }
        Ok(())
    }

    fn configured(&self) -> String {
        let nodes = self.nodes.read().unwrap();
        if nodes.is_empty() {
            return "none".into();
        }
        nodes
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}
