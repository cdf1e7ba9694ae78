//! The read API: `/runs`, `/runs/{id}`, `/runs/{id}/report`, `/alerts`, behind
//! `[webhooks.api]` auth. The console reads runs and reports through the same functions.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::app::{App, Shared};
use crate::respond::{error, reply, store_unavailable};
use crate::store::StoredRun;

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    limit: Option<usize>,
    playbook: Option<String>,
}

pub(crate) async fn list_runs(State(app): State<Shared>, Query(q): Query<ListQuery>) -> Response {
    let store = app.store.clone();
    let listed = store
        .list(q.limit.unwrap_or(50).min(1000), q.playbook.as_deref())
        .await;
    match listed {
        Ok(runs) => reply(&app, "runs", StatusCode::OK, json!(runs)),
        Err(e) => store_unavailable(&app, "runs", &e),
    }
}

pub(crate) async fn show_run(State(app): State<Shared>, Path(id): Path<String>) -> Response {
    match find_run(&app, id).await {
        Ok(run) => reply(&app, "runs", StatusCode::OK, json!(run)),
        Err(refused) => *refused,
    }
}

/// The run, or the response that says why not (404, store error), for a caller whose auth
/// was checked (the route's entry in authz.rs).
pub(crate) async fn find_run(app: &App, id: String) -> Result<StoredRun, Box<Response>> {
    let store = app.store.clone();
    let found = store.get(&id).await;
    let refused = match found {
        Ok(Some(run)) => return Ok(run),
        Ok(None) => error(app, "runs", StatusCode::NOT_FOUND, format!("no run {id}")),
        Err(e) => store_unavailable(app, "runs", &e),
    };
    Err(Box::new(refused))
}

/// The run as a post-incident review, `text/markdown`.
pub(crate) async fn run_report(State(app): State<Shared>, Path(id): Path<String>) -> Response {
    match report_of(&app, id).await {
        Ok((_, report)) => {
            app.dispatcher.metrics.request("runs", 200);
            (
                [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
                report,
            )
                .into_response()
        }
        Err(refused) => *refused,
    }
}

/// A run and its post-incident report in Markdown, with the questions it asked, for a caller
/// whose auth was checked.
pub(crate) async fn report_of(
    app: &App,
    id: String,
) -> Result<(crate::store::StoredRun, String), Box<Response>> {
    let run = find_run(app, id).await?;
    let store = app.store.clone();
    let report = crate::postmortem::render_from(&*store, &run).await;
    Ok((run, report))
}

pub(crate) async fn list_alerts(State(app): State<Shared>, Query(q): Query<ListQuery>) -> Response {
    let store = app.store.clone();
    match store.alerts(q.limit.unwrap_or(100).min(1000)).await {
        Ok(alerts) => reply(&app, "alerts", StatusCode::OK, json!(alerts)),
        Err(e) => store_unavailable(&app, "alerts", &e),
    }
}
