//! Approvals over HTTP: `GET /approvals` (pending ones, or a run's with `?run=ID`) under the
//! `[webhooks.api]` auth, and `POST /approvals/{id}` (an approver's answer: `host approve
//! --server`, with an API token). Answers also come through the channels' own endpoints (Slack's
//! interactive payloads, `POST /hooks/slack/interactive`, signed with a Slack channel's
//! `signing-secret`), the console's forms, and `host approve`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use crate::app::Shared;
use crate::approval::{Answered, Approver, MAX_REASON_BYTES, slack};
use crate::respond::{AuthRefused, error, reply};
use runbook_core::access::AuditAct;

#[derive(Deserialize)]
pub(crate) struct ApprovalsQuery {
    run: Option<String>,
}

pub(crate) async fn list_approvals(
    State(app): State<Shared>,
    Query(q): Query<ApprovalsQuery>,
) -> Response {
    let store = app.store.clone();
    match store.approvals(q.run.as_deref()).await {
        Ok(approvals) => reply(&app, "approvals", StatusCode::OK, json!(approvals)),
        Err(e) => crate::respond::store_unavailable(&app, "approvals", &e),
    }
}

#[derive(Deserialize)]
struct AnswerBody {
    approve: bool,
    reason: Option<String>,
}

/// `POST /approvals/{id}` `{"approve": true|false, "reason": …}`: an answer as the caller (an
/// API token's name, the `[ui]` user), who must be on the group's `users` list. The route's
/// entry (authz.rs) decided the caller holds the approver role.
pub(crate) async fn answer(
    State(app): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    const ENDPOINT: &str = "approvals";
    let Some(caller) = crate::authz::caller() else {
        return error(&app, ENDPOINT, StatusCode::UNAUTHORIZED, "unauthorized");
    };
    let answer: AnswerBody = match serde_json::from_slice(&body) {
        Ok(answer) => answer,
        Err(e) => {
            let why = format!("the body must be {{\"approve\": true|false, \"reason\": …}}: {e}");
            return error(&app, ENDPOINT, StatusCode::BAD_REQUEST, why);
        }
    };
    if answer
        .reason
        .as_ref()
        .is_some_and(|r| r.len() > MAX_REASON_BYTES)
    {
        let why = format!("the reason is longer than {MAX_REASON_BYTES} bytes");
        return error(&app, ENDPOINT, StatusCode::BAD_REQUEST, why);
    }
    let Some(approvals) = app.dispatcher.host().approvals() else {
        return error(
            &app,
            ENDPOINT,
            StatusCode::NOT_FOUND,
            "approvals are not available here",
        );
    };
    let who = Approver::Console {
        user: caller.identity.subject.clone(),
        groups: caller.identity.groups.clone(),
    };
    let decision = if answer.approve { "approve" } else { "reject" };
    match approvals
        .answer(&id, &who, answer.approve, answer.reason)
        .await
    {
        Ok(Answered::Recorded(record)) => {
            crate::authz::audit(
                &app,
                AuditAct::ApprovalAnswered,
                Some(&id),
                Some(decision.into()),
            )
            .await;
            reply(&app, ENDPOINT, StatusCode::OK, json!(record))
        }
        Ok(Answered::Closed(record)) => {
            let why = format!("this question is {} already", record.state);
            error(&app, ENDPOINT, StatusCode::CONFLICT, why)
        }
        Ok(Answered::NotAllowed(why)) => error(&app, ENDPOINT, StatusCode::FORBIDDEN, why),
        Ok(Answered::NotFound) => error(&app, ENDPOINT, StatusCode::NOT_FOUND, "no such question"),
        Err(e) => crate::respond::store_unavailable(&app, ENDPOINT, &e),
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
