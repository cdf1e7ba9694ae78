//! `/ui/audit` (admin): the newest audit events, who did what from where. Every field is
//! untrusted text (a run id from a URL, a typed reason): maud escapes it, the store capped it.

use axum::extract::State;
use axum::response::Response;
use maud::html;

use super::page::{layout, store_unavailable};
use crate::app::Shared;

/// Events shown, newest first.
const SHOWN: usize = 500;

pub(crate) async fn page(State(app): State<Shared>) -> Response {
    let events = match app.store.audit_since(0, SHOWN).await {
        Ok(events) => events,
        Err(e) => {
            return store_unavailable("The run store does not answer", &e);
        }
    };
    let body = html! {
        h1 { "Audit" }
        p.muted { "Every state-changing act: `host audit` shows the same, `[audit] sinks` ship it." }
        @if events.is_empty() { p.muted id="no-audit" { "Nothing recorded yet." } }
        @else {
            div.scroll { table.stack id="audit" {
                thead { tr { th { "when" } th { "act" } th { "who" } th { "proven by" } th { "from" }
                    th { "on" } th { "detail" } } }
                tbody { @for e in events.iter().rev() { tr {
                    td.mono { (e.at) } td { (e.act.as_str()) } td { (e.actor) } td { (e.proof) }
                    td.mono { (e.source) } td.mono { (e.target.as_deref().unwrap_or("")) }
                    td { (e.detail.as_deref().unwrap_or("")) }
                } } }
            } }
        }
    };
    layout("Audit", html! {}, body)
}
