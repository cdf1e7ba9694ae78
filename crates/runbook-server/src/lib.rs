//! `host serve`: the webhook server. Alertmanager (and Grafana) payloads are routed by label
//! matchers to playbooks; `/hooks/run/{playbook}` takes any JSON object as parameters. A
//! request is answered 202 only after its runs are in the store; 4xx only when retrying can
//! never help (Alertmanager retries 5xx only), 503 with Retry-After when the queue is full.
//! Also the run API, the dispatch/claim loop, rescue of dead replicas' runs, the fleet server,
//! the console (`ui/`), schedules and reload on SIGHUP.
//!
//! The top layer below the CLI: imports `runbook-runtime`, `runbook-store` and `runbook-core`;
//! nothing below imports it, and it never imports the CLI (`host/`).

// The layers below, under the names this crate's files use. The runtime's `cancel`, `fleet`
// and `schedule` are named in full: this crate has its own modules of those names.
pub(crate) use runbook_core::{policy, records, severity, signing, text, timeline};
pub(crate) use runbook_runtime::{
    approval, bindings, caps, catalog, config, incident, notify, params, postmortem, render, run,
    state, style,
};
pub(crate) use runbook_store as store;

mod approvals;
mod auth;
mod cancel;
mod dispatch;
mod fleet;
mod intake;
mod metrics;
mod reload;
mod rescue;
mod routing;
mod schedule;
mod ui;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use self::dispatch::{Admission, Dispatcher, Refusal};
use self::metrics::Metrics;
use crate::bindings::Alert;
use crate::records::Trigger;
use crate::run::{Host, RunRequest};
use crate::severity::Priority;
use crate::store::{AlertRecord, Disposition, StoredRun};

use self::auth::Verified;
pub use self::auth::Verifier;
pub use self::routing::{Matcher, Router as AlertRouter};

/// Whether `[fleet]` is usable: every node's token loads and is long enough.
pub fn check_fleet(config: &crate::config::FleetConfig) -> Result<()> {
    fleet::Fleet::from_config(config).map(|_| ())
}

/// Whether `[ui]` is usable: a kind the console takes, its secret loads.
pub fn check_ui(config: &crate::config::UiConfig) -> Result<()> {
    ui::verifier(config).map(|_| ())
}

/// Seconds a client is told to wait when the queue is full.
const RETRY_AFTER_SECS: u64 = 5;

struct App {
    dispatcher: Arc<Dispatcher>,
    fleet: fleet::Fleet,
    /// Routes, webhook auth and the console's `[ui]` auth as host.toml last (re)loaded them
    /// (SIGHUP).
    live: std::sync::RwLock<Arc<reload::Live>>,
    console: ui::Console,
    /// The `[[schedule]]`s firing, as host.toml last (re)loaded them.
    schedules: schedule::Schedules,
}

impl App {
    fn live(&self) -> Arc<reload::Live> {
        self.live.read().unwrap().clone()
    }
}

type Shared = Arc<App>;

