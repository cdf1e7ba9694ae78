//! A fleet node's mutating calls, decided by the server: before each one the agent asks
//! `POST /agent/v1/runs/{id}/act` (its node's token; the run must be its session's) and the
//! server answers with the freeze switch and its own budgets, counted in the shared store
//! (`per = "node"` counts under the node's name). Asked per call, not carried in the poll
//! answer, so a freeze or a spent budget reaches a run already going. No answer: the call is
//! refused (see `Safety::gate`). The request and the agent's side of the call are the fleet's
//! (`fleet::act`): the rails do not know how a node reaches its server.

use anyhow::Result;

use super::{Action, Verdict};

/// The server's side of a node's gate.
#[async_trait::async_trait]
pub trait AskServer: Send + Sync {
    async fn decide(&self, action: &Action) -> Result<Verdict>;
}
