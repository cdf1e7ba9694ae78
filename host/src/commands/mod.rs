//! One module per subcommand (or family of them): each defines its arguments (`…Args`, a clap
//! `Args` whose `run` does the command) and returns the exit code. What they share is here and in
//! `context` (the config, compile cache, run store and `Host` of the commands that load them).

use std::path::Path;

use crate::run::{Host, Prepared};

pub mod access;
pub mod agent;
pub mod approvals;
pub mod breaker;
pub mod check;
pub mod context;
pub mod digest;
pub mod docs;
mod globals;
pub mod health;
pub mod inspect;
pub mod list;
pub mod maintenance;
pub mod nodes;
pub mod notify;
pub mod registry;
pub mod run;
pub mod runs;
pub mod safety;
pub mod scaffold;
pub mod schedules;
pub mod serve;
pub mod test;

pub use context::Context;
pub use globals::Globals;

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_ESCALATED: u8 = 3;

/// A mistake in the command or the config: exit 2 with a hint, like a clap usage error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// On the command line (only there) a playbook may be given as a component file: anything with
/// a slash or ending in `.wasm` is a path the operator chose.
pub async fn prepare_named_or_file(host: &Host, name_or_path: &str) -> anyhow::Result<Prepared> {
    if name_or_path.contains('/') || name_or_path.ends_with(".wasm") {
        host.prepare_file(Path::new(name_or_path)).await
    } else {
        host.prepare(name_or_path).await
    }
}

/// Generated text to stdout as is; a reader that stops early (`host man | head`) is no error.
pub fn write_stdout(bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
