//! Questions to people in the console: each run's page shows its questions, `/ui/approvals`
//! lists the waiting ones, and a pending question is answered with Approve / Reject forms.
//! Reading is the console's (its gate); answering is a form for an [`Operator`] (`[ui]` auth)
//! with a CSRF token of that question's form, and goes through `Approvals::answer` as
//! `console:<[ui] user>`, so the group's `users` list decides, exactly as for every other
//! channel.

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};

use super::access::Operator;
use super::forms::{CSRF_FIELD, Fields, check, see_other};
use super::page::{layout, message_page, seg, store_unavailable};
use super::show::{Tone, badge, time};
use crate::app::{App, Shared};
use crate::approval::{Answered, Approver, MAX_REASON_BYTES};
use crate::records::ApprovalRecord;
use runbook_core::access::AuditAct;

fn state_badge(state: &str) -> Markup {
    let tone = match state {
        "approved" => Tone::Good,
        "rejected" => Tone::Warn,
        "pending" => Tone::Asking,
        _ => Tone::Gone,
    };
    badge(tone, state)
}

fn store_error(e: anyhow::Error) -> Response {
    store_unavailable("Store", &e)
}

/// Where the answer forms of question `id` post (their CSRF tokens are good there only).
fn answer_action(id: &str) -> String {
    format!("/ui/approvals/{}", seg(id))
}

/// One question: what was asked, its state, who answered when and why; while pending, the
/// Approve / Reject forms (for `operator`) or a link to them.
fn question(app: &App, a: &ApprovalRecord, operator: Option<&Operator>) -> Markup {
    let pending = a.state == "pending";
    let action = answer_action(&a.id);
    let token = operator
        .filter(|_| pending)
        .map(|o| o.csrf_token(app, &action));
    html! {
        section.question id={ "approval-" (a.id) } {
            h3 { (a.title) " " (state_badge(&a.state)) }
            @if !a.body.is_empty() { pre.body { (a.body) } }
            @if !a.actions.is_empty() {
                p.muted { "Approving allows:" }
                ul.actions { @for x in &a.actions { li { (x) } } }
            }
            dl.facts {
                dt { "group" } dd { (a.group) }
                dt { "asked" } dd { (time(&a.asked_at)) }
                @if pending { dt { "expires" } dd { (time(&a.expires_at)) } }
                @if let Some(by) = &a.answered_by {
                    dt { "answered by" } dd.by { (by)
                        @if let Some(via) = &a.answered_via { " via " (via) } }
                }
                @if let Some(at) = &a.answered_at { dt { "answered" } dd { (time(at)) } }
                @if let Some(reason) = &a.reason { dt { "reason" } dd.reason { (reason) } }
            }
            @if pending {
                @match token {
                    Some(token) => {
                        form.approve method="post" action=(action) {
                            input type="hidden" name=(CSRF_FIELD) value=(token);
                            input type="hidden" name="decision" value="approve";
                            button.approve type="submit" { "Approve" }
                        }
                        form.reject method="post" action=(action) {
                            input type="hidden" name=(CSRF_FIELD) value=(token);
                            input type="hidden" name="decision" value="reject";
                            label { "reason " input name="reason" maxlength=(MAX_REASON_BYTES); }
                            " "
                            button.reject type="submit" { "Reject" }
                        }
                    },
                    None => {
                        p { a.answer href=(action) { "Answer…" } }
                    },
                }
            }
        }
    }
}

/// The questions section of a run's page (empty when the run asked nothing), and the group
/// its pending question waits on.
pub(super) async fn for_run(
    app: &App,
    headers: &HeaderMap,
    run_id: &str,
) -> (Markup, Option<String>) {
    let store = app.store.clone();
    let asked = match store.approvals(Some(run_id)).await {
        Ok(asked) => asked,
        Err(e) => {
            tracing::warn!("console: the run store failed a request: {e:#}");
            let down = crate::respond::STORE_DOWN;
            return (html! { h2 { "Questions" } p.error { (down) } }, None);
        }
    };
    if asked.is_empty() {
        return (html! {}, None);
    }
    let asking = asked
        .iter()
        .find(|a| a.state == "pending")
        .map(|a| a.group.clone());
    let operator = super::access::operator(headers, runbook_core::access::Role::Approver);
    let section = html! {
        h2 { "Questions" }
        div id="questions" { @for a in &asked { (question(app, a, operator.as_ref())) } }
    };
    (section, asking)
}

