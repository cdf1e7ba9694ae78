//! The console's side of who may do what (authz.rs decides it per route): the sign-in
//! challenge a browser answers, and the [`Operator`] extractor every state-changing form
//! takes (the caller, with what its CSRF tokens bind to).

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use maud::html;

use super::page::{Nav, layout, message_page, with_nav};
use crate::app::{App, Shared};
use crate::auth::Verifier;
use crate::respond::AuthRefused;
use runbook_core::access::{Identity, Proof, Role};

/// The realm a browser's sign-in prompt names.
const REALM: &str = "runbook console";

/// Who these headers are on the console if they may read it (what `authz::require` lets
/// through on a page), for the parts of a page computed outside it (the navigation's badge
/// and sign-out link).
pub(super) async fn reader(app: &App, headers: &HeaderMap) -> Option<Identity> {
    match crate::authz::identify(app, headers, true).await {
        Ok(Some(i)) if i.roles.allow(Role::Viewer) => Some(i),
        _ => None,
    }
}

/// The 401 a console route answers without credentials: a browser asks to sign in (with the
/// identity provider when `[ui.oidc]` is set, and back to `uri` after).
pub(crate) fn sign_in_required(app: &App, uri: &axum::http::Uri) -> Response {
    if app.live().oidc.is_some() {
        let back = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/ui");
        let href = format!(
            "/ui/login?next={}",
            url::form_urlencoded::byte_serialize(back.as_bytes()).collect::<String>()
        );
        let body = html! {
            h1 { "Sign in" }
            p { "The console needs you to sign in." }
            p { a.button id="sign-in" href=(href) { "Sign in with your identity provider" } }
        };
        let mut refused = layout("Sign in", html! {}, body);
        *refused.status_mut() = StatusCode::UNAUTHORIZED;
        refused.extensions_mut().insert(AuthRefused);
        return refused;
    }
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
    /// The Authorization header, or the session cookie of a sign-in (empty with `[ui] auth =
    /// none`): what CSRF tokens bind to.
    credentials: String,
    /// The name runs, approvals and windows record: the `[ui]` basic-auth user name (the
    /// approver groups' `users` list names them), `console` with a bearer token or no auth,
    /// an API token's name, the provider's subject of a sign-in.
    pub(super) user: String,
    /// The identity provider's groups of a sign-in (`[approvers.X] groups` match them).
    pub(super) groups: Vec<String>,
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
        credentials: credentials(headers, &caller.identity),
        user: match caller.identity.proof {
            Proof::ApiToken(_) => caller.identity.actor(),
            _ => caller.identity.subject,
        },
        groups: caller.identity.groups,
    })
}

/// What a form's CSRF token binds to: the session of a sign-in, else the Authorization header.
pub(super) fn credentials(headers: &HeaderMap, identity: &Identity) -> String {
    match identity.proof {
        Proof::Session => crate::authz::session_cookie(headers)
            .map(|id| format!("session {id}"))
            .unwrap_or_default(),
        _ => headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
    }
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
    let reader = if page {
        reader(&app, request.headers()).await
    } else {
        None
    };
    let mut nav = Nav::default();
    if let Some(identity) = reader {
        nav.pending = app.store.approvals(None).await.ok().map(|q| q.len());
        if identity.proof == Proof::Session {
            nav.signed_in = Some(identity.subject);
        }
    }
    with_nav(nav, next.run(request)).await
}
