//! A fleet node's mutating calls, decided by the server: before each one the agent asks
//! `POST /agent/v1/runs/{id}/act` (its node's token; the run must be its session's) and the
//! server answers with the freeze switch and its own budgets, counted in the shared store
//! (`per = "node"` counts under the node's name). Asked per call, not carried in the poll
//! answer, so a freeze or a spent budget reaches a run already going. No answer: the call is
//! refused (see `Safety::gate`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow};
use serde::{Deserialize, Serialize};

use super::{Action, Verdict};
use crate::fleet::AgentId;
use crate::fleet::uplink::Uplink;

/// The server's side of a node's gate.
#[async_trait::async_trait]
pub trait AskServer: Send + Sync {
    async fn decide(&self, action: &Action) -> Result<Verdict>;
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ActRequest {
    pub agent: AgentId,
    pub action: Action,
}

/// The answer is the `Verdict` itself (`{"decision": "go"}` …).
pub type ActResponse = Verdict;

const ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks through the agent's uplink (its servers, its token).
pub struct ServerGate(pub Arc<Uplink>);

#[async_trait::async_trait]
impl AskServer for ServerGate {
    async fn decide(&self, action: &Action) -> Result<Verdict> {
        let request = ActRequest {
            agent: self.0.agent.clone(),
            action: action.clone(),
        };
        self.0
            .post::<ActResponse>(
                &["agent", "v1", "runs", &action.run_id, "act"],
                &request,
                ASK_TIMEOUT,
            )
            .await?
            .map_err(|refused| {
                anyhow!(
                    "the server refused ({}): {}",
                    refused.status,
                    refused.message
                )
            })
    }
}
