//! The webhooks that start runs: `/hooks/alertmanager` (alerts routed by label matchers to
//! playbooks, see `intake`) and `/hooks/run/{playbook}` (any JSON object as parameters). A
//! request is answered 202 only after its runs are in the store; 4xx only when retrying can
//! never help (Alertmanager retries 5xx only), 503 with Retry-After when the queue is full.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use crate::admission::{Admission, Refusal};
use crate::app::Shared;
use crate::gate::refuse;
use crate::intake;
use crate::records::{Gate, Trigger};
use crate::replies::{self, Admitted, AlertsAccepted, RunAccepted};
use crate::respond::{error, refusal_status, reply};
use crate::run::RunRequest;
use crate::severity::Priority;

pub(crate) async fn alertmanager_hook(
    State(app): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const ENDPOINT: &str = "alertmanager";
    if let Some(denied) = refuse(&app, ENDPOINT, &headers, &body).await {
        return denied;
    }
    let alerts = match serde_json::from_slice::<Value>(&body)
        .map_err(|e| format!("not JSON: {e}"))
        .and_then(|v| crate::incident::parse_webhook(v).map_err(|e| format!("{e:#}")))
    {
        Ok(alerts) => alerts,
        Err(e) => return error(&app, ENDPOINT, StatusCode::BAD_REQUEST, e),
    };
    // In a task of its own: a client hanging up must not cut an admission between its commit
    // and its run being queued.
    let handled = tokio::spawn({
        let app = app.clone();
        async move {
            let mut outcomes = Vec::new();
            for alert in alerts {
                outcomes.extend(intake::handle_in_batch(&app, &alert).await?);
            }
            Ok(outcomes)
        }
    })
    .await
    .unwrap_or_else(|e| Err(Refusal::Internal(format!("admission task: {e}"))));
    let outcomes = match handled {
        Ok(outcomes) => outcomes,
        Err(refusal) => {
            let status = refusal_status(&refusal);
            return error(&app, ENDPOINT, status, refusal.to_string());
        }
    };
    let runs: Vec<&str> = outcomes
        .iter()
        .filter_map(|r| r.run_id.as_deref())
        .collect();
    let body = replies::json(AlertsAccepted {
        runs: runs.into_iter().map(String::from).collect(),
        alerts: outcomes,
    });
    reply(&app, ENDPOINT, StatusCode::ACCEPTED, body)
}

#[derive(Deserialize)]
pub(crate) struct RunQuery {
    #[serde(default)]
    dry_run: bool,
    severity: Option<String>,
    /// The fleet node whose agent runs it (absent: this server).
    node: Option<String>,
}

pub(crate) async fn run_hook(
    State(app): State<Shared>,
    Path(playbook): Path<String>,
    Query(query): Query<RunQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const ENDPOINT: &str = "run";
    if let Some(denied) = refuse(&app, ENDPOINT, &headers, &body).await {
        return denied;
    }
    let params = match runbook_core::alert::run_params(&body) {
        Ok(params) => params,
        Err(e) => return error(&app, ENDPOINT, StatusCode::BAD_REQUEST, e),
    };
    // A sender's delivery id makes its retries idempotent.
    let dedup_key = ["idempotency-key", "webhook-id", "x-github-delivery"]
        .iter()
        .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .map(|id| format!("{playbook}|delivery|{id}"));
    let severity = match query.severity.as_deref().map(Priority::parse).transpose() {
        Ok(severity) => severity,
        Err(e) => return error(&app, ENDPOINT, StatusCode::BAD_REQUEST, e),
    };
    if let Some(Err(e)) = query
        .node
        .as_deref()
        .map(runbook_runtime::fleet::check_node_name)
    {
        return error(&app, ENDPOINT, StatusCode::BAD_REQUEST, e);
    }
    let request = RunRequest {
        params,
        alert: None,
        trigger: Trigger::Webhook,
        by: None,
        dry_run: query.dry_run,
        dedup_key,
        severity,
    };
    // In a task of its own: a client hanging up must not cut an admission between its commit
    // and its run being queued.
    let node = query.node.clone();
    let submitted = tokio::spawn({
        let (app, playbook) = (app.clone(), playbook.clone());
        async move {
            app.dispatcher
                .submit(&playbook, request, query.node, None, None)
                .await
        }
    })
    .await
    .unwrap_or_else(|e| Err(Refusal::Internal(format!("admission task: {e}"))));
    match submitted {
        Ok(admission) => {
            let (runs, status, reason) = match admission {
                Admission::Started(id) => (vec![id], Admitted::Queued, None),
                Admission::Deduplicated(id) => (vec![id], Admitted::Deduplicated, None),
                // Recorded, not executed: the caller is told which and why.
                Admission::Gated(id, decision) => {
                    let gate = decision.gate();
                    let status = match &gate {
                        Gate::Held(_) => Admitted::Held,
                        Gate::Suppressed(_) => Admitted::Suppressed,
                        Gate::Run => Admitted::Queued,
                    };
                    (vec![id], status, gate.reason().map(String::from))
                }
                Admission::Cooldown => (Vec::new(), Admitted::Cooldown, None),
            };
            let body = RunAccepted {
                runs,
                status,
                reason,
            };
            reply(&app, ENDPOINT, StatusCode::ACCEPTED, replies::json(body))
        }
        Err(refusal) => {
            if let (Refusal::UnknownNode(why), Some(node)) = (&refusal, node) {
                intake::record_refused_run(&app, &playbook, &node, why).await;
            }
            let status = refusal_status(&refusal);
            error(&app, ENDPOINT, status, refusal.to_string())
        }
    }
}
