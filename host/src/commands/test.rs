//! `host test`: replay a playbook against recorded fixtures, with no Docker, files or network
//! touched (the replay itself is `replay::cli`).

use std::path::PathBuf;

use clap::Args;

use super::Globals;
use crate::commands::{Context, prepare_named_or_file};

#[derive(Args)]
#[command(
    after_help = "Examples:\n  host test disk-full --fixture plugins/disk-full/tests/full.json\n  host test --plugin my-playbook.wasm --fixture tests/healthy.json --fixture tests/down.toml --json"
)]
pub struct TestArgs {
    /// Playbook name (see `host list`) or path to a .wasm component
    #[arg(required_unless_present = "plugin")]
    playbook: Option<String>,
    /// A .wasm component, by path (instead of PLAYBOOK)
    #[arg(long, value_name = "FILE", conflicts_with = "playbook")]
    plugin: Option<PathBuf>,
    /// A fixture (.json or .toml); repeatable
    #[arg(long, value_name = "FILE", required = true)]
    fixture: Vec<PathBuf>,
    /// One JSON report instead of text
    #[arg(long)]
    json: bool,
}

impl TestArgs {
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        let host = Context::load(globals)?.host;
        let prepared = match &self.plugin {
            Some(path) => host.prepare_file(path).await?,
            None => prepare_named_or_file(&host, &self.playbook.unwrap_or_default()).await?,
        };
        crate::replay::cli::test_command(&host, &prepared, &self.fixture, self.json).await
    }
}
