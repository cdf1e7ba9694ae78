//! What a load balancer and Prometheus ask: `/healthz` (up when the run store answers) and
//! `/metrics` (OpenMetrics, gauges refreshed from the store on each scrape).

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::Shared;
use crate::replies::{Health, HealthState, StoreHealth};
use crate::respond::Json;

/// Up when the run store answers: a replica that cannot store runs cannot take webhooks, and
/// a load balancer should send them elsewhere.
pub(crate) async fn healthz(State(app): State<Shared>) -> Response {
    let store = app.store.clone();
    let answer = tokio::time::timeout(Duration::from_secs(5), store.ping()).await;
    let (latency_ms, error) = match answer {
        Ok(Ok(took)) => (Some(took.as_secs_f64() * 1e3), None),
        // Unauthenticated: why stays in the server's log.
        Ok(Err(e)) => {
            tracing::warn!("healthz: the run store does not answer: {e:#}");
            (None, Some("the run store does not answer"))
        }
        Err(_) => (None, Some("no answer within 5 s")),
    };
    let (status, health) = match error {
        None => (StatusCode::OK, HealthState::Ok),
        Some(_) => (StatusCode::SERVICE_UNAVAILABLE, HealthState::Unavailable),
    };
    let body = Health {
        status: health,
        store: StoreHealth {
            backend: store.kind().to_string(),
            ok: error.is_none(),
            latency_ms,
            error: error.map(String::from),
        },
    };
    (status, Json(crate::replies::json(body))).into_response()
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
