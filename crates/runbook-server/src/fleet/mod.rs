//! The server's side of the fleet (the agent's is `runbook_runtime::fleet`): the agent API
//! under `/agent/v1/` and `/nodes`. Each agent presents its node's bearer token; the token
//! names the node, so an agent can only take, renew, write and finish its own node's runs. An
//! agent's writes are accepted only while its session holds the run in the store: a run
//! marked `lost` after its lease, or an agent restarted (a new session), is answered 409 and
//! the agent stops it.
//!
//! `nodes`: which nodes exist, their tokens, the intake's bound on runs waiting for them;
//! `agent`: the endpoints; `outcome`: what the store keeps of a node's report.

pub(crate) mod agent;
pub(crate) mod artifacts;
mod outcome;
