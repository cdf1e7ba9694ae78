//! `POST /runs/{id}/cancel` under the `[webhooks.api]` auth, and the one path every cancel
//! through this server takes (the console's button too): the request goes to the store, and a
//! run executing in this process is signalled at once (other processes find it in the store,
//! runbook_runtime::cancel::watch).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::app::{App, Shared};
use crate::records::{Cancelled, RunStatus};
use crate::replies::{self, CancelAnswer, CancelState};
use crate::respond::{error, reply};
use runbook_core::access::AuditAct;

const ENDPOINT: &str = "runs";

/// Asks run `id` to stop as `by`: (HTTP status, what happened in a line).
pub(super) async fn cancel_as(app: &App, id: &str, by: &str) -> (StatusCode, String) {
    let store = app.store.clone();
    let cancelled = match store.cancel_run(id, by).await {
        Ok(cancelled) => cancelled,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the run store does not answer: {e:#}"),
            );
        }
    };
    if matches!(cancelled, Cancelled::Asked { .. } | Cancelled::Ended { .. }) {
        crate::authz::audit(app, AuditAct::RunCancelled, Some(id), None).await;
    }
    match &cancelled {
        Cancelled::Asked { .. } => {
            runbook_runtime::cancel::signal(id, by);
        }
        Cancelled::Ended { playbook } => {
            app.dispatcher
                .metrics
                .ended(playbook, RunStatus::Cancelled.as_str(), 0.0);
        }
        _ => {}
    }
    let shown = crate::text::escape(&crate::text::echo(id)).into_owned();
    let (status, line) = runbook_runtime::cancel::cli::answer(&shown, by, &cancelled);
    tracing::info!(run_id = %shown, by = %by, status, "cancel: {line}");
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        line,
    )
}

pub(crate) async fn cancel(State(app): State<Shared>, Path(id): Path<String>) -> Response {
    // Who may cancel was decided by the route's entry (authz.rs).
    let by = crate::authz::caller()
        .map_or_else(|| crate::authz::api_caller(&app), |c| c.identity.actor());
    let (status, line) = cancel_as(&app, &id, &by).await;
    if status.is_success() {
        let state = if status == StatusCode::OK {
            CancelState::Cancelled
        } else {
            CancelState::Cancelling
        };
        let body = CancelAnswer {
            runs: vec![id],
            status: state,
            by,
            message: line,
        };
        reply(&app, ENDPOINT, status, replies::json(body))
    } else {
        error(&app, ENDPOINT, status, line)
    }
}
