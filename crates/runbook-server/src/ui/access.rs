//! The console's side of who may do what (authz.rs decides it per route): the sign-in
//! challenge a browser answers, and the [`Operator`] extractor every state-changing form
//! takes (the caller, with what its CSRF tokens bind to).

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::page::{message_page, with_pending_questions};
use crate::app::{App, Shared};
use crate::auth::Verifier;
use crate::respond::AuthRefused;
use runbook_core::access::{Proof, Role};

/// The realm a browser's sign-in prompt names.
const REALM: &str = "runbook console";

/// Whether these headers may read the console (what `authz::require` lets through on a
/// page), for the parts of a page computed outside it (the navigation's badge).
pub(super) async fn may_read(app: &App, headers: &HeaderMap) -> bool {
    matches!(crate::authz::identify(app, headers).await, Ok(Some(i)) if i.roles.allow(Role::Viewer))
}

/// The 401 a console route answers without credentials: a browser asks to sign in.
pub(crate) fn sign_in_required(app: &App) -> Response {
    sign_in(
        app,
        "Sign in",
        "The console needs the [ui] credentials (or those of [webhooks.api], or an API token).",
    )
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

/// Someone who may use a console form: the caller `authz::require` admitted for its route
/// (whose entry names the role the form needs).
pub(crate) struct Operator {
    /// The Authorization header (empty with `[ui] auth = none`): what CSRF tokens bind to.
    credentials: String,
    /// The name runs, approvals and windows record: the `[ui]` basic-auth user name (the
    /// approver groups' `users` list names them), `console` with a bearer token or no auth,
    /// an API token's name.
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

/// The operator of this request if its caller holds `role` (what a page shows a form to).
pub(super) fn operator(headers: &HeaderMap, role: Role) -> Option<Operator> {
    let caller = crate::authz::caller_allowed(role)?;
    Some(Operator {
        credentials: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        user: match caller.identity.proof {
            Proof::ApiToken(_) => caller.identity.actor(),
            _ => caller.identity.subject,
        },
    })
}

/// Forms: the route's entry (authz.rs) decided the role; a handler that takes an `Operator`
/// runs only for a caller `require` admitted.
impl FromRequestParts<Shared> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _app: &Shared) -> Result<Self, Response> {
        operator(&parts.headers, Role::Viewer).ok_or_else(|| {
            message_page(
                StatusCode::FORBIDDEN,
                "Not allowed",
                "This form needs credentials whose role allows it.",
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
