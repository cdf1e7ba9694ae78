//! Who may do what: each route's entry in the one route table (routes.rs) names the access it
//! needs, the door in front of it (door.rs) resolves the caller's identity here and refuses
//! (401 without one, 403 below the role) before any handler runs, and the handler finds the
//! caller in a task-local ([`caller`]) for its forms, its records and the audit trail.
//!
//! Identities: an API token from the store (`Authorization: Bearer rbk_…`, its role is its
//! ceiling), the `[ui]` credentials (role `[ui] role`, default admin), the `[webhooks.api]`
//! credentials (role `[webhooks.api] role`, default viewer). Hooks and the agent API keep
//! their own auth (per-hook secrets, node tokens and certificates): their entries say so.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

use crate::app::App;
use crate::auth::{Verified, Verifier};
use crate::config::AuthConfig;
use crate::respond::error;
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

/// Who these headers prove: an API token, else the `[ui]` credentials, else `[webhooks.api]`'s.
/// `Err` is the answer when the store does not answer a token's lookup.
pub(crate) async fn identify(app: &App, headers: &HeaderMap) -> Result<Option<Identity>, Response> {
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
