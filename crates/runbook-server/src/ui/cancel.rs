//! The console's Cancel button: on the page of a queued, running or waiting run, a form under
//! the `[ui]` auth with the CSRF token, like the approval forms. The cancel itself is the
//! API's (`server::cancel::cancel_as`), as `console:<[ui] user>`.

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};

use super::access::Operator;
use super::forms::{CSRF_FIELD, Fields, check, see_other};
use super::page::{layout, message_page, seg};
use crate::app::{App, Shared};

fn action(run_id: &str) -> String {
    format!("/ui/runs/{}/cancel", seg(run_id))
}

fn button(run_id: &str, token: &str) -> Markup {
    html! {
        form.cancel method="post" action=(action(run_id)) {
            input type="hidden" name=(CSRF_FIELD) value=(token);
            button type="submit" id="cancel-run" { "Cancel run" }
        }
    }
}

/// The run page's Cancel form while the run may still be stopped (with `[ui]` credentials
/// on this request), else a link to it.
pub(super) fn section(app: &App, headers: &HeaderMap, run_id: &str, live: bool) -> Markup {
    if !live {
        return html! {};
    }
    match super::access::operator(app, headers) {
        Some(operator) => button(run_id, &operator.csrf_token(app, &action(run_id))),
        None => html! { p { a id="cancel-link" href=(action(run_id)) { "Cancel run…" } } },
    }
}

/// `GET /ui/runs/{id}/cancel`: the form alone (`[ui]` auth).
pub(crate) async fn form(
    State(app): State<Shared>,
    operator: Operator,
    Path(id): Path<String>,
) -> Response {
    let token = operator.csrf_token(&app, &action(&id));
    let body = html! {
        h1 { "Cancel run" }
        p { "Run " a href={ "/ui/runs/" (seg(&id)) } { (id) }
            " stops at its next capability call and ends cancelled, naming you." }
        (button(&id, &token))
    };
    layout("Cancel run", html! {}, body)
}

/// `POST /ui/runs/{id}/cancel`: back to the run's page, or a page saying why not.
pub(crate) async fn submit(
    State(app): State<Shared>,
    operator: Operator,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    if let Err(refused) = check(&app, &operator, &action(&id), &fields) {
        return *refused;
    }
    let by = format!("console:{}", operator.user);
    let (status, line) = crate::cancel::cancel_as(&app, &id, &by).await;
    if status.is_success() {
        return see_other(&format!("/ui/runs/{}", seg(&id)));
    }
    let title = if status == StatusCode::NOT_FOUND {
        "Not found"
    } else {
        "Not cancelled"
    };
    message_page(status, title, &line)
}
