//! Write runbook-host playbooks in Rust as plain functions of the incident.
//!
//! ```ignore
//! use runbook_sdk::prelude::*;
//!
//! fn describe() -> Description {
//!     Description::new("hello", "Says hello on the ops channel")
//!         .param("name", "who to greet", Some("world"))
//!         .wants(Capability::Notify)
//! }
//!
//! fn run(incident: Incident) -> Result<Outcome, Error> {
//!     let name = incident.param("name").unwrap_or("world");
//!     notify::send("ops", &Message::new(format!("hello {name}")))?;
//!     Ok(Outcome::resolved("greeted"))
//! }
//!
//! runbook_sdk::export_playbook!(describe, run);
//! ```
//!
//! Capability errors are `Error` values a playbook branches on (`Error::Unavailable(_)` means
//! the backend is not there; `Error::Denied(_)` means the operator did not grant the call;
//! `Error::OverBudget(info)` means an action budget refused a mutating call: nothing was done,
//! escalate naming `info.budget` and when it frees, `info.frees_in_secs`).

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "playbook",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_playbook_world",
        default_bindings_module: "runbook_sdk::bindings",
    });
}

pub mod approval;
mod helpers;
pub use helpers::{human_bytes, human_secs};

pub use bindings::runbook::host::types::{
    Alert, Capability, Description, Error, Incident, Outcome, OverBudgetInfo, ParamSpec, Severity,
    Status, TriggerKind,
};

/// Capability interfaces, each a module of plain functions.
pub use bindings::runbook::host::{docker, http, notify, report};

/// `fs-read`: the interface's functions, plus `largest_each`.
pub mod fs {
    pub use crate::bindings::runbook::host::fs_read::*;

    /// Most paths the host takes in one `largest_many` call.
    pub const MAX_LARGEST_PATHS: usize = 32;

    /// `largest` of every path, the walks overlapping in the host (`largest_many`, in calls of
    /// at most `MAX_LARGEST_PATHS`): one result per path, in order. `Err` only when a whole call
    /// was refused (e.g. the run's deadline), not for one path that could not be walked.
    pub fn largest_each<S: AsRef<str>>(
        paths: &[S],
        depth: u32,
        limit: u32,
    ) -> Result<Vec<Result<LargestResult, crate::Error>>, crate::Error> {
        let mut results = Vec::with_capacity(paths.len());
        for chunk in paths.chunks(MAX_LARGEST_PATHS) {
            let chunk: Vec<String> = chunk.iter().map(|p| p.as_ref().to_string()).collect();
            results.extend(largest_many(&chunk, depth, limit)?);
        }
        Ok(results)
    }
}

pub use notify::Message;

pub mod prelude {
    pub use crate::{
        Alert, Capability, Description, Error, Incident, Message, Outcome, OverBudgetInfo,
        ParamSpec, Severity, Status, TriggerKind, approval, docker, fs, http, notify, report,
    };
    pub use crate::{debug, error, info, warn};
}

/// Exports a playbook made of two functions: `describe() -> Description` and
/// `run(Incident) -> Result<Outcome, Error>`.
#[macro_export]
macro_rules! export_playbook {
    ($describe:path, $run:path) => {
        struct __RunbookPlaybook;
        impl $crate::bindings::Guest for __RunbookPlaybook {
            fn describe() -> $crate::Description {
                $describe()
            }
            fn run(incident: $crate::Incident) -> ::core::result::Result<$crate::Outcome, $crate::Error> {
                $run(incident)
            }
        }
        $crate::bindings::__export_playbook_world!(__RunbookPlaybook with_types_in $crate::bindings);
    };
}

/// `info!("{} files", n)` writes an info line to the run's timeline.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::report::log($crate::report::Level::Info, &format!($($arg)*)) };
}
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::report::log($crate::report::Level::Warn, &format!($($arg)*)) };
}
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::report::log($crate::report::Level::Error, &format!($($arg)*)) };
}
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::report::log($crate::report::Level::Debug, &format!($($arg)*)) };
}
