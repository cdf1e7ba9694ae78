//! Who may do what, decided once per request: the route the router matched names the access
//! it needs (its entry in the one route table, routes.rs), one middleware resolves the caller's identity and refuses
//! (401 without one, 403 below the role) before any handler runs, and the handler finds the
//! caller in a task-local ([`caller`]) for its forms, its records and the audit trail.
//!
//! Identities: an API token from the store (`Authorization: Bearer rbk_…`, its role is its
//! ceiling), the `[ui]` credentials (role `[ui] role`, default admin), the `[webhooks.api]`
//! credentials (role `[webhooks.api] role`, default viewer). Hooks and the agent API keep
//! their own auth (per-hook secrets, node tokens and certificates): their entries say so.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::app::{App, Shared};
use crate::auth::{Verified, Verifier};
use crate::respond::{AuthRefused, error};
use runbook_core::access::{
    AuditAct, Identity, NewAudit, Proof, Role, Roles, TOKEN_PREFIX, token_hash,
};

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: `/healthz`, `/metrics`, the console's static assets.
    Open,
    /// The hook's own `[webhooks.<name>]` auth (or the signing secret of its channel).
    Hook,
    /// A fleet node's token (and certificate): the agent API checks it.
    Node,
    /// An identity holding a role that covers this one.
    Role(Role),
}

/// The caller of the request being handled, and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) identity: Identity,
    pub(crate) source: String,
}

tokio::task_local! {
    static CALLER: Caller;
}

/// The caller `require` admitted for this request (None on open, hook and node routes).
pub(crate) fn caller() -> Option<Caller> {
    CALLER.try_with(Caller::clone).ok()
}

/// The caller if it holds a role covering `role` (what a page shows a form to).
pub(crate) fn caller_allowed(role: Role) -> Option<Caller> {
    caller().filter(|c| c.identity.roles.allow(role))
}

/// The middleware over every route: the table's entry for the matched route, then the
/// caller's identity and roles against it.
pub(crate) async fn require(State(app): State<Shared>, request: Request, next: Next) -> Response {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let console = path.starts_with("/ui");
    let needed_role = match crate::routes::access_of(request.method(), &path) {
        Some(Access::Role(role)) => role,
        Some(Access::Open | Access::Hook | Access::Node) => return next.run(request).await,
        None => {
            tracing::error!(path, "no access rule for this route: refused");
            return refused(
                &app,
                console,
                StatusCode::FORBIDDEN,
                "this route has no access rule",
            );
        }
    };
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    // Without proven credentials (an open `[webhooks.api]` lets anyone read, wrong ones too)
    // a role above is a 401: a browser then asks to sign in, and credentials may help.
    let identity = match identify(&app, request.headers()).await {
        Ok(Some(identity))
            if identity.proof != Proof::Open || identity.roles.allow(needed_role) =>
        {
            identity
        }
        Ok(_) if console => return crate::ui::sign_in_required(&app),
        Ok(_) => return unauthorized(&app, request.headers()).await,
        Err(unavailable) => return unavailable,
    };
    if !identity.roles.allow(needed_role) {
        tracing::warn!(
            subject = %crate::text::echo(&identity.subject),
            roles = %identity.roles,
            needed = %needed_role,
            "refused: the caller's roles do not cover the route's"
        );
        let why = format!(
            "this needs the {needed_role} role; you hold {}",
            identity.roles
        );
        return refused(&app, console, StatusCode::FORBIDDEN, &why);
    }
    CALLER
        .scope(Caller { identity, source }, next.run(request))
        .await
}

/// The API's 401: `[webhooks.api]`'s own refusal (it says what to configure), else plain.
async fn unauthorized(app: &App, headers: &HeaderMap) -> Response {
    match crate::gate::refuse_api(app, headers).await {
        Some(refusal) => refusal,
        None => refused(app, false, StatusCode::UNAUTHORIZED, "unauthorized"),
    }
}

fn refused(app: &App, console: bool, status: StatusCode, why: &str) -> Response {
    let mut response = if console {
        crate::ui::refused_page(status, why)
    } else {
        error(app, "api", status, why.to_string())
    };
    response.extensions_mut().insert(AuthRefused);
    response
}

/// Who these headers prove: an API token, else the `[ui]` credentials, else `[webhooks.api]`'s.
/// `Err` is the answer when the store does not answer a token's lookup.
pub(crate) async fn identify(app: &App, headers: &HeaderMap) -> Result<Option<Identity>, Response> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(token) = bearer.filter(|t| t.starts_with(TOKEN_PREFIX)) {
        match app.store.token_by_hash(&token_hash(token)).await {
            Ok(Some(found)) if found.usable() => {
                return Ok(Some(Identity {
                    subject: found.name.clone(),
                    groups: Vec::new(),
                    roles: Roles::of([found.role]),
                    proof: Proof::ApiToken(found.id),
                }));
            }
            Ok(Some(found)) => {
                let why = if found.expired { "expired" } else { "revoked" };
                tracing::warn!(token = %found.id, "refused an API token: {why}");
                return Ok(None);
            }
            Ok(None) => {} // perhaps a static token that looks like ours
            Err(e) => {
                return Err(error(
                    app,
                    "api",
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the run store does not answer: {e:#}"),
                ));
            }
        }
    }
    let live = app.live();
    if let Some(verifier) = &live.ui
        && let Ok(Verified::Done) = verifier.verify(headers, &[])
    {
        let subject = match verifier {
            Verifier::Basic { username, .. } => username.clone(),
            _ => "console".into(),
        };
        return Ok(Some(Identity {
            subject,
            groups: Vec::new(),
            roles: Roles::of([live.ui_role]),
            proof: proof_of(verifier),
        }));
    }
    if let Some(verifier) = live.verifiers.get("api")
        && crate::gate::refuse_api(app, headers).await.is_none()
    {
        return Ok(Some(Identity {
            subject: crate::cancel::api_caller(app),
            groups: Vec::new(),
            roles: Roles::of([live.api_role]),
            proof: proof_of(verifier),
        }));
    }
    Ok(None)
}

fn proof_of(verifier: &Verifier) -> Proof {
    match verifier {
        Verifier::None => Proof::Open,
        Verifier::Basic { .. } => Proof::Basic,
        _ => Proof::StaticToken,
    }
}

/// Records an act of this request's caller (the audit trail and its sinks). The act already
/// happened: a store that does not answer is logged, not undone.
pub(crate) async fn audit(app: &App, act: AuditAct, target: Option<&str>, detail: Option<String>) {
    let Some(caller) = caller() else {
        tracing::error!(%act, "an audited act without a caller: not recorded");
        return;
    };
    let mut event = NewAudit::by(&caller.identity, &caller.source, act);
    event.target = target.map(String::from);
    event.detail = detail;
    record(app, event).await;
}

/// Records `event` as is (acts of the server itself: a reload).
pub(crate) async fn record(app: &App, event: NewAudit) {
    let host = app.dispatcher.host();
    let notifier = host.notifier();
    let config = host.with_policy(|c| c.audit.clone());
    if let Err(e) =
        runbook_runtime::audit::record(&app.store, Some(&*notifier), &config, event).await
    {
        tracing::error!("audit event not recorded: {e:#}");
    }
}
