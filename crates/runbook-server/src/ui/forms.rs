//! The console's state-changing forms: run a playbook, retry a failed message. Each is served
//! and accepted only to an [`Operator`] (`[ui]` auth), and a submission must carry a live CSRF
//! token of that very form, served to the same credentials.

use axum::extract::{Form, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;

use super::access::Operator;
use super::page::{MAX_FIELD_BYTES, layout, message_page, seg, store_unavailable};
use crate::admission::{Admission, Refusal};
use crate::app::Shared;
use crate::records::Trigger;
use crate::run::RunRequest;
use runbook_core::access::AuditAct;

/// A form's fields; a parameter's field is named `param:<name>`.
pub(super) type Fields = Vec<(String, String)>;

pub(super) const CSRF_FIELD: &str = "csrf";
/// Fields a submission may carry (parameters and ours).
const MAX_FIELDS: usize = 256;

pub(super) fn see_other(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

fn refused_csrf() -> Response {
    message_page(
        StatusCode::FORBIDDEN,
        "Refused",
        "The form's CSRF token is missing, expired or not of this form and these credentials: \
         reload the form and submit it again.",
    )
}

/// Where the run form of `playbook` posts (its CSRF tokens are good there only).
pub(super) fn run_action(playbook: &str) -> String {
    format!("/ui/playbooks/{}/run", seg(playbook))
}

/// Where the retry form of outbox row `id` posts.
pub(super) fn retry_action(id: i64) -> String {
    format!("/ui/outbox/{id}/retry")
}

/// A submission to the form that posts to `action`: its fields bounded, its token one served
/// in that form to this operator's credentials and not expired.
pub(super) fn check(
    app: &crate::app::App,
    operator: &Operator,
    action: &str,
    fields: &Fields,
) -> Result<(), Box<Response>> {
    if fields.len() > MAX_FIELDS || fields.iter().any(|(_, v)| v.len() > MAX_FIELD_BYTES) {
        return Err(Box::new(message_page(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "too many or too long fields",
        )));
    }
    let token = fields
        .iter()
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.as_str());
    if !operator.csrf_ok(app, action, token) {
        return Err(Box::new(refused_csrf()));
    }
    Ok(())
}

pub(crate) async fn run_form(
    State(app): State<Shared>,
    operator: Operator,
    Path(name): Path<String>,
) -> Response {
    let prepared = match app.dispatcher.prepared(&name).await {
        Ok(prepared) => prepared,
        Err(refusal) => {
            return message_page(
                StatusCode::NOT_FOUND,
                "No such playbook",
                &refusal.to_string(),
            );
        }
    };
    let token = operator.csrf_token(&app, &run_action(&prepared.description.name));
    form_page(&prepared.description, &token, None, None)
}

/// The run form: fresh (defaults), or again with what was submitted and why it was refused.
fn form_page(
    d: &crate::bindings::Description,
    token: &str,
    submitted: Option<&Fields>,
    problem: Option<&str>,
) -> Response {
    let value = |name: &str, default: &Option<String>| match submitted {
        Some(fields) => fields
            .iter()
            .find(|(k, _)| k.strip_prefix("param:") == Some(name))
            .map(|(_, v)| v.clone())
            .unwrap_or_default(),
        None => default.clone().unwrap_or_default(),
    };
    let dry_run = submitted.is_none_or(|fields| fields.iter().any(|(k, _)| k == "dry_run"));
    let body = html! {
        h1 { "Run " (d.name) }
        p { (d.summary) }
        @if let Some(problem) = problem { p.error id="form-error" role="alert" { (problem) } }
        form id="run-form" method="post" action=(run_action(&d.name)) {
            input type="hidden" name=(CSRF_FIELD) value=(token);
            div.form-grid {
                @for p in &d.params {
                    label for={ "param-" (p.name) } {
                        code { (p.name) } @if p.required { " " strong.error { "required" } }
                        " " span.muted { "(" (crate::params::type_of(p)) ")" }
                        br; span.muted { (p.description) }
                    }
                    input id={ "param-" (p.name) } name={ "param:" (p.name) }
                        value=(value(&p.name, &p.default)) required[p.required];
                }
                label for="dry-run" { "dry run" br; span.muted { "capabilities that change things only say what they would do" } }
                input id="dry-run" type="checkbox" name="dry_run" value="1" checked[dry_run];
            }
            p { button id="start" type="submit" { "Start the run" } }
        }
    };
    let mut page = layout(&format!("Run {}", d.name), html! {}, body);
    if problem.is_some() {
        *page.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    page
}

pub(crate) async fn run_submit(
    State(app): State<Shared>,
    operator: Operator,
    Path(name): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    if let Err(refused) = check(&app, &operator, &run_action(&name), &fields) {
        return *refused;
    }
    let params: Vec<(String, String)> = fields
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("param:")?.to_string(), v.clone())))
        // An empty optional field means "the default".
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let playbook = name.clone();
    let request = RunRequest {
        params,
        alert: None,
        trigger: Trigger::Console,
        by: Some(operator.user.clone()),
        dry_run: fields.iter().any(|(k, _)| k == "dry_run"),
        dedup_key: None,
        severity: None,
    };
    // In a task of its own, as the hooks do: a client hanging up must not cut an admission.
    let submitted = tokio::spawn({
        let app = app.clone();
        async move {
            app.dispatcher
                .submit(&name, request, None, None, None)
                .await
        }
    })
    .await;
    match submitted {
        Ok(Ok(Admission::Started(id) | Admission::Deduplicated(id) | Admission::Gated(id, _))) => {
            let act = AuditAct::RunStarted;
            crate::authz::audit(&app, act, Some(&id), Some(format!("playbook {playbook}"))).await;
            see_other(&format!("/ui/runs/{}", seg(&id)))
        }
        Ok(Ok(Admission::Cooldown)) => message_page(
            StatusCode::CONFLICT,
            "Not started",
            "the playbook is in its cooldown",
        ),
        // A wrong value: the form again, with what was typed and why it was refused.
        Ok(Err(refusal @ (Refusal::BadValue(_) | Refusal::Invalid(_)))) => {
            match app.dispatcher.prepared(&playbook).await.ok() {
                Some(prepared) => form_page(
                    &prepared.description,
                    &operator.csrf_token(&app, &run_action(&playbook)),
                    Some(&fields),
                    Some(&refusal.to_string()),
                ),
                None => message_page(
                    crate::respond::refusal_status(&refusal),
                    "Not started",
                    &refusal.to_string(),
                ),
            }
        }
        Ok(Err(refusal)) => message_page(
            crate::respond::refusal_status(&refusal),
            "Not started",
            &refusal.to_string(),
        ),
        Err(e) => message_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Not started",
            &format!("admission task: {e}"),
        ),
    }
}

