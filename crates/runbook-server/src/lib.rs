//! The runbook host's HTTP server (`host serve`). Alertmanager (and Grafana) payloads are
//! routed by label matchers to playbooks; `/hooks/run/{playbook}` takes any JSON object as
//! parameters. Also the run API, the dispatch/claim loop, rescue of dead replicas' runs, the
//! fleet server, the console (`ui/`), schedules and reload on SIGHUP.
//!
//! The top layer below the CLI: imports `runbook-runtime`, `runbook-store` and `runbook-core`;
//! nothing below imports it, and it never imports the CLI (`host/`).
//!
//! A map of the crate:
//! - `serve`: start-up, the drain; `routes`: every endpoint in one table, and the router built
//!   from it; `app`: the state every handler shares
//! - `hooks`, `intake`, `routing`: webhooks in, alerts routed to runs
//! - `api`, `health`, `metrics`: the read API, `/healthz`, `/metrics`; `openapi`: the
//!   document of every route, `/openapi.json`; `replies`: the JSON bodies it describes
//! - `gate`, `auth`, `respond`: who may call, and how the server answers; `authz`: the
//!   caller's identity and the audit trail; `door`: the role check in front of each route
//! - `admission`, `dispatch`, `sink`, `schedule`, `rescue`: runs admitted, claimed, executed,
//!   rescued; `safety`: breakers and maintenance windows decided at admission
//! - `approvals`, `cancel`: answering questions, stopping runs
//! - `nodes`, `console`, `csrf`, `oidc`: state the app holds (the fleet's nodes, the console's
//!   sign-in and form tokens, OpenID Connect sign-in), below the handlers that use it
//! - `fleet/`: the agent API; `ui/`: the console's pages; `reload`: SIGHUP

// The layers below, under the names this crate's files use. The runtime's `cancel`, `fleet`
// and `schedule` are named in full: this crate has its own modules of those names.
pub(crate) use runbook_core::{policy, records, severity, signing, text, timeline};
pub(crate) use runbook_runtime::{
    approval, bindings, caps, catalog, config, incident, notify, params, postmortem, render, run,
    state, style,
};
pub(crate) use runbook_store as store;

mod admission;
mod api;
mod app;
mod approvals;
mod auth;
mod authz;
mod cancel;
mod console;
mod csrf;
mod digests;
mod dispatch;
mod door;
mod fleet;
mod gate;
mod health;
mod hooks;
mod intake;
mod metrics;
mod nodes;
mod oidc;
mod openapi;
mod reload;
mod replies;
mod rescue;
mod respond;
pub mod routes;
mod routing;
mod safety;
mod safety_metrics;
mod schedule;
mod serve;
mod sink;
mod tls;
mod ui;

use anyhow::Result;

pub use self::auth::Verifier;
pub use self::authz::Access;
pub use self::routing::{Matcher, Router as AlertRouter};
pub use self::safety::new_window;
pub use self::serve::serve;

/// Whether `[fleet]` is usable: every node's token loads and is long enough.
pub fn check_fleet(config: &crate::config::FleetConfig) -> Result<()> {
    nodes::Fleet::from_config(config).map(|_| ())
}

/// Whether `[ui]` is usable: a kind the console takes, its secret loads.
pub fn check_ui(config: &crate::config::UiConfig) -> Result<()> {
    console::verifier(config)?;
    if let Some(oidc) = &config.oidc {
        oidc::Oidc::new(oidc)?;
    }
    Ok(())
}

/// How `host serve` would be reached: `[server] tls` loads (certificate, key and `[fleet]
/// client-ca`) and what that gives, or why it does not; None without TLS.
pub fn check_tls(config: &crate::config::Config) -> Option<Result<String>> {
    let files = config.server.tls.as_ref()?;
    Some(
        tls::Certificates::load(tls::TlsFiles {
            cert: files.cert.clone(),
            key: files.key.clone(),
            client_ca: config.fleet.client_ca.clone(),
        })
        .map(|_| match config.fleet.node_auth() {
            crate::config::NodeAuth::TokenAndCertificate => {
                "HTTPS; agents prove their node with a client certificate as well".into()
            }
            crate::config::NodeAuth::Certificate => {
                "HTTPS; agents prove their node with a client certificate alone".into()
            }
            crate::config::NodeAuth::Token => "HTTPS".into(),
        }),
    )
}
