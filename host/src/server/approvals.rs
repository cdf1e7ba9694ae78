//! Approvals over HTTP: `GET /approvals` (pending ones, or a run's with `?run=ID`) under the
//! `[webhooks.api]` auth. Answers come through the channels' own endpoints (Slack's
//! interactive payloads), the console's forms, and `host approve`.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use super::{Shared, error, refuse_api, reply};

pub fn routes() -> Router<Shared> {
    Router::new().route("/approvals", get(list_approvals))
}

#[derive(Deserialize)]
struct ApprovalsQuery {
    run: Option<String>,
}

async fn list_approvals(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<ApprovalsQuery>,
) -> Response {
    if let Some(denied) = refuse_api(&app, &headers).await {
        return denied;
    }
    let store = app.dispatcher.host().store.clone().expect("store");
    match store.approvals(q.run.as_deref()).await {
        Ok(approvals) => reply(&app, "approvals", StatusCode::OK, json!(approvals)),
        Err(e) => error(
            &app,
            "approvals",
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{e:#}"),
        ),
    }
}
