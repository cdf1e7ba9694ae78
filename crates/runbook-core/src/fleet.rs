//! What the fleet's server and agents agree on: agent identities, session ids, the JSON bodies
//! of the agent API (`/agent/v1/…`) and the statuses a run may end with on a node. The server
//! parses these from agents, so they live here, next to the parsers the fuzz targets reach.

use serde::{Deserialize, Serialize};

use crate::records::{Artifact, QueuedRun};
use crate::timeline::Event;

/// An agent session id: 32 hex digits, new at every agent start.
pub const SESSION_HEX: usize = 32;

/// `host:port` → `host` (Prometheus' `instance` label); `[v6]:port` → `v6`; no port → as is.
pub fn host_of(instance: &str) -> &str {
    if let Some(rest) = instance.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match instance.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => instance,
    }
}

pub fn check_session(session: &str) -> Result<(), String> {
    if session.len() == SESSION_HEX && session.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(format!("an agent session is {SESSION_HEX} hex digits"))
    }
}

/// The runner a node's runs are held by in the store: a restarted agent is a new runner, so
/// it can neither renew nor finish what the previous process held.
pub fn runner_of(node: &str, session: &str) -> String {
    format!("agent/{node}/{session}")
}

/// Who is calling: sent with every agent request. The node must be the one the bearer token
/// names.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentId {
    pub node: String,
    pub session: String,
    pub version: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PollRequest {
    pub agent: AgentId,
    /// Runs the agent can start now.
    pub room: usize,
    /// How long the server may hold the request when nothing is queued.
    pub wait_ms: u64,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PollResponse {
    pub runs: Vec<QueuedRun>,
    /// The lease the server holds the runs under: heartbeat well within it.
    pub lease_ms: u64,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HeartbeatRequest {
    pub agent: AgentId,
    /// The runs executing on the agent now.
    pub running: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HeartbeatResponse {
    /// Of `running`, the runs still the agent's; any other was taken from it (lost after its
    /// lease, or ended): the agent stops it and writes nothing more for it.
    pub held: Vec<String>,
    pub lease_ms: u64,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventsUpload {
    pub agent: AgentId,
    /// The number of the first event in `events` (the run's timeline position).
    pub from: usize,
    pub events: Vec<Event>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FinishUpload {
    pub agent: AgentId,
    pub status: String,
    pub summary: String,
    pub actions: Vec<String>,
    pub reason: Option<String>,
    pub ended_at: String,
    pub timings: serde_json::Value,
    pub grants: serde_json::Value,
    pub events: Vec<Event>,
    pub artifacts: Vec<Artifact>,
}

/// The statuses a run may end with on a node (anything else from an agent is refused).
pub const END_STATUSES: &[&str] = &[
    "resolved",
    "mitigated",
    "escalated",
    "no-action",
    "failed",
    "interrupted",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_labels_lose_their_port() {
        assert_eq!(host_of("node-a:9100"), "node-a");
        assert_eq!(host_of("node-a"), "node-a");
        assert_eq!(host_of("10.0.0.7:9100"), "10.0.0.7");
        assert_eq!(host_of("[fd00::7]:9100"), "fd00::7");
        assert_eq!(
            host_of("fd00::7"),
            "fd00::7",
            "a bare v6 address has no port"
        );
        assert_eq!(host_of("web.example:http"), "web.example:http");
    }
}

/// `POST /agent/v1/artifacts/{digest}` and `…/{digest}/component`: a node that cannot reach
/// the registry asks its server for a playbook artifact the server named by digest. The node
/// checks everything it gets against that digest before it stores or compiles it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArtifactRequest {
    pub agent: AgentId,
}

/// The artifact's manifest (base64 of its exact bytes, whose SHA-256 is the digest) and the
/// cosign signatures the server found beside it; the component comes from `…/component`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArtifactManifest {
    pub manifest: String,
    pub signatures: Vec<ArtifactSignature>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArtifactSignature {
    /// The simple-signing payload, base64.
    pub payload: String,
    /// The DER ECDSA signature, base64.
    pub signature: String,
}
