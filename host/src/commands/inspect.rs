//! `host inspect`: one playbook's description and parameters, and the capabilities it wants next
//! to what this host's config grants it.

use anstream::{print, println};
use clap::Args;

use super::Globals;
use crate::bindings::Capability;
use crate::commands::{Context, prepare_named_or_file};

#[derive(Args)]
#[command(after_help = "Example:\n  host inspect disk-full")]
pub struct InspectArgs {
    playbook: String,
    #[arg(long)]
    json: bool,
}

impl InspectArgs {
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        let host = Context::load(globals)?.host;
        let prepared = prepare_named_or_file(&host, &self.playbook).await?;
        let grants = host.grants_for(&prepared.source);
        let limits = host.limits_for(&prepared.source.name);
        let d = &prepared.description;
        if self.json {
            let mut doc = serde_json::json!({
                "name": d.name, "summary": d.summary, "version": d.version,
                "origin": prepared.source.origin.to_string(),
                "params": d.params.iter().map(|p| serde_json::json!({"name": p.name, "type": crate::params::type_of(p).to_string(), "description": p.description, "default": p.default, "required": p.required})).collect::<Vec<_>>(),
                "wants": d.capabilities.iter().map(Capability::as_str).collect::<Vec<_>>(),
                "grants": grants, "limits": limits,
            });
            super::list::add_registry_fields(&mut doc, &prepared.source.origin);
            println!("{}", crate::text::json_for_terminal(&doc)?);
            return Ok(0);
        }
        print!(
            "{}",
            crate::render::inspect(d, &prepared.source.origin.to_string(), &grants, &limits)
        );
        Ok(0)
    }
}
