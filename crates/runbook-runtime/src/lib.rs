//! The runbook host's runtime: one wasmtime engine and its compile cache, the WIT bindings of
//! every contract version, the capabilities a playbook is lent (docker, http, fs-read, notify,
//! report, approval), run execution with its deadline, memory cap and grants, replay, the
//! catalog of playbooks, host.toml (config), notifications, approvals, schedules, the fleet
//! agent and report rendering.
//!
//! Imports `runbook-store` and `runbook-core`; never the server (`runbook-server`) or the CLI:
//! a run executes the same from `host run`, a webhook, a schedule or a fleet agent.

pub mod approval;
pub mod audit;
pub mod bindings;
pub mod calls;
pub mod cancel;
pub mod caps;
pub mod catalog;
pub mod config;
pub mod description;
pub mod digest;
pub mod engine;
pub mod fleet;
pub mod incident;
pub mod invariants;
pub mod notify;
pub mod oci;
pub mod params;
pub mod postmortem;
pub mod render;
pub mod replay;
pub mod run;
pub mod safety;
pub mod schedule;
pub mod secret;
pub mod server_link;
pub mod state;
pub mod style;
pub mod tape;

// The layers below, under the names this crate's files use.
pub(crate) use runbook_core::{
    node, panics, policy, records, redact, severity, signing, text, timeline,
};
pub(crate) use runbook_store as store;
