//! The console: `/ui` of `host serve`. Server-rendered HTML (maud: compile-time checked,
//! escaped by default), one embedded script and stylesheet served under their content hash,
//! a strict Content-Security-Policy on every answer, live timelines over server-sent events.
//!
//! Every page is behind one gate (a layer over every `/ui` route but the static assets): the
//! `[ui]` credentials or the `[webhooks.api]` ones read it, and a browser without them is
//! asked to sign in (`WWW-Authenticate`). Every state-changing form (run a playbook, retry a
//! message, answer a question) is served and accepted only to an [`Operator`] (the `[ui]`
//! credentials, as host.toml last (re)loaded them) and carries a CSRF token bound to the
//! form, the credentials and an expiry (csrf.rs).

mod approvals;
mod assets;
mod cancel;
pub(crate) mod console;
mod csrf;
mod feed;
mod forms;
pub(super) mod live;
mod pages;
mod report;
mod show;

use anyhow::Result;
use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, html};

use crate::app::{App, Shared};
use crate::auth::{Verified, Verifier};
use crate::gate::refuse_api;
use crate::respond::AuthRefused;

/// Longest text accepted in a filter or a form field.
const MAX_FIELD_BYTES: usize = 4096;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The realm a browser's sign-in prompt names.
const REALM: &str = "runbook console";

pub(crate) fn routes(app: Shared) -> Router<Shared> {
    Router::new()
        .route("/ui", get(pages::runs))
        .route("/ui/", get(pages::runs))
        .route("/ui/runs", get(pages::runs))
        .route("/ui/runs/{id}", get(pages::run))
        .route(
            "/ui/runs/{id}/cancel",
            get(cancel::form).post(cancel::submit),
        )
        .route("/ui/runs/{id}/events", get(live::events))
        .route("/ui/runs/{id}/artifacts/{n}", get(pages::artifact))
        .route("/ui/runs/{id}/report", get(report::html))
        .route("/ui/runs/{id}/report.md", get(report::markdown))
        .route("/ui/alerts", get(pages::alerts))
        .route("/ui/playbooks", get(pages::playbooks))
        .route(
            "/ui/playbooks/{name}/run",
            get(forms::run_form).post(forms::run_submit),
        )
        .route("/ui/approvals", get(approvals::pending))
        .route(
            "/ui/approvals/{id}",
            get(approvals::answer_form).post(approvals::answer_submit),
        )
        .route("/ui/outbox", get(pages::outbox))
        .route(
            "/ui/outbox/{id}/retry",
            get(forms::retry_form).post(forms::retry_submit),
        )
        // Every route above, and any added there: nothing of the console without sign-in.
        .route_layer(axum::middleware::from_fn_with_state(app.clone(), gate))
        .route("/ui/static/{file}", get(assets::serve))
        .layer(axum::middleware::from_fn_with_state(
            app,
            show::count_questions,
        ))
        .layer(axum::middleware::map_response(harden))
}

/// Every console answer: the CSP, no sniffing, no framing, no referrer leaking run ids.
async fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Reading the console: the `[ui]` credentials, or `[webhooks.api]`'s (the read API's). A
/// request with neither gets a 401 that a browser answers with its sign-in prompt.
async fn gate(State(app): State<Shared>, request: Request, next: Next) -> Response {
    if operator(&app, request.headers()).is_some() {
        return next.run(request).await;
    }
    match refuse_api(&app, request.headers()).await {
        None => next.run(request).await,
        Some(refused) if refused.status() == StatusCode::UNAUTHORIZED => sign_in(
            &app,
            "Sign in",
            "The console needs the [ui] credentials (or those of [webhooks.api]).",
        ),
        Some(other) => other,
    }
}

/// Whether these headers may read the console (what `gate` lets through), for the parts of a
/// page computed before the gate (the navigation's badge).
pub(super) async fn may_read(app: &App, headers: &HeaderMap) -> bool {
    operator(app, headers).is_some() || refuse_api(app, headers).await.is_none()
}

