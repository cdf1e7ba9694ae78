//! What a load balancer and Prometheus ask: `/healthz` (up when the run store answers) and
//! `/metrics` (OpenMetrics, gauges refreshed from the store on each scrape).

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::Shared;
use crate::respond::Json;

/// Up when the run store answers: a replica that cannot store runs cannot take webhooks, and
/// a load balancer should send them elsewhere.
pub(crate) async fn healthz(State(app): State<Shared>) -> Response {
    let store = app.store.clone();
    let answer = tokio::time::timeout(Duration::from_secs(5), store.ping()).await;
    let (status, health, detail) = match answer {
        Ok(Ok(took)) => (
            StatusCode::OK,
            "ok",
            json!({ "ok": true, "latency_ms": took.as_secs_f64() * 1e3 }),
        ),
        // Unauthenticated: why stays in the server's log.
        Ok(Err(e)) => {
            tracing::warn!("healthz: the run store does not answer: {e:#}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                json!({ "ok": false, "error": "the run store does not answer" }),
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            json!({ "ok": false, "error": "no answer within 5 s" }),
        ),
    };
    let mut body = json!({ "status": health, "store": { "backend": store.kind() } });
    body["store"]
        .as_object_mut()
        .expect("an object")
        .extend(detail.as_object().cloned().unwrap_or_default());
    (status, Json(body)).into_response()
}

pub(crate) async fn metrics_text(State(app): State<Shared>) -> Response {
    let notifier = app.dispatcher.host().notifier();
    let store = notifier.store().clone();
    if let Ok(pending) = store.outbox_pending().await {
        app.dispatcher
            .metrics
            .set_pending(&notifier.names(), &pending);
    }
    let seen = async {
        let latency = store.ping().await?;
        anyhow::Ok((latency, store.run_counts().await?))
    };
    app.dispatcher.metrics.set_store(seen.await.ok());
    if let Ok(pending) = store.approvals(None).await {
        let runs: std::collections::HashSet<&str> =
            pending.iter().map(|a| a.run_id.as_str()).collect();
        app.dispatcher.metrics.set_waiting_approval(runs.len());
    }
    if let Ok(breakers) = store.breakers().await {
        app.dispatcher.metrics.set_breakers(&breakers);
    }
    let frozen = app.store.freeze_state().await.ok().map(|f| f.is_some());
    app.dispatcher.metrics.safety.update(frozen);
    if let Ok(nodes) = store.nodes().await {
        app.dispatcher
            .metrics
            .set_nodes(&nodes, app.dispatcher.lease());
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.dispatcher.metrics.encode(),
    )
        .into_response()
}
