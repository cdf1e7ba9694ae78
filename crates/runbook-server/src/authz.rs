//! Who may do what: each route's entry in the one route table (routes.rs) names the access it
//! needs, the door in front of it (door.rs) resolves the caller's identity here and refuses
//! (401 without one, 403 below the role) before any handler runs, and the handler finds the
//! caller in a task-local ([`caller`]) for its forms, its records and the audit trail.
//!
//! Identities: on console routes a session cookie of an OpenID Connect sign-in (`[ui.oidc]`;
//! roles from its groups through `[roles]`, at each request, so a reload applies at once), an
//! API token from the store (`Authorization: Bearer rbk_…`, its role is its
//! ceiling), the `[ui]` credentials (role `[ui] role`, default admin), the `[webhooks.api]`
//! credentials (role `[webhooks.api] role`, default viewer). Hooks and the agent API keep
//! their own auth (per-hook secrets, node tokens and certificates): their entries say so.

use axum::http::{HeaderMap, header};
use axum::response::Response;

use crate::app::App;
use crate::auth::{Verified, Verifier};
use crate::config::AuthConfig;
use runbook_core::access::{
    AuditAct, Identity, NewAudit, Proof, Role, Roles, is_token_shaped, token_hash,
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

/// Runs `handler` with `caller` as the request's caller ([`caller`] finds it).
pub(crate) async fn as_caller<F: std::future::Future>(caller: Caller, handler: F) -> F::Output {
    CALLER.scope(caller, handler).await
}

/// The console's session cookie (an OpenID Connect sign-in). `__Host-`: only ever set by this
/// origin over a secure context, for the whole path, never a parent domain's.
pub(crate) const SESSION_COOKIE: &str = "__Host-runbook-session";

/// The value of cookie `name` in these headers, if it has the shape `shaped` accepts.
pub(crate) fn cookie<'h>(
    headers: &'h HeaderMap,
    name: &str,
    shaped: impl Fn(&str) -> bool,
) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|value| shaped(value))
}

/// The session cookie of these headers, if it has the shape of one (anything else a client
/// sends costs no query).
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, SESSION_COOKIE, |v| {
        v.len() == 64 && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// The identity of a live session (`Ok(None)` without one, or without `[ui.oidc]`).
pub(crate) async fn session(app: &App, headers: &HeaderMap) -> Result<Option<Identity>, Response> {
    let Some(id) = session_cookie(headers) else {
        return Ok(None);
    };
    if app.live().oidc.is_none() {
        return Ok(None);
    }
    match app.store.session_by_hash(&token_hash(id)).await {
        Ok(Some(found)) => {
            let roles = app
                .dispatcher
                .host()
                .with_policy(|c| c.roles.of_groups(&found.groups));
            Ok(Some(Identity {
                subject: found.subject,
                groups: found.groups,
                roles,
                proof: Proof::Session,
            }))
        }
        Ok(None) => Ok(None),
        Err(e) => Err(crate::respond::store_unavailable(app, "api", &e)),
    }
}

/// Who these headers prove: with `sessions` (console routes: a cookie is a browser's, and
/// only the console's forms carry CSRF tokens) a session, then an API token, else the `[ui]`
/// credentials, else `[webhooks.api]`'s. `Err` is the answer when the store does not answer.
pub(crate) async fn identify(
    app: &App,
    headers: &HeaderMap,
    sessions: bool,
) -> Result<Option<Identity>, Response> {
    if sessions && let Some(identity) = session(app, headers).await? {
        return Ok(Some(identity));
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(token) = bearer.filter(|t| is_token_shaped(t)) {
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
                return Err(crate::respond::store_unavailable(app, "api", &e));
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
            subject: api_caller(app),
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

/// Who calls the API, for the run's "cancelled by …": the basic-auth user, else the name of
/// the bearer token's secret (its env var or file), as `api:<name>`.
pub(crate) fn api_caller(app: &App) -> String {
    let name = app.dispatcher.host().with_policy(|config| {
        match config.webhooks.get("api").map(|hook| &hook.auth) {
            Some(AuthConfig::Basic { username, .. }) => username.clone(),
            Some(AuthConfig::Bearer { token }) => token
                .env
                .clone()
                .or_else(|| {
                    token
                        .file
                        .as_ref()
                        .and_then(|f| f.file_name())
                        .map(|f| f.to_string_lossy().into_owned())
                })
                .unwrap_or_else(|| "token".into()),
            _ => "anonymous".into(),
        }
    });
    format!("api:{}", name.replace(|c: char| c.is_control(), ""))
}