pub(crate) async fn retry_form(
    State(app): State<Shared>,
    operator: Operator,
    Path(id): Path<i64>,
) -> Response {
    let store = app.store.clone();
    let row = match store.outbox_row(id).await {
        Ok(Some(row)) => row,
        Ok(None) => return message_page(StatusCode::NOT_FOUND, "Not found", "no such message"),
        Err(e) => {
            return store_unavailable("Store", &e);
        }
    };
    let action = retry_action(row.id);
    let token = operator.csrf_token(&app, &action);
    let body = html! {
        h1 { "Retry message " (row.id) }
        dl.facts {
            dt { "channel" } dd { (row.channel) }
            dt { "title" } dd { (row.title) }
            dt { "state" } dd { (row.state) }
            dt { "attempts" } dd { (row.attempts) }
            dt { "last error" } dd { (row.last_error.as_deref().unwrap_or("")) }
        }
        form id="retry-form" method="post" action=(action) {
            input type="hidden" name=(CSRF_FIELD) value=(token);
            p { button id="retry" type="submit" { "Send it again" } }
        }
    };
    layout("Retry", html! {}, body)
}

pub(crate) async fn retry_submit(
    State(app): State<Shared>,
    operator: Operator,
    Path(id): Path<i64>,
    Form(fields): Form<Fields>,
) -> Response {
    if let Err(refused) = check(&app, &operator, &retry_action(id), &fields) {
        return *refused;
    }
    let store = app.store.clone();
    match store.outbox_retry(id).await {
        Ok(true) => {
            let id = id.to_string();
            crate::authz::audit(&app, AuditAct::OutboxRetried, Some(&id), None).await;
            see_other("/ui/outbox?state=pending")
        }
        Ok(false) => message_page(
            StatusCode::CONFLICT,
            "Not retried",
            "only a failed message can be retried (it may be pending already)",
        ),
        Err(e) => store_unavailable("Store", &e),
    }
}
