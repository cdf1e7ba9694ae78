//! The agent API's `POST /agent/v1/runs/{id}/act`: a node asks the server before each
//! mutating call (`safety::remote`), through the agent's uplink (its servers, its token).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow};
use serde::{Deserialize, Serialize};

use super::AgentId;
use super::uplink::Uplink;
use crate::safety::remote::AskServer;
use crate::safety::{Action, Verdict};

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
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
