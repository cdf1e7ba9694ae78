//! Approvals over HTTP: `GET /approvals` (pending ones, or a run's with `?run=ID`) under the
//! `[webhooks.api]` auth. Answers come through the channels' own endpoints (Slack's
//! interactive payloads, `POST /hooks/slack/interactive`, signed with a Slack channel's
//! `signing-secret`), the console's forms, and `host approve`.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use crate::app::Shared;
use crate::approval::slack;
use crate::gate::refuse_api;
use crate::respond::{AuthRefused, error, reply};

#[derive(Deserialize)]
pub(crate) struct ApprovalsQuery {
    run: Option<String>,
}

pub(crate) async fn list_approvals(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<ApprovalsQuery>,
) -> Response {
    if let Some(denied) = refuse_api(&app, &headers).await {
        return denied;
    }
    let store = app.store.clone();
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

/// A click on a question's button in Slack. The body (capped by the router) is checked
/// against every Slack channel's signing secret before any of it is read; the channels whose
/// secret signed it are the only ones that vouch for it (`Approvals::answer` counts it only
/// when one of them carried the question to its group). The answer is recorded after the
/// 200 (Slack wants one within 3 s) and the clicker hears back through the payload's
/// `response_url`. Neither the payload nor a secret is ever logged.
pub(crate) async fn slack_interactive(
    State(app): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const ENDPOINT: &str = "slack-interactive";
    let Some(approvals) = app.dispatcher.host().approvals() else {
        return error(
            &app,
            ENDPOINT,
            StatusCode::NOT_FOUND,
            "approvals are not available here",
        );
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let verified = slack::verify(
        &approvals.slack_signing_secrets(),
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        &body,
        slack::now_secs(),
    );
    let signers = match verified {
        Ok(signers) => signers,
        Err(reason) => {
            tracing::warn!("refused a call to {ENDPOINT}: {reason}");
            let mut refused = error(&app, ENDPOINT, StatusCode::UNAUTHORIZED, "unauthorized");
            refused.extensions_mut().insert(AuthRefused);
            return refused;
        }
    };
    let Some(click) = slack::parse_click(&body) else {
        // Another interaction of the same Slack app (or a malformed one): acknowledged, ignored.
        return reply(&app, ENDPOINT, StatusCode::OK, json!({}));
    };
    tokio::spawn(async move { approvals.slack_click(signers, click).await });
    reply(&app, ENDPOINT, StatusCode::OK, json!({}))
}