/// Serves until SIGTERM/SIGINT, then drains: no new requests, running runs get the grace
/// period and are then marked interrupted, runs not started stay queued for the next host.
pub async fn serve(host: Host, ready: impl FnOnce(std::net::SocketAddr)) -> Result<()> {
    let server = &host.config.server;
    let listen = server.listen.clone();
    let grace = Duration::from_secs(server.shutdown_grace_secs);
    let max_body = server.max_body_bytes;
    let store = host.store.clone().context("the server needs a run store")?;
    let live = reload::Live::from_config(&host.config)?;
    // Delivers what this host's runs queue, and what an earlier host left pending.
    let notifier = host.notifier();
    for (channel, problem) in notifier.problems() {
        tracing::warn!("notify channel {channel} cannot deliver (messages are kept): {problem}");
    }
    notifier.start();
    // Answers to questions are taken in from every channel for the server's whole life.
    let approvals = host.approvals();
    if let Some(approvals) = &approvals {
        approvals.listen();
    }
    let lease = host.config.server.lease();
    let fleet = fleet::Fleet::from_config(&host.config.fleet)?;
    let node_wait = fleet.node_wait;
    let console = ui::Console::new(&*store).await?;
    if let Some(url) = &host.config.server.public_url {
        crate::notify::set_public_url(url).context("[server] public-url")?;
    }
    let node_intake = fleet.intake(&host.config.fleet);
    let dispatcher = Arc::new(
        Dispatcher::new(Arc::new(host), Arc::new(Metrics::new()), node_intake)
            .context("starting the runtime that executes runs")?,
    );
    let schedules = schedule::Schedules::start(&dispatcher).await?;
    let app = Arc::new(App {
        dispatcher,
        fleet,
        live: std::sync::RwLock::new(Arc::new(live)),
        console,
        schedules,
    });
    let reloader = tokio::spawn(reload::on_sighup(app.clone()));
    // Runs of a process that died are lost once their lease ends, whichever replica looks;
    // this one's leases are renewed as long as it lives.
    let (stop_looking, stopped) = tokio::sync::watch::channel(false);
    let leases = crate::store::keep_leases(store.clone(), lease);
    let cancels = runbook_runtime::cancel::watch(store.clone());
    let rescuer = tokio::spawn(rescue::keep_looking(
        notifier.clone(),
        store.clone(),
        approvals,
        (lease / 3).max(Duration::from_millis(200)),
        node_wait,
        stopped,
    ));
    let claims = tokio::spawn(app.dispatcher.clone().claim_loop());

    let routes = Router::new()
        .route("/hooks/alertmanager", post(alertmanager_hook))
        .route("/hooks/run/{playbook}", post(run_hook))
        .route("/runs", get(list_runs))
        .route("/runs/{id}", get(show_run))
        .route("/runs/{id}/report", get(run_report))
        .route("/alerts", get(list_alerts))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .merge(fleet::node_routes())
        .merge(approvals::routes())
        .merge(cancel::routes())
        .merge(ui::routes(app.clone()))
        .layer(DefaultBodyLimit::max(max_body))
        .merge(fleet::routes())
        .layer(axum::middleware::from_fn(log_request))
        .with_state(app.clone());

    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    ready(listener.local_addr()?);
    let closing = app.fleet.closing.clone();
    axum::serve(
        listener,
        routes.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        // Held agent polls answer now rather than at the end of their wait.
        closing.cancel();
    })
    .await?;
    app.schedules.stop();
    // Runs it already claimed start; then the running ones get the grace.
    app.dispatcher.stop_claiming();
    let _ = claims.await;
    let left = app.dispatcher.shutdown(grace).await;
    let _ = stop_looking.send(true);
    let _ = rescuer.await;
    reloader.abort();
    leases.abort();
    cancels.abort();
    if left > 0 {
        tracing::warn!(
            "shutdown: {left} runs did not finish within {}s and are marked interrupted; \
             queued runs are left for the next host",
            grace.as_secs()
        );
    }
    // In-flight deliveries finish; what is still pending waits in the outbox for the next host.
    notifier.stop(Duration::from_secs(10)).await;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down: no new webhooks; waiting for running runs");
}

struct Json(Value);

/// The runs a request started or answered with, for its log line.
#[derive(Clone)]
struct RunIds(Vec<String>);

/// Set on a response that refused the caller's credentials (401/403), for its log line.
#[derive(Clone, Copy)]
struct AuthRefused;