/// A 401 page with the challenge a browser can answer: basic when `[ui]` or `[webhooks.api]`
/// takes it (a browser's prompt), else bearer (what the other kinds take).
fn sign_in(app: &App, title: &str, message: &str) -> Response {
    let live = app.live();
    let basic = live
        .ui
        .iter()
        .chain(live.verifiers.get("api"))
        .any(|v| matches!(v, Verifier::Basic { .. }));
    let challenge = if basic {
        format!("Basic realm=\"{REALM}\", charset=\"UTF-8\"")
    } else {
        format!("Bearer realm=\"{REALM}\"")
    };
    let mut refused = message_page(StatusCode::UNAUTHORIZED, title, message);
    refused.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_str(&challenge).expect("a header value"),
    );
    refused.extensions_mut().insert(AuthRefused);
    refused
}

/// Someone who may use the console's forms: the request carried the `[ui]` credentials.
pub(super) struct Operator {
    /// The Authorization header (empty with `[ui] auth = none`): what CSRF tokens bind to.
    credentials: String,
    /// The `[ui]` basic-auth user name (the approver groups' `users` list names them), or
    /// `console` with a bearer token or no auth.
    pub(super) user: String,
}

impl Operator {
    /// The CSRF token of the form that posts to `form`, for these credentials.
    fn csrf_token(&self, app: &App, form: &str) -> String {
        app.console.csrf.token(&self.credentials, form)
    }

    /// Whether `given` is a live token of the form that posts to `form`, served to these
    /// credentials.
    fn csrf_ok(&self, app: &App, form: &str, given: Option<&str>) -> bool {
        match app.console.csrf.check(&self.credentials, form, given) {
            Ok(()) => true,
            Err(why) => {
                tracing::warn!(form, "console form refused: CSRF token {why:?}");
                false
            }
        }
    }
}

/// The operator these headers show, if they carry the `[ui]` credentials.
fn operator(app: &App, headers: &HeaderMap) -> Option<Operator> {
    let live = app.live();
    let verifier = live.ui.as_ref()?;
    match verifier.verify(headers, &[]) {
        Ok(Verified::Done) => Some(Operator {
            credentials: headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
            user: match verifier {
                Verifier::Basic { username, .. } => username.clone(),
                _ => "console".into(),
            },
        }),
        Ok(Verified::IfFirst(_)) | Err(_) => None,
    }
}

/// Forms: a handler that takes an `Operator` runs only for the `[ui]` credentials.
impl FromRequestParts<Shared> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Shared) -> Result<Self, Response> {
        if let Some(operator) = operator(app, &parts.headers) {
            return Ok(operator);
        }
        Err(if app.live().ui.is_none() {
            message_page(
                StatusCode::FORBIDDEN,
                "Not allowed",
                "The console's forms are closed: host.toml has no [ui] auth (basic, bearer or none).",
            )
        } else {
            sign_in(
                app,
                "Not allowed",
                "This form needs the console's [ui] credentials.",
            )
        })
    }
}

/// The frame of every page.
fn layout(title: &str, head_extra: Markup, body: Markup) -> Response {
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
                    a href="/ui/runs" { "Runs" }
                    a href="/ui/alerts" { "Alerts" }
                    a href="/ui/playbooks" { "Playbooks" }
                    (show::approvals_link())
                    a href="/ui/outbox" { "Outbox" }
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

fn message_page(status: StatusCode, title: &str, message: &str) -> Response {
    let mut response = layout(
        title,
        html! {},
        html! { h1 { (title) } p.error { (message) } },
    );
    *response.status_mut() = status;
    response
}

/// A path segment (run id, playbook name) as it goes into a link.
fn seg(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A query value from a form: empty is absent; too long is refused.
fn field(value: &Option<String>) -> Result<Option<String>, Box<Response>> {
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