/// `GET /ui/approvals`: the questions waiting for an answer.
pub(crate) async fn pending(State(app): State<Shared>) -> Response {
    let store = app.store.clone();
    let waiting = match store.approvals(None).await {
        Ok(waiting) => waiting,
        Err(e) => return store_error(e),
    };
    let body = html! {
        h1 { "Approvals" }
        @if waiting.is_empty() { p.muted id="no-approvals" { "No question is waiting for an answer." } }
        @else {
            div.scroll { table.stack id="approvals" { thead { tr { th { "question" } th { "group" } th { "playbook" }
                th { "run" } th { "asked" } th { "expires" } th {} } }
                tbody { @for a in &waiting { tr {
                    td { (a.title) } td { (a.group) } td { (a.playbook) }
                    td.mono { a href={ "/ui/runs/" (seg(&a.run_id)) } { (a.run_id) } }
                    td { (time(&a.asked_at)) } td { (time(&a.expires_at)) }
                    td { a.answer href={ "/ui/approvals/" (seg(&a.id)) } { "Answer…" } }
                } } }
            } }
        }
    };
    layout("Approvals", html! {}, body)
}

/// `GET /ui/approvals/{id}`: one question with its answer forms (`[ui]` auth).
pub(crate) async fn answer_form(
    State(app): State<Shared>,
    operator: Operator,
    Path(id): Path<String>,
) -> Response {
    let store = app.store.clone();
    let record = match store.approval(&id).await {
        Ok(Some(record)) => record,
        Ok(None) => return message_page(StatusCode::NOT_FOUND, "Not found", "no such question"),
        Err(e) => return store_error(e),
    };
    let body = html! {
        h1 { "Question of " (record.playbook) }
        p { "Run " a href={ "/ui/runs/" (seg(&record.run_id)) } { (record.run_id) } }
        (question(&app, &record, Some(&operator)))
    };
    layout("Answer", html! {}, body)
}

/// `POST /ui/approvals/{id}`: `decision=approve|reject`, `reason` with a rejection.
pub(crate) async fn answer_submit(
    State(app): State<Shared>,
    operator: Operator,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    if let Err(refused) = check(&app, &operator, &answer_action(&id), &fields) {
        return *refused;
    }
    let value = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
    };
    let approve = match value("decision") {
        Some("approve") => true,
        Some("reject") => false,
        _ => {
            return message_page(
                StatusCode::BAD_REQUEST,
                "Bad request",
                "decision must be approve or reject",
            );
        }
    };
    let reason = value("reason")
        .filter(|r| !approve && !r.is_empty())
        .map(String::from);
    if reason.as_ref().is_some_and(|r| r.len() > MAX_REASON_BYTES) {
        return message_page(
            StatusCode::BAD_REQUEST,
            "Bad request",
            &format!("the reason is longer than {MAX_REASON_BYTES} bytes"),
        );
    }
    let Some(approvals) = app.dispatcher.host().approvals() else {
        return message_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not answered",
            "approvals are not available on this server",
        );
    };
    let who = Approver::Console {
        user: operator.user,
        groups: operator.groups,
    };
    match approvals.answer(&id, &who, approve, reason).await {
        Ok(Answered::Recorded(record)) => {
            let decision = if approve { "approve" } else { "reject" };
            crate::authz::audit(
                &app,
                AuditAct::ApprovalAnswered,
                Some(&id),
                Some(decision.into()),
            )
            .await;
            see_other(&format!("/ui/runs/{}", seg(&record.run_id)))
        }
        Ok(Answered::Closed(record)) => message_page(
            StatusCode::CONFLICT,
            "Already answered",
            &format!(
                "this question is {} already{}",
                record.state,
                record
                    .answered_by
                    .map(|by| format!(" (by {by})"))
                    .unwrap_or_default()
            ),
        ),
        Ok(Answered::NotAllowed(why)) => message_page(StatusCode::FORBIDDEN, "Not allowed", &why),
        Ok(Answered::NotFound) => {
            message_page(StatusCode::NOT_FOUND, "Not found", "no such question")
        }
        Err(e) => store_error(e),
    }
}