static REQUEST_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// One line per request: method, path (never the query: a client may put a token there),
/// status, latency, whether auth refused it, the runs it started. Everything the handlers log
/// meanwhile carries the request id and remote address. No header or body is logged.
async fn log_request(
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

impl IntoResponse for Json {
    fn into_response(self) -> Response {
        (
            [(header::CONTENT_TYPE, "application/json")],
            self.0.to_string(),
        )
            .into_response()
    }
}

fn reply(app: &App, endpoint: &str, status: StatusCode, body: Value) -> Response {
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

fn error(app: &App, endpoint: &str, status: StatusCode, message: impl Into<String>) -> Response {
    reply(app, endpoint, status, json!({ "error": message.into() }))
}

/// The 401 to answer, if any: a missing or failed check, or no auth configured at all.
async fn refuse(app: &App, endpoint: &str, headers: &HeaderMap, body: &[u8]) -> Option<Response> {
    let live = app.live();
    let Some(verifier) = live.verifiers.get(endpoint) else {
        tracing::warn!("refused a call to {endpoint}: no [webhooks.{endpoint}] auth is configured");
        let mut refused = error(
            app,
            endpoint,
            StatusCode::UNAUTHORIZED,
            format!(
                "unauthorized: this endpoint needs [webhooks.{endpoint}] auth in host.toml \
                 (auth = {{ kind = \"none\" }} opens it)"
            ),
        );
        refused.extensions_mut().insert(AuthRefused);
        return Some(refused);
    };
    let reason = match verifier.verify(headers, body) {
        Ok(Verified::Done) => return None,
        Ok(Verified::IfFirst(id)) => {
            let store = app
                .dispatcher
                .host()
                .store
                .clone()
                .expect("the server has a store");
            match store.first_delivery(&id, auth::REPLAY_WINDOW).await {
                Ok(true) => return None,
                Ok(false) => format!(
                    "webhook-id {} was already delivered (replay)",
                    crate::text::escape(&crate::text::echo(&id))
                ),
                // Not acknowledged: the sender retries once the store answers.
                Err(e) => {
                    return Some(error(
                        app,
                        endpoint,
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("the run store does not answer: {e:#}"),
                    ));
                }
            }
        }
        Err(reason) => reason,
    };
    tracing::warn!(
        "refused a call to {endpoint} ({}): {reason}",
        verifier.kind()
    );
    let mut refused = error(app, endpoint, StatusCode::UNAUTHORIZED, "unauthorized");
    refused.extensions_mut().insert(AuthRefused);
    Some(refused)
}

fn refusal_status(refusal: &Refusal) -> StatusCode {
    match refusal {
        Refusal::UnknownPlaybook(_) | Refusal::UnknownNode(_) => StatusCode::NOT_FOUND,
        Refusal::Invalid(_) => StatusCode::BAD_REQUEST,
        Refusal::Broken(_) | Refusal::BadValue(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Refusal::Busy(_) | Refusal::NodeBusy(_) | Refusal::Unavailable(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Refusal::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn alertmanager_hook(State(app): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
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
    let body = json!({ "runs": runs, "alerts": outcomes });
    reply(&app, ENDPOINT, StatusCode::ACCEPTED, body)
}

/// Routes one alert and records what became of it (started, deduplicated, cooldown, resolved,
/// unrouted, rejected). Only "try again later" conditions are returned as errors. A route's
/// admission stores its own record (with the run, in the same transaction); the others are
/// stored together at the end.
async fn handle_alert(app: &App, alert: &Alert) -> Result<Vec<AlertRecord>, Refusal> {
    let host = app.dispatcher.host();
    let store = host.store.clone().expect("the server has a store");
    let labels: serde_json::Map<String, Value> = alert
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let record = |disposition: Disposition,
                  playbook: Option<&str>,
                  run_id: Option<String>,
                  detail: Option<String>| AlertRecord {
        received_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        source: "alertmanager".into(),
        alertname: alert.name.clone(),
        status: alert.status.clone(),
        fingerprint: alert.fingerprint.clone(),
        starts_at: alert.starts_at.clone(),
        labels: Value::Object(labels.clone()),
        disposition,
        playbook: playbook.map(String::from),
        run_id,
        detail,
    };
    let mut records = Vec::new();
    let mut unstored = Vec::new();
    if alert.status == "resolved" {
        let resolved = crate::notify::AlertRef {
            name: alert.name.clone(),
            fingerprint: alert.fingerprint.clone(),
            status: alert.status.clone(),
        };
        if let Err(e) = host.notifier().resolve_incident(&resolved).await {
            tracing::warn!(
                "resolving {} in PagerDuty: {e:#}",
                crate::text::escape(&crate::text::echo(&alert.name))
            );
        }
    }
    let live = app.live();
    let routes = live.router.routes_for(alert);
    if alert.status == "resolved" && !host.config.server.run_resolved {
        let playbooks: Vec<&str> = routes.iter().map(|r| r.config.playbook.as_str()).collect();
        unstored.push(record(
            Disposition::Resolved,
            playbooks.first().copied(),
            None,
            None,
        ));
    } else if routes.is_empty() {
        unstored.push(record(Disposition::Unrouted, None, None, None));
    }
    records.extend(unstored.iter().cloned());
    let wants_runs = alert.status != "resolved" || host.config.server.run_resolved;
    for route in routes.into_iter().filter(|_| wants_runs) {
        let playbook = route.config.playbook.as_str();
        let request = RunRequest {
            params: route.params_for(alert),
            alert: Some(alert.clone()),
            trigger: Trigger::Alert,
            by: None,
            dry_run: route.config.dry_run,
            dedup_key: Some(format!(
                "{playbook}|{}|{}|{}",
                alert.fingerprint, alert.starts_at, alert.status
            )),
            severity: route.severity,
        };
        let cooldown = route
            .config
            .cooldown_secs
            .map(|s| (alert.fingerprint.clone(), Duration::from_secs(s)));
        let node = match route.node_for(alert).transpose() {
            Ok(node) => node,
            Err(problem) => {
                let rejected = record(Disposition::Rejected, Some(playbook), None, Some(problem));
                records.push(rejected.clone());
                unstored.push(rejected);
                continue;
            }
        };
        // Disposition and run id are the store's to fill in (`Admitted::disposition`).
        let template = record(Disposition::Started, Some(playbook), None, None);
        let submitted = app
            .dispatcher
            .submit(playbook, request, node, cooldown, Some(template))
            .await;
        match submitted {
            Ok(Admission::Started(id)) => {
                records.push(record(Disposition::Started, Some(playbook), Some(id), None));
            }
            Ok(Admission::Deduplicated(id)) => {
                records.push(record(
                    Disposition::Deduplicated,
                    Some(playbook),
                    Some(id),
                    None,
                ));
            }
            Ok(Admission::Cooldown) => {
                records.push(record(Disposition::Cooldown, Some(playbook), None, None))
            }
            // A route whose parameters or playbook are wrong will never work: say so, don't retry.
            Err(
                e @ (Refusal::Invalid(_)
                | Refusal::BadValue(_)
                | Refusal::UnknownPlaybook(_)
                | Refusal::UnknownNode(_)
                | Refusal::Broken(_)),
            ) => {
                let rejected = record(
                    Disposition::Rejected,
                    Some(playbook),
                    None,
                    Some(e.to_string()),
                );
                records.push(rejected.clone());
                unstored.push(rejected);
            }
            Err(e) => return Err(e),
        }
    }
    if !unstored.is_empty() {
        store
            .record_alerts(unstored)
            .await
            .map_err(|e| Refusal::Unavailable(format!("recording the alert: {e:#}")))?;
    }
    Ok(records)
}

#[derive(Deserialize)]
struct RunQuery {
    #[serde(default)]
    dry_run: bool,
    severity: Option<String>,
    /// The fleet node whose agent runs it (absent: this server).
    node: Option<String>,
}

async fn run_hook(
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
    let params = if body.is_empty() {
        Vec::new()
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(map)) => map
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => (k, s),
                    other => (k, other.to_string()),
                })
                .collect(),
            Ok(_) => {
                return error(
                    &app,
                    ENDPOINT,
                    StatusCode::BAD_REQUEST,
                    "the body must be a JSON object of parameters",
                );
            }
            Err(e) => {
                return error(
                    &app,
                    ENDPOINT,
                    StatusCode::BAD_REQUEST,
                    format!("not JSON: {e}"),
                );
            }
        }
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
        Ok(Admission::Started(id)) => reply(
            &app,
            ENDPOINT,
            StatusCode::ACCEPTED,
            json!({ "runs": [id], "status": "queued" }),
        ),
        Ok(Admission::Deduplicated(id)) => reply(
            &app,
            ENDPOINT,
            StatusCode::ACCEPTED,
            json!({ "runs": [id], "status": "deduplicated" }),
        ),
        Ok(Admission::Cooldown) => reply(
            &app,
            ENDPOINT,
            StatusCode::ACCEPTED,
            json!({ "runs": [], "status": "cooldown" }),
        ),
        Err(refusal) => {
            if let (Refusal::UnknownNode(why), Some(node)) = (&refusal, node) {
                intake::record_refused_run(&app, &playbook, &node, why).await;
            }
            let status = refusal_status(&refusal);
            error(&app, ENDPOINT, status, refusal.to_string())
        }
    }
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<usize>,
    playbook: Option<String>,
}

/// Runs hold parameters, alert labels and log evidence: the read-only views need
/// `[webhooks.api]` auth like the hooks do, and are open only when the operator says so
/// (`auth = { kind = "none" }`).
async fn refuse_api(app: &App, headers: &HeaderMap) -> Option<Response> {
    refuse(app, "api", headers, &[]).await
}

async fn list_runs(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    if let Some(denied) = refuse_api(&app, &headers).await {
        return denied;
    }
    let store = app.dispatcher.host().store.clone().expect("store");
    let listed = store
        .list(q.limit.unwrap_or(50).min(1000), q.playbook.as_deref())
        .await;
    match listed {
        Ok(runs) => reply(&app, "runs", StatusCode::OK, json!(runs)),
        Err(e) => error(
            &app,
            "runs",
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{e:#}"),
        ),
    }
}

async fn show_run(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match stored_run(&app, &headers, id).await {
        Ok(run) => reply(&app, "runs", StatusCode::OK, json!(run)),
        Err(refused) => *refused,
    }
}

/// The run, or the response that says why not (auth, 404, store error).
async fn stored_run(
    app: &App,
    headers: &HeaderMap,
    id: String,
) -> Result<StoredRun, Box<Response>> {
    if let Some(denied) = refuse_api(app, headers).await {
        return Err(Box::new(denied));
    }
    find_run(app, id).await
}

/// The run, or the response that says why not (404, store error), for a caller whose auth
/// was checked (the API's, the console's gate).
async fn find_run(app: &App, id: String) -> Result<StoredRun, Box<Response>> {
    let store = app.dispatcher.host().store.clone().expect("store");
    let found = store.get(&id).await;
    let refusal = match found {
        Ok(Some(run)) => return Ok(run),
        Ok(None) => (StatusCode::NOT_FOUND, format!("no run {id}")),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    };
    Err(Box::new(error(app, "runs", refusal.0, refusal.1)))
}

/// The run as a post-incident review, `text/markdown`.
async fn run_report(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(denied) = refuse_api(&app, &headers).await {
        return denied;
    }
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
async fn report_of(
    app: &App,
    id: String,
) -> Result<(crate::store::StoredRun, String), Box<Response>> {
    let run = find_run(app, id).await?;
    let store = app.dispatcher.host().store.clone().expect("store");
    let report = crate::postmortem::render_from(&*store, &run).await;
    Ok((run, report))
}

async fn list_alerts(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    if let Some(denied) = refuse_api(&app, &headers).await {
        return denied;
    }
    let store = app.dispatcher.host().store.clone().expect("store");
    match store.alerts(q.limit.unwrap_or(100).min(1000)).await {
        Ok(alerts) => reply(&app, "alerts", StatusCode::OK, json!(alerts)),
        Err(e) => error(
            &app,
            "alerts",
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{e:#}"),
        ),
    }
}

/// Up when the run store answers: a replica that cannot store runs cannot take webhooks, and
/// a load balancer should send them elsewhere.
async fn healthz(State(app): State<Shared>) -> Response {
    let store = app
        .dispatcher
        .host()
        .store
        .clone()
        .expect("the server has a store");
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

async fn metrics_text(State(app): State<Shared>) -> Response {
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
