//! The bottom layer of the runbook host: the records a run leaves (runs, alerts, approvals and
//! their status enums), the timeline's events, severities, text escaping and redaction, grants
//! (policy), roles, identities, API tokens and audit events (access), webhook signatures, and
//! the parsers of what callers send (alerts, route matchers and templates, Slack and Telegram
//! presses, agent bodies, cron specs): each a pure function of its input, so `fuzz/` reaches
//! every one without building wasmtime. Plain data and pure functions: no I/O, no database, no
//! wasmtime, no HTTP.
//!
//! Must not import any other `runbook-*` crate: every layer above builds on these types.

pub mod access;
pub mod alert;
pub mod cron;
pub mod figures;
pub mod fleet;
pub mod mutations;
pub mod node;
pub mod panics;
pub mod policy;
pub mod records;
pub mod redact;
pub mod routing;
pub mod safety;
pub mod severity;
pub mod signing;
pub mod slack;
pub mod telegram;
pub mod text;
pub mod timeline;
