//! One module per WIT interface; each implements that interface's generated `Host` trait on
//! `RunState`, does its own grant check first, and records every call in the timeline.

pub mod docker;
pub mod fs_read;
pub mod http;
pub mod notify;
pub mod report;

impl crate::bindings::runbook::host::types::Host for crate::state::RunState {}
