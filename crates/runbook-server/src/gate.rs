//! The check every hook and API call passes first: the endpoint's `[webhooks.<name>]` auth as
//! host.toml last (re)loaded it, with a delivery id seen once within the replay window. No
//! auth configured is a 401, never an open door.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::app::App;
use crate::auth::{self, Verified};
use crate::respond::{AuthRefused, error};

/// The 401 to answer, if any: a missing or failed check, or no auth configured at all.
pub(crate) async fn refuse(
    app: &App,
    endpoint: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Response> {
    let live = app.live();
    let Some(verifier) = live.verifiers.get(endpoint) else {
        tracing::warn!("refused a call to {endpoint}: no [webhooks.{endpoint}] auth is configured");
        let mut refused = error(
            app,
            endpoint,
            StatusCode::UNAUTHORIZED,
            format!(
                "unauthorized: this endpoint needs [webhooks.{endpoint}] auth in host.toml \
                 (auth = {{ kind = \"none\" }} opens it)"
            ),
        );
        refused.extensions_mut().insert(AuthRefused);
        return Some(refused);
    };
    let reason = match verifier.verify(headers, body) {
        Ok(Verified::Done) => return None,
        Ok(Verified::IfFirst(id)) => {
            let store = app.store.clone();
            match store.first_delivery(&id, auth::REPLAY_WINDOW).await {
                Ok(true) => return None,
                Ok(false) => format!(
                    "webhook-id {} was already delivered (replay)",
                    crate::text::escape(&crate::text::echo(&id))
                ),
                // Not acknowledged: the sender retries once the store answers.
                Err(e) => {
                    return Some(crate::respond::store_unavailable(app, endpoint, &e));
                }
            }
        }
        Err(reason) => reason,
    };
    tracing::warn!(
        "refused a call to {endpoint} ({}): {reason}",
        verifier.kind()
    );
    let mut refused = error(app, endpoint, StatusCode::UNAUTHORIZED, "unauthorized");
    refused.extensions_mut().insert(AuthRefused);
    Some(refused)
}

/// Runs hold parameters, alert labels and log evidence: the read-only views need
/// `[webhooks.api]` auth like the hooks do, and are open only when the operator says so
/// (`auth = { kind = "none" }`).
pub(crate) async fn refuse_api(app: &App, headers: &HeaderMap) -> Option<Response> {
    refuse(app, "api", headers, &[]).await
}
