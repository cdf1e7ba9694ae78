//! The runbook host: runs operators' runbooks as sandboxed WebAssembly playbooks that reach the
//! world only through the capabilities (and grants) the host lends them.

pub mod approval;
pub mod bindings;
pub mod cancel;
pub mod caps;
pub mod catalog;
pub mod check;
pub mod config;
pub mod description;
pub mod engine;
pub mod fleet;
pub mod health;
pub mod incident;
pub mod logging;
pub mod notify;
pub mod panics;
pub mod params;
pub mod policy;
pub mod postmortem;
pub mod records;
pub mod redact;
pub mod render;
pub mod replay;
pub mod run;
pub mod scaffold;
pub mod schedule;
pub mod server;
pub mod severity;
pub mod signing;
pub mod state;
pub mod store;
pub mod style;
pub mod text;
pub mod timeline;
