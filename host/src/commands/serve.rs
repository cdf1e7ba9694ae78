//! `host serve`: the webhooks (Alertmanager, generic JSON), the runs API and the console, until
//! SIGTERM; runs go to the run store, which several replicas may share.

use clap::Args;

use super::Globals;
use crate::commands::Context;

#[derive(Args)]
#[command(
    after_help = "Endpoints:\n  POST /hooks/alertmanager      Alertmanager/Grafana webhook (routed by [[route]])\n  POST /hooks/run/{playbook}    JSON object of parameters\n  GET  /runs, /runs/{id}, /alerts, /healthz, /metrics\n\nExample:\n  host serve --config examples/host.toml --listen 127.0.0.1:9095"
)]
pub struct ServeArgs {
    /// Address to listen on [default: [server] listen, else 127.0.0.1:9095]
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Print who may call what (each route, method and the role or auth it needs) as JSON,
    /// and exit
    #[arg(long)]
    routes: bool,
}

impl ServeArgs {
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        if self.routes {
            let rows: Vec<_> = crate::server::routes::table()
                .into_iter()
                .map(|route| {
                    let needs = match route.access {
                        crate::server::Access::Role(role) => role.as_str(),
                        crate::server::Access::Open => "open",
                        crate::server::Access::Hook => "hook",
                        crate::server::Access::Node => "node",
                    };
                    let method = route.method.as_str();
                    serde_json::json!({ "method": method, "path": route.path, "needs": needs })
                })
                .collect();
            anstream::println!("{}", serde_json::to_string_pretty(&rows)?);
            return Ok(0);
        }
        let ctx = Context::for_service(globals)?;
        let store = ctx.open_store().await?;
        let location = ctx.store_location()?.describe();
        let mut host = ctx.host;
        host.store = Some(store);
        if let Some(listen) = self.listen {
            host.config.server.listen = listen;
        }
        // Reading the console takes [webhooks.api]; its forms take [ui].
        let console = host.config.webhooks.contains_key("api") || host.config.ui.auth.is_some();
        let scheme = if host.config.server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let link = host
            .store
            .as_ref()
            .and_then(|store| store.link_security())
            .map(|link| format!(", {link}"))
            .unwrap_or_default();
        // Logged as the server's own lines (target `runbook_server`, so that a filter naming
        // the server shows them). The layer split had turned the target into "crate::server",
        // which no filter names: the lines went missing (tests/first_hour.rs).
        crate::server::serve(host, |addr| {
            tracing::info!(
                target: "runbook_server",
                "listening on {scheme}://{addr} (run store {location}{link})"
            );
            if console {
                tracing::info!(target: "runbook_server", "console: {scheme}://{addr}/ui");
            }
        })
        .await?;
        Ok(0)
    }
}
