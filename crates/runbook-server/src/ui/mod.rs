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
//!
//! `access`: the gate and the operator; `page`: the frame every page renders in; `console`:
//! the console's state; one file per page family beside them.

mod access;
pub(crate) mod approvals;
pub(crate) mod assets;
pub(crate) mod cancel;
mod charts;
pub(crate) mod dashboard;
mod feed;
pub(crate) mod forms;
pub(super) mod live;
pub(crate) mod maintenance;
mod page;
pub(crate) mod pages;
pub(crate) mod report;
pub(crate) mod safety;
mod show;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;

use crate::app::Shared;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's layers around its routes (crate::routes lists them): the gate over every
/// page and form (nothing of the console without sign-in), none over the content-hashed
/// assets; the question count and the hardening headers over both.
pub(crate) fn layered(
    pages: Router<Shared>,
    assets: Router<Shared>,
    app: Shared,
) -> Router<Shared> {
    pages
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            access::gate,
        ))
        .merge(assets)
        .layer(axum::middleware::from_fn_with_state(
            app,
            access::count_questions,
        ))
        .layer(axum::middleware::map_response(harden))
}

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
