//! `/ui/safety`: the storm-safety rails. Each action budget with its use per key and when it
//! frees up, the freeze switch's state, and (to an [`Operator`], with a CSRF token bound to
//! the form) a form to freeze with a reason or to unfreeze: the same store row `host freeze`
//! sets, so it reaches every replica and node.

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};

use super::access::Operator;
use super::forms::{CSRF_FIELD, Fields, check, see_other};
use super::page::{layout, message_page, store_unavailable};
use crate::app::{App, Shared};
use runbook_core::access::AuditAct;

pub(crate) const FREEZE: &str = "/ui/safety/freeze";
pub(crate) const UNFREEZE: &str = "/ui/safety/unfreeze";

fn switch_form(app: &App, headers: &HeaderMap, frozen: bool) -> Markup {
    let Some(operator) = super::access::operator(headers, runbook_core::access::Role::Admin) else {
        return html! { p { "Freezing and unfreezing needs the admin role." } };
    };
    if frozen {
        let token = operator.csrf_token(app, UNFREEZE);
        html! {
            form method="post" action=(UNFREEZE) {
                input type="hidden" name=(CSRF_FIELD) value=(token);
                button type="submit" id="unfreeze" { "Unfreeze" }
            }
        }
    } else {
        let token = operator.csrf_token(app, FREEZE);
        html! {
            form method="post" action=(FREEZE) {
                input type="hidden" name=(CSRF_FIELD) value=(token);
                label { "Reason " input type="text" name="reason" maxlength="500" required; }
                " "
                button type="submit" id="freeze" { "Freeze all mutating calls" }
            }
        }
    }
}

/// `GET /ui/safety`.
pub(crate) async fn page(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let host = app.dispatcher.host();
    let safety = host.safety();
    let store = app.store.clone();
    let (report, freeze) = tokio::join!(
        runbook_runtime::safety::report(store.as_ref(), safety.budgets()),
        store.freeze_state()
    );
    let (report, freeze) = match (report, freeze) {
        (Ok(report), Ok(freeze)) => (report, freeze),
        (Err(e), _) | (_, Err(e)) => {
            return store_unavailable("Store unavailable", &e);
        }
    };
    let human = |secs: u64| runbook_runtime::safety::human(std::time::Duration::from_secs(secs));
    let body = html! {
        h1 { "Safety rails" }
        h2 { "Freeze" }
        @match &freeze {
            Some(f) => p id="freeze-state" { strong { "Frozen" } " since " (f.since) " by " (f.by) ": " (f.reason)
                ". Every mutating call on every replica and node is a dry run." },
            None => p id="freeze-state" { "Not frozen." },
        }
        (switch_form(&app, &headers, freeze.is_some()))
        h2 { "Action budgets" }
        @for b in &report {
            h3 { (b.name) }
            p { (b.rule) " of " (b.actions.join(", "))
                @if !b.playbooks.is_empty() { " by " (b.playbooks.join(", ")) } }
            @if b.uses.is_empty() { p { "Unused." } } @else {
                table {
                    thead { tr { th { "Key" } th { "Used" } th { "Frees up in" } } }
                    tbody { @for u in &b.uses { tr {
                        td { @if u.key.is_empty() { "(all)" } @else { (u.key) } }
                        td { (u.used) " / " (u.max) @if u.used >= u.max { " (spent)" } }
                        td { (human(u.frees_in_secs)) }
                    } } }
                }
            }
        }
    };
    layout("Safety rails", html! {}, body)
}

/// `POST /ui/safety/freeze`: the reason as `host freeze --reason` takes it.
pub(crate) async fn freeze(
    State(app): State<Shared>,
    operator: Operator,
    Form(fields): Form<Fields>,
) -> Response {
    if let Err(refused) = check(&app, &operator, FREEZE, &fields) {
        return *refused;
    }
    let reason = fields
        .iter()
        .find(|(k, _)| k == "reason")
        .map_or("", |(_, v)| v.as_str());
    let by = format!("console:{}", operator.user);
    let record = match runbook_runtime::safety::freeze_record(&by, reason) {
        Ok(record) => record,
        Err(e) => return message_page(StatusCode::BAD_REQUEST, "Not frozen", &e),
    };
    match app.store.set_freeze(Some(record)).await {
        Ok(()) => {
            let reason = Some(reason.to_string()).filter(|r| !r.is_empty());
            crate::authz::audit(&app, AuditAct::Freeze, None, reason).await;
            see_other("/ui/safety")
        }
        Err(e) => store_unavailable("Not frozen", &e),
    }
}

/// `POST /ui/safety/unfreeze`.
pub(crate) async fn unfreeze(
    State(app): State<Shared>,
    operator: Operator,
    Form(fields): Form<Fields>,
) -> Response {
    if let Err(refused) = check(&app, &operator, UNFREEZE, &fields) {
        return *refused;
    }
    match app.store.set_freeze(None).await {
        Ok(()) => {
            crate::authz::audit(&app, AuditAct::Unfreeze, None, None).await;
            see_other("/ui/safety")
        }
        Err(e) => store_unavailable("Not unfrozen", &e),
    }
}
