//! How the server answers: JSON bodies, the status a refusal maps to, `Retry-After` when the
//! queue is full, and the one log line per request (which reads what `reply` marks on the
//! response: the runs it started, a refused credential).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::admission::Refusal;
use crate::app::App;

/// Seconds a client is told to wait when the queue is full.
pub(crate) const RETRY_AFTER_SECS: u64 = 5;

pub(crate) struct Json(pub(crate) Value);

/// The runs a request started or answered with, for its log line.
#[derive(Clone)]
pub(crate) struct RunIds(Vec<String>);

/// Set on a response that refused the caller's credentials (401/403), for its log line.
#[derive(Clone, Copy)]
pub(crate) struct AuthRefused;

pub(crate) static REQUEST_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// One line per request: method, path (never the query: a client may put a token there),
/// status, latency, whether auth refused it, the runs it started. Everything the handlers log
/// meanwhile carries the request id and remote address. No header or body is logged.
pub(crate) async fn log_request(
    axum::extract::ConnectInfo(remote): axum::extract::ConnectInfo<std::net::SocketAddr>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use tracing::Instrument;
    let id = REQUEST_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let span = tracing::info_span!("request", request_id = id, remote = %remote);
    let method = request.method().clone();
    let path = crate::text::escape(&crate::text::echo(request.uri().path())).into_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let auth = if response.extensions().get::<AuthRefused>().is_some() {
        "refused"
    } else {
        "ok"
    };
    let runs = response
        .extensions()
        .get::<RunIds>()
        .map(|r| r.0.join(","))
        .unwrap_or_default();
    span.in_scope(|| {
        tracing::info!(
            method = %method,
            path = %path,
            status = response.status().as_u16(),
            latency_ms = crate::timeline::round_ms(started.elapsed()),
            auth,
            runs = %runs,
            "request"
        )
    });
    response
}

/// A NUL byte (`%00`) in a path or query names nothing this server has, and PostgreSQL
/// refuses it in text (which the handler would answer 503, "try again", for good): a 400 here,
/// as plain text like axum's own refusals of a path or query, before any handler sees it.
pub(crate) async fn refuse_nul(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let spelled = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or_default();
    if spelled
        .as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0')
    {
        return (
            StatusCode::BAD_REQUEST,
            "Invalid URL: a NUL byte (%00) in the path or query",
        )
            .into_response();
    }
    next.run(request).await
}

impl IntoResponse for Json {
    fn into_response(self) -> Response {
        (
            [(header::CONTENT_TYPE, "application/json")],
            self.0.to_string(),
        )
            .into_response()
    }
}

pub(crate) fn reply(app: &App, endpoint: &str, status: StatusCode, body: Value) -> Response {
    app.dispatcher.metrics.request(endpoint, status.as_u16());
    let runs: Vec<String> = body["runs"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(|id| id.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut response = (status, Json(body)).into_response();
    if !runs.is_empty() {
        response.extensions_mut().insert(RunIds(runs));
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    response
}

pub(crate) fn error(
    app: &App,
    endpoint: &str,
    status: StatusCode,
    message: impl Into<String>,
) -> Response {
    let body = crate::replies::Error {
        error: message.into(),
    };
    reply(app, endpoint, status, crate::replies::json(body))
}

/// What a caller is told when the store fails a request.
pub(crate) const STORE_DOWN: &str = "the run store does not answer; retry later";

/// The store failed a request: 503 with Retry-After, as documented for every store-backed
/// operation. The cause goes to the log only: a connection error names the database's host,
/// user and name, which are no caller's business.
pub(crate) fn store_unavailable(app: &App, endpoint: &str, e: &anyhow::Error) -> Response {
    tracing::warn!(endpoint, "the run store failed a request: {e:#}");
    error(app, endpoint, StatusCode::SERVICE_UNAVAILABLE, STORE_DOWN)
}

pub(crate) fn refusal_status(refusal: &Refusal) -> StatusCode {
    match refusal {
        Refusal::UnknownPlaybook(_) | Refusal::UnknownNode(_) => StatusCode::NOT_FOUND,
        Refusal::Invalid(_) => StatusCode::BAD_REQUEST,
        Refusal::Broken(_) | Refusal::BadValue(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Refusal::Busy(_) | Refusal::NodeBusy(_) | Refusal::Unavailable => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Refusal::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
