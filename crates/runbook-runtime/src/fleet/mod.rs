//! The fleet: `host agent` on each machine runs the runs targeted at its node. The agent dials
//! out to the servers (no inbound port on the node) and long-polls for its runs; the server
//! keeps them in the store like any run. Capabilities are local: a run never moves to another
//! node, and the node's own host.toml is the ceiling of what a run may do there.
//!
//! This module holds what both sides agree on: node names, agent identities and the JSON of
//! the agent API (`/agent/v1/…`). The server's side is `server/fleet.rs`, the agent's `agent.rs`.

pub mod act;
pub mod agent;
mod artifacts;
pub mod remote;
pub(crate) mod uplink;

// Node names are checked where host.toml is read too (`config`), so they live in core; so do
// the agent API's bodies, which the server parses from agents (and `fuzz/` reaches there).
pub use crate::node::{MAX_NODE_NAME, check_node_name};
pub use runbook_core::fleet::*;

/// A fresh agent session id (random, from the kernel).
pub fn new_session() -> String {
    use std::io::Read;
    let mut bytes = [0u8; SESSION_HEX / 2];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("reading /dev/urandom");
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_hex() {
        assert!(check_session(&new_session()).is_ok());
        assert!(check_session("../x").is_err());
    }
}
