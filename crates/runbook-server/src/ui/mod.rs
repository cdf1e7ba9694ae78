//! The console: `/ui` of `host serve`. Server-rendered HTML (maud: compile-time checked,
//! escaped by default), one embedded script and stylesheet served under their content hash,
//! a strict Content-Security-Policy on every answer, live timelines over server-sent events.
//!
//! Every route is behind the role its entry in authz.rs names (viewer reads, operator runs
//! and cancels, approver answers, admin sees the safety and maintenance pages and the audit);
//! a browser without credentials is asked to sign in (`WWW-Authenticate`). Every
//! state-changing form carries a CSRF token bound to the form, the credentials and an expiry
//! (csrf.rs).
//!
//! `access`: the gate and the operator; `page`: the frame every page renders in; `console`:
//! the console's state; one file per page family beside them.

mod access;
mod approvals;
mod assets;
mod audit;
mod cancel;
mod charts;
mod dashboard;
mod feed;
mod forms;
pub(super) mod live;
mod maintenance;
mod page;
mod pages;
mod report;
mod safety;
mod show;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::get;

use crate::app::Shared;

pub(crate) use access::sign_in_required;

/// A refusal page (403 below the route's role).
pub(crate) fn refused_page(status: axum::http::StatusCode, why: &str) -> Response {
    page::message_page(status, "Not allowed", why)
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(crate) fn routes(app: Shared) -> Router<Shared> {
    Router::new()
        .route("/ui", get(dashboard::dashboard))
        .route("/ui/", get(dashboard::dashboard))
        .route("/ui/runs", get(pages::runs))
        .route("/ui/runs/{id}", get(pages::run))
        .route(
            "/ui/runs/{id}/cancel",
            get(cancel::form).post(cancel::submit),
        )
        .route("/ui/runs/{id}/events", get(live::events))
        .route("/ui/runs/{id}/artifacts/{n}", get(pages::artifact))
        .route("/ui/runs/{id}/report", get(report::html))
        .route("/ui/runs/{id}/report.md", get(report::markdown))
        .route("/ui/alerts", get(pages::alerts))
        .route("/ui/playbooks", get(pages::playbooks))
        .route(
            "/ui/playbooks/{name}/run",
            get(forms::run_form).post(forms::run_submit),
        )
        .route("/ui/approvals", get(approvals::pending))
        .route(
            "/ui/approvals/{id}",
            get(approvals::answer_form).post(approvals::answer_submit),
        )
        .route("/ui/outbox", get(pages::outbox))
        .route(
            "/ui/outbox/{id}/retry",
            get(forms::retry_form).post(forms::retry_submit),
        )
        .route("/ui/maintenance", get(maintenance::page))
        .route(
            "/ui/maintenance/breakers/{playbook}/reset",
            axum::routing::post(maintenance::reset),
        )
        .route(
            "/ui/maintenance/windows",
            axum::routing::post(maintenance::start),
        )
        .route(
            "/ui/maintenance/windows/{id}/end",
            axum::routing::post(maintenance::end),
        )
        .route("/ui/safety", get(safety::page))
        .route(safety::FREEZE, axum::routing::post(safety::freeze))
        .route(safety::UNFREEZE, axum::routing::post(safety::unfreeze))
        .route("/ui/audit", get(audit::page))
        .route("/ui/static/{file}", get(assets::serve))
        // Every route, and any added: the role its entry in authz.rs names, or nothing.
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::authz::require,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app,
            access::count_questions,
        ))
        .layer(axum::middleware::map_response(harden))
}

/// Every console answer: the CSP, no sniffing, no framing, no referrer leaking run ids.
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
