//! The door in front of every route: what the route's entry in the table (routes.rs) says it
//! needs, checked against the caller authz.rs identifies, before any handler runs. Refusals
//! are the console's pages on console routes, the API's JSON elsewhere.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use runbook_core::access::Proof;

use crate::app::{App, Shared};
use crate::authz::{Access, Caller, as_caller, identify};
use crate::respond::{AuthRefused, error};
use crate::ui;

/// A route's door: the access its table entry names, and whether a refusal is a page.
#[derive(Clone)]
pub(crate) struct Door {
    pub(crate) app: Shared,
    pub(crate) access: Access,
    pub(crate) console: bool,
}

/// The middleware in front of every route (routes.rs puts one per entry): the caller's
/// identity and roles against what the route needs.
pub(crate) async fn require(State(door): State<Door>, request: Request, next: Next) -> Response {
    let Door {
        app,
        access,
        console,
    } = door;
    let needed_role = match access {
        Access::Role(role) => role,
        Access::Open | Access::Hook | Access::Node => return next.run(request).await,
    };
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    // Without proven credentials (an open `[webhooks.api]` lets anyone read, wrong ones too)
    // a role above is a 401: a browser then asks to sign in, and credentials may help.
    let identity = match identify(&app, request.headers(), console).await {
        Ok(Some(identity))
            if identity.proof != Proof::Open || identity.roles.allow(needed_role) =>
        {
            identity
        }
        Ok(_) if console => return ui::sign_in_required(&app, request.uri()),
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
    as_caller(Caller { identity, source }, next.run(request)).await
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
        ui::refused_page(status, why)
    } else {
        error(app, "api", status, why.to_string())
    };
    response.extensions_mut().insert(AuthRefused);
    response
}
