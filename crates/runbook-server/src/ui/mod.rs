//! The console: `/ui` of `host serve`. Server-rendered HTML (maud: compile-time checked,
//! escaped by default), one embedded script and stylesheet served under their content hash,
//! a strict Content-Security-Policy on every answer, live timelines over server-sent events.
//!
//! Every route is behind the role its entry in authz.rs names (viewer reads, operator runs
//! and cancels, approver answers, admin sees the safety and maintenance pages and the audit);
//! a browser without credentials is asked to sign in (`WWW-Authenticate`, or the identity
//! provider's sign-in with `[ui.oidc]`: `login`). Every
//! state-changing form carries a CSRF token bound to the form, the credentials and an expiry
//! (csrf.rs).
//!
//! `access`: the gate and the operator; `page`: the frame every page renders in; `console`:
//! the console's state; one file per page family beside them.

mod access;
pub(crate) mod approvals;
pub(crate) mod assets;
pub(crate) mod audit;
pub(crate) mod cancel;
mod charts;
pub(crate) mod dashboard;
mod feed;
pub(crate) mod forms;
pub(super) mod live;
pub(crate) mod login;
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

pub(crate) use access::sign_in_required;

/// A refusal page (403 below the route's role).
pub(crate) fn refused_page(status: axum::http::StatusCode, why: &str) -> Response {
    page::message_page(status, "Not allowed", why)
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's layers around its routes (crate::routes lists them, each behind its door):
/// the question count and the hardening headers.
pub(crate) fn layered(console: Router<Shared>, app: Shared) -> Router<Shared> {
    console
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
