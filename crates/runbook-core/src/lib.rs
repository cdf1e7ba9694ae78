//! The bottom layer of the runbook host: the records a run leaves (runs, alerts, approvals and
//! their status enums), the timeline's events, severities, text escaping and redaction, grants
//! (policy) and webhook signatures. Plain data and pure functions: no I/O, no database, no
//! wasmtime, no HTTP.
//!
//! Must not import any other `runbook-*` crate: every layer above builds on these types.

pub mod access;
pub mod figures;
pub mod mutations;
pub mod node;
pub mod panics;
pub mod policy;
pub mod records;
pub mod redact;
pub mod safety;
pub mod severity;
pub mod signing;
pub mod text;
pub mod timeline;
