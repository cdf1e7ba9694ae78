//! The frame every console page renders in (navigation with the waiting questions' badge),
//! the plain message page, and the small helpers pages share: path segments, form fields.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::assets;

/// Longest text accepted in a filter or a form field.
pub(super) const MAX_FIELD_BYTES: usize = 4096;

/// What the navigation shows of the reader, found once per console request.
#[derive(Debug, Clone, Default)]
pub(super) struct Nav {
    /// Questions waiting for an answer (for a caller that may read them).
    pub(super) pending: Option<usize>,
    /// Who signed in with the identity provider: a sign-out link.
    pub(super) signed_in: Option<String>,
}

tokio::task_local! {
    static NAV: Nav;
}

/// Runs `page` (a request's handling) with `nav` in its navigation.
pub(super) async fn with_nav<F: Future>(nav: Nav, page: F) -> F::Output {
    NAV.scope(nav, page).await
}

/// The frame of every page.
pub(super) fn layout(title: &str, head_extra: Markup, body: Markup) -> Response {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · runbook" }
                link rel="stylesheet" href=(assets::css_path());
                (head_extra)
            }
            body {
                header.top {
                    strong { "runbook" }
                    a href="/ui" { "Dashboard" }
                    a href="/ui/runs" { "Runs" }
                    a href="/ui/alerts" { "Alerts" }
                    a href="/ui/playbooks" { "Playbooks" }
                    (approvals_link())
                    a href="/ui/outbox" { "Outbox" }
                    a href="/ui/maintenance" { "Maintenance" }
                    a href="/ui/safety" { "Safety" }
                    a href="/ui/audit" { "Audit" }
                    @if let Some(who) = NAV.try_with(|n| n.signed_in.clone()).ok().flatten() {
                        span.who id="signed-in" { (who) }
                        a id="sign-out" href="/ui/logout" { "Sign out" }
                    }
                }
                main { (body) }
                script src=(assets::js_path()) {}
            }
        }
    };
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page.into_string(),
    )
        .into_response()
}

pub(super) fn message_page(status: StatusCode, title: &str, message: &str) -> Response {
    let mut response = layout(
        title,
        html! {},
        html! { h1 { (title) } p.error { (message) } },
    );
    *response.status_mut() = status;
    response
}

/// What a console reader sees when the store fails: the cause goes to the log only (it names
/// the database's host, user and name).
pub(super) fn store_unavailable(title: &str, e: &anyhow::Error) -> Response {
    tracing::warn!("console: the run store failed a request: {e:#}");
    message_page(
        StatusCode::SERVICE_UNAVAILABLE,
        title,
        crate::respond::STORE_DOWN,
    )
}

/// A path segment (run id, playbook name) as it goes into a link.
pub(super) fn seg(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A query value from a form: empty is absent; too long is refused.
pub(super) fn field(value: &Option<String>) -> Result<Option<String>, Box<Response>> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v.len() > MAX_FIELD_BYTES => Err(Box::new(message_page(
            StatusCode::BAD_REQUEST,
            "Bad request",
            &format!("a field is longer than {MAX_FIELD_BYTES} bytes"),
        ))),
        Some(v) => Ok(Some(v.to_string())),
    }
}

/// The navigation's link to the approvals, with the number waiting when there are any.
pub(super) fn approvals_link() -> Markup {
    let count = NAV.try_with(|n| n.pending).ok().flatten();
    html! {
        a href="/ui/approvals" { "Approvals"
            @if let Some(n) = count.filter(|n| *n > 0) {
                " " span.badge id="pending-count" title={ (n) " waiting for an answer" } { (n) }
            }
        }
    }
}
