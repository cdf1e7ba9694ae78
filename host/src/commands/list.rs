//! `host list`: every playbook the host can find, with its summary and wanted capabilities; a
//! playbook that cannot be described is listed with why, and fails the command.

use anstream::{print, println};
use clap::Args;

use super::Globals;
use crate::bindings::Capability;
use crate::commands::{Context, EXIT_FAILED};

#[derive(Args)]
#[command(after_help = "Example:\n  host list --plugin-dir ./playbooks")]
pub struct ListArgs {
    #[arg(long)]
    json: bool,
}

impl ListArgs {
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        let host = Context::load(globals)?.host;
        let mut rows = Vec::new();
        for entry in host.playbooks().await {
            let row = match host.prepare_entry(&entry).await {
                Ok(p) => {
                    let mut row = serde_json::json!({
                        "name": entry.name,
                        "origin": p.source.origin.to_string(),
                        "summary": p.description.summary,
                        "capabilities": p.description.capabilities.iter().map(Capability::as_str).collect::<Vec<_>>(),
                    });
                    add_registry_fields(&mut row, &p.source.origin);
                    row
                }
                Err(e) => serde_json::json!({
                    "name": entry.name,
                    "origin": entry.origin.to_string(),
                    "error": format!("{e:#}"),
                }),
            };
            rows.push(row);
        }
        if self.json {
            println!("{}", crate::text::json_for_terminal(&rows)?);
        } else {
            print!("{}", crate::render::playbook_list(&rows));
        }
        // Everything else is listed; a broken playbook still fails the command.
        let broken = rows.iter().any(|row| row.get("error").is_some());
        Ok(if broken { EXIT_FAILED } else { 0 })
    }
}

/// A registry playbook's source, digest and signer as fields of their own (`--json`).
pub fn add_registry_fields(row: &mut serde_json::Value, origin: &crate::catalog::Origin) {
    if let crate::catalog::Origin::Registry(pinned) = origin {
        row["source"] = pinned.source.to_string().into();
        row["digest"] = pinned.digest.clone().into();
        row["signer"] = pinned.signer.clone().into();
    }
}
