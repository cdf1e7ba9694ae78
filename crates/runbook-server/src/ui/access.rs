//! Who may see the console and who may use its forms: the gate over every page (the `[ui]`
//! credentials or `[webhooks.api]`'s), the sign-in challenge a browser answers, and the
//! [`Operator`] extractor every state-changing form takes.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::page::{message_page, with_pending_questions};
use crate::app::{App, Shared};
use crate::auth::{Verified, Verifier};
use crate::gate::refuse_api;
use crate::respond::AuthRefused;

/// The realm a browser's sign-in prompt names.
const REALM: &str = "runbook console";

/// Reading the console: the `[ui]` credentials, or `[webhooks.api]`'s (the read API's). A
/// request with neither gets a 401 that a browser answers with its sign-in prompt.
pub(super) async fn gate(State(app): State<Shared>, request: Request, next: Next) -> Response {
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
pub(crate) struct Operator {
    /// The Authorization header (empty with `[ui] auth = none`): what CSRF tokens bind to.
    credentials: String,
    /// The `[ui]` basic-auth user name (the approver groups' `users` list names them), or
    /// `console` with a bearer token or no auth.
    pub(super) user: String,
}

impl Operator {
    /// The CSRF token of the form that posts to `form`, for these credentials.
    pub(super) fn csrf_token(&self, app: &App, form: &str) -> String {
        app.console.csrf.token(&self.credentials, form)
    }

    /// Whether `given` is a live token of the form that posts to `form`, served to these
    /// credentials.
    pub(super) fn csrf_ok(&self, app: &App, form: &str, given: Option<&str>) -> bool {
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
pub(super) fn operator(app: &App, headers: &HeaderMap) -> Option<Operator> {
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

/// Counts the waiting questions for the navigation's badge, only for a caller that may read
/// them (a refused caller's page does not learn the count), and only for pages.
pub(super) async fn count_questions(
    State(app): State<Shared>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let page = !path.starts_with("/ui/static/")
        && !path.ends_with("/events")
        && !path.contains("/artifacts/");
    let count = if page && may_read(&app, request.headers()).await {
        app.store.approvals(None).await.ok().map(|q| q.len())
    } else {
        None
    };
    with_pending_questions(count, next.run(request)).await
}
