//! The server's side of the fleet (see `fleet/`): the agent API under `/agent/v1/` and
//! `/nodes`. Each agent presents its node's bearer token; the token names the node, so an
//! agent can only take, renew, write and finish its own node's runs. An agent's writes are
//! accepted only while its session holds the run in the store: a run marked `lost` after its
//! lease, or an agent restarted (a new session), is answered 409 and the agent stops it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use super::dispatch::Refusal;
use super::{App, Shared, error, reply};
use crate::caps::report::{NotKept, admit_artifact};
use crate::config::FleetConfig;
use crate::records::{Artifact, RunOutcome};
use crate::run::{MAX_ACTION_BYTES, MAX_ACTIONS, MAX_SUMMARY_BYTES};
use crate::state::LimitExceeded;
use crate::store::Appended;
use crate::store::Store as RunStore;
use crate::timeline::{Event, EventKind};
use runbook_runtime::fleet::{
    AgentId, END_STATUSES, EventsUpload, FinishUpload, HeartbeatRequest, HeartbeatResponse,
    PollRequest, PollResponse, check_session, runner_of,
};

const ENDPOINT: &str = "agent";
/// An outcome carries the run's timeline and artifacts (a node's default caps: 4 MiB and
/// 8 MiB); anything bigger is refused, not truncated.
const MAX_FINISH_BYTES: usize = 32 << 20;
const MAX_EVENTS_PER_UPLOAD: usize = 4096;
/// A run's live timeline, however many uploads it comes in (a node's default cap of 4 MiB of
/// timeline is far fewer events).
const MAX_EVENTS_PER_RUN: usize = 100_000;
const MAX_RUNS_PER_AGENT: usize = 256;
const MAX_REASON_BYTES: usize = 8 << 10;
/// How often a held poll looks at the store without a wake (a lost NOTIFY).
const POLL_RECHECK: Duration = Duration::from_secs(1);

/// (node, its token) of every configured node; replaced on SIGHUP. The intake reads it too:
/// a node without a token has no agent that could ever take its runs.
pub type NodeTokens = Arc<std::sync::RwLock<Vec<(String, Vec<u8>)>>>;

pub struct Fleet {
    tokens: NodeTokens,
    pub node_wait: Duration,
    poll_max: Duration,
    /// Cancelled when the server starts shutting down: held polls answer at once, so the
    /// graceful shutdown does not wait out a long poll.
    pub closing: CancellationToken,
}

impl Fleet {
    pub fn from_config(config: &FleetConfig) -> anyhow::Result<Self> {
        Ok(Self {
            tokens: Arc::new(std::sync::RwLock::new(Self::tokens_of(config)?)),
            node_wait: Duration::from_secs(config.node_wait_secs),
            poll_max: Duration::from_secs(config.poll_secs.max(1)),
            closing: CancellationToken::new(),
        })
    }

    /// A reloaded host.toml's node tokens (checked before anything is swapped).
    pub fn tokens_of(config: &FleetConfig) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let mut tokens = Vec::new();
        for (node, node_config) in &config.nodes {
            let token = node_config
                .token
                .load()
                .map_err(|e| anyhow::anyhow!("[fleet.nodes.{node}] token: {e:#}"))?;
            anyhow::ensure!(
                token.len() >= 16,
                "[fleet.nodes.{node}] token: at least 16 characters (it is all that stands \
                 between anyone who can reach the server and that node's runs)"
            );
            tokens.push((node.clone(), token.into_bytes()));
        }
        Ok(tokens)
    }

    pub fn set_tokens(&self, tokens: Vec<(String, Vec<u8>)>) {
        *self.tokens.write().unwrap() = tokens;
    }

    /// What the intake checks a node-bound run against (the same tokens, reloaded with them).
    pub fn intake(&self, config: &FleetConfig) -> NodeIntake {
        NodeIntake {
            nodes: self.tokens.clone(),
            queue_limit: config.queue_limit,
            per_node: config.queue_limit_per_node,
        }
    }

    /// The node whose token the request carries. Every token is compared (in constant time),
    /// so timing does not say which one nearly matched.
    fn node_of(&self, headers: &HeaderMap) -> Option<String> {
        let given = headers
            .get(header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?
            .as_bytes();
        let mut found = None;
        for (node, token) in self.tokens.read().unwrap().iter() {
            if bool::from(token.as_slice().ct_eq(given)) {
                found = Some(node.clone());
            }
        }
        found
    }
}

/// The door for runs bound to a node: the node must be configured (else no agent could ever
/// take the run: refused, not queued to end `undeliverable` and page ops), and runs waiting
/// for nodes have their own bound, per node and in total, apart from `[server] queue-limit`.
pub struct NodeIntake {
    nodes: NodeTokens,
    queue_limit: usize,
    per_node: usize,
}

impl NodeIntake {
    pub fn knows(&self, node: &str) -> bool {
        self.nodes
            .read()
            .unwrap()
            .iter()
            .any(|(name, _)| name == node)
    }

    /// Whether one more run may wait for `node`. Counted in the store (every replica's
    /// admissions), so concurrent admissions can pass the bound by the few in flight.
    pub async fn check(&self, store: &RunStore, node: &str) -> Result<(), Refusal> {
        if !self.knows(node) {
            return Err(Refusal::UnknownNode(format!(
                "node {node} is not one of this server's fleet nodes (configured: {}); \
                 add [fleet.nodes.{node}] with its agent's token to host.toml",
                self.configured()
            )));
        }
        let depths = store
            .queue_depths(Some(node))
            .await
            .map_err(|e| Refusal::Unavailable(format!("{e:#}")))?;
        if depths.node >= self.per_node {
            return Err(Refusal::NodeBusy(format!(
                "{} runs already wait for node {node}'s agent ([fleet] queue-limit-per-node = \
                 {}); retry later",
                depths.node, self.per_node
            )));
        }
        if depths.nodes >= self.queue_limit {
            return Err(Refusal::NodeBusy(format!(
                "{} runs already wait for fleet nodes ([fleet] queue-limit = {}); retry later",
                depths.nodes, self.queue_limit
            )));
        }
        Ok(())
    }

    fn configured(&self) -> String {
        let nodes = self.nodes.read().unwrap();
        if nodes.is_empty() {
            return "none".into();
        }
        nodes
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/agent/v1/poll", post(poll))
        .route("/agent/v1/heartbeat", post(heartbeat))
        .route("/agent/v1/runs/{id}/events", post(events))
        .route("/agent/v1/runs/{id}/finish", post(finish))
        .layer(DefaultBodyLimit::max(MAX_FINISH_BYTES))
}

pub fn node_routes() -> Router<Shared> {
    Router::new().route("/nodes", get(list_nodes))
}

/// The agent's runner in the store, or the response refusing it: 401 without a known token,
/// 403 when the token is another node's, 400 for a malformed body.
fn admit_agent<T: DeserializeOwned>(
    app: &App,
    headers: &HeaderMap,
    body: &[u8],
    agent_of: impl Fn(&T) -> &AgentId,
) -> Result<(T, String), Box<Response>> {
    let Some(node) = app.fleet.node_of(headers) else {
        let why = if app.fleet.tokens.read().unwrap().is_empty() {
            "unauthorized: this server takes no agents ([fleet.nodes.<name>] token = … in host.toml)"
        } else {
            "unauthorized: no node has this token"
        };
        return Err(Box::new(error(
            app,
            ENDPOINT,
            StatusCode::UNAUTHORIZED,
            why,
        )));
    };
    let request: T = serde_json::from_slice(body).map_err(|e| {
        Box::new(error(
            app,
            ENDPOINT,
            StatusCode::BAD_REQUEST,
            format!("not an agent request: {e}"),
        ))
    })?;
    let agent = agent_of(&request);
    if agent.node != node {
        tracing::warn!(
            "refused an agent: the token of node {node} was presented for node {}",
            crate::text::escape(&crate::text::echo(&agent.node))
        );
        let mut refused = error(
            app,
            ENDPOINT,
            StatusCode::FORBIDDEN,
            format!("forbidden: this token is node {node}'s, not the node the request names"),
        );
        refused.extensions_mut().insert(super::AuthRefused);
        return Err(Box::new(refused));
    }
    check_session(&agent.session)
        .and_then(|()| {
            (agent.version.len() <= 64)
                .then_some(())
                .ok_or_else(|| "an agent version is at most 64 bytes".to_string())
        })
        .map_err(|e| Box::new(error(app, ENDPOINT, StatusCode::BAD_REQUEST, e)))?;
    let runner = runner_of(&node, &agent.session);
    Ok((request, runner))
}

fn unavailable(app: &App, e: anyhow::Error) -> Response {
    error(
        app,
        ENDPOINT,
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the run store does not answer: {e:#}"),
    )
}

fn not_held(app: &App, id: &str) -> Response {
    error(
        app,
        ENDPOINT,
        StatusCode::CONFLICT,
        format!(
            "run {} is no longer this agent's (lost after its lease ran out, ended, or held by \
             an earlier agent process): stop it and write nothing more",
            crate::text::escape(&crate::text::echo(id))
        ),
    )
}

/// Claims runs for the agent's node; held until one is queued or the wait ends.
async fn poll(State(app): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let (request, runner) = match admit_agent::<PollRequest>(&app, &headers, &body, |r| &r.agent) {
        Ok(admitted) => admitted,
        Err(refused) => return *refused,
    };
    let store = app.dispatcher.host().store.clone().expect("store");
    let agent = &request.agent;
    if let Err(e) = store
        .node_seen(&agent.node, &agent.session, &agent.version)
        .await
    {
        return unavailable(&app, e);
    }
    let lease = app.dispatcher.lease();
    let room = request.room.min(MAX_RUNS_PER_AGENT);
    let deadline = Instant::now() + Duration::from_millis(request.wait_ms).min(app.fleet.poll_max);
    let runs = loop {
        if room == 0 {
            break Vec::new();
        }
        match store
            .claim_for_node(
                &agent.node,
                &runner,
                room,
                app.dispatcher.slot_limits(),
                lease,
            )
            .await
        {
            Ok(runs) if !runs.is_empty() => break runs,
            Ok(_) => {}
            Err(e) => return unavailable(&app, e),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || app.fleet.closing.is_cancelled() {
            break Vec::new();
        }
        tokio::select! {
            _ = store.wait_for_queued(left.min(POLL_RECHECK)) => {}
            _ = app.fleet.closing.cancelled() => {}
        }
    };
    if !runs.is_empty() {
        tracing::info!(
            "node {}: {} runs handed to its agent",
            agent.node,
            runs.len()
        );
    }
    let answer = PollResponse {
        runs,
        lease_ms: lease.as_millis() as u64,
    };
    reply(&app, ENDPOINT, StatusCode::OK, json!(answer))
}

/// Renews the leases of the runs the agent still holds; says which it no longer does.
async fn heartbeat(State(app): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let (request, runner) =
        match admit_agent::<HeartbeatRequest>(&app, &headers, &body, |r| &r.agent) {
            Ok(admitted) => admitted,
            Err(refused) => return *refused,
        };
    if request.running.len() > MAX_RUNS_PER_AGENT || request.running.iter().any(|id| id.len() > 128)
    {
        return error(
            &app,
            ENDPOINT,
            StatusCode::BAD_REQUEST,
            format!("at most {MAX_RUNS_PER_AGENT} run ids of ≤ 128 bytes"),
        );
    }
    let store = app.dispatcher.host().store.clone().expect("store");
    let agent = &request.agent;
    let lease = app.dispatcher.lease();
    let seen = async {
        store
            .node_seen(&agent.node, &agent.session, &agent.version)
            .await?;
        store.renew_held(&runner, &request.running, lease).await
    };
    match seen.await {
        Ok(held) => {
            let answer = HeartbeatResponse {
                held,
                lease_ms: lease.as_millis() as u64,
            };
            reply(&app, ENDPOINT, StatusCode::OK, json!(answer))
        }
        Err(e) => unavailable(&app, e),
    }
}

/// Live timeline events of a run the agent holds.
async fn events(
    State(app): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (upload, runner) = match admit_agent::<EventsUpload>(&app, &headers, &body, |r| &r.agent) {
        Ok(admitted) => admitted,
        Err(refused) => return *refused,
    };
    if upload.events.len() > MAX_EVENTS_PER_UPLOAD
        || upload.from.saturating_add(upload.events.len()) > MAX_EVENTS_PER_RUN
    {
        return error(
            &app,
            ENDPOINT,
            StatusCode::BAD_REQUEST,
            format!(
                "at most {MAX_EVENTS_PER_UPLOAD} events per upload and {MAX_EVENTS_PER_RUN} per run"
            ),
        );
    }
    // The caps a local run's timeline has, by the same function; the store counts the run's
    // stored events against the same cap in the transaction that writes them.
    let events = upload
        .events
        .into_iter()
        .map(|e| crate::timeline::admit(e).1)
        .collect();
    let store = app.dispatcher.host().store.clone().expect("store");
    let max = record_caps().max_timeline_bytes;
    match store
        .append_events(&id, &runner, upload.from, events, max)
        .await
    {
        Ok(Appended::Stored) => reply(&app, ENDPOINT, StatusCode::OK, json!({ "ok": true })),
        Ok(Appended::NotHeld) => not_held(&app, &id),
        // As a local run: the run ends failed naming the limit; the agent, answered 409,
        // stops it and writes nothing more.
        Ok(Appended::Full(why)) => {
            let reason = format!(
                "{}; reported by node {}",
                LimitExceeded(why),
                upload.agent.node
            );
            if let Err(e) = store.end_unfinished(&id, "failed", &reason).await {
                return unavailable(&app, e);
            }
            tracing::warn!("run {id}: {reason}");
            error(
                &app,
                ENDPOINT,
                StatusCode::CONFLICT,
                format!("run {id} ended: {reason}"),
            )
        }
        Err(e) => unavailable(&app, e),
    }
}

/// The caps on what a run puts in the store. Not per-playbook settings: a node's own
/// host.toml can lower them for its runs, never raise what this server keeps.
fn record_caps() -> crate::policy::Limits {
    crate::policy::Limits::default()
}

/// A run's end on the node: outcome, whole timeline and artifacts, in one write.
async fn finish(
    State(app): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (upload, runner) = match admit_agent::<FinishUpload>(&app, &headers, &body, |r| &r.agent) {
        Ok(admitted) => admitted,
        Err(refused) => return *refused,
    };
    if upload.events.len() > MAX_EVENTS_PER_RUN || upload.artifacts.len() > MAX_EVENTS_PER_UPLOAD {
        return error(
            &app,
            ENDPOINT,
            StatusCode::BAD_REQUEST,
            "the outcome has more events or artifacts than a run may have",
        );
    }
    if let Err(problem) = outcome_problem(&upload) {
        return error(&app, ENDPOINT, StatusCode::BAD_REQUEST, problem);
    }
    let seconds = upload.timings["total_ms"].as_f64().unwrap_or_default() / 1e3;
    let outcome = node_outcome(&id, upload);
    let status = outcome.status.clone();
    let store = app.dispatcher.host().store.clone().expect("store");
    let playbook = match store.get(&id).await {
        Ok(Some(run)) => run.run.playbook,
        Ok(None) => return not_held(&app, &id),
        Err(e) => return unavailable(&app, e),
    };
    match store.finish_held(outcome, &runner).await {
        Ok(true) => {
            app.dispatcher.metrics.ended(&playbook, &status, seconds);
            reply(&app, ENDPOINT, StatusCode::OK, json!({ "ok": true }))
        }
        Ok(false) => not_held(&app, &id),
        Err(e) => unavailable(&app, e),
    }
}

/// What the store keeps of a node's outcome: its timeline and artifacts through the gates a
/// local run's pass (`timeline::admit`, `report::admit_artifact`), the artifacts' hashes and
/// sizes computed here from the bytes received, and what only the node can know (its grants
/// and timings) kept as reported by that node. Over a cap, the run ends `failed` naming the
/// limit, as a local run does.
fn node_outcome(id: &str, upload: FinishUpload) -> RunOutcome {
    let caps = record_caps();
    let node = upload.agent.node.clone();
    let mut over: Option<String> = None;
    let mut stored = 0;
    let mut events = Vec::with_capacity(upload.events.len());
    for event in upload.events {
        if let Some(why) = crate::timeline::over_cap(stored, caps.max_timeline_bytes) {
            over = Some(why);
            break;
        }
        let (_, json) = crate::timeline::admit(event);
        stored += json.len();
        events.push(json);
    }
    let mut total = 0;
    let mut artifacts = Vec::new();
    for artifact in upload.artifacts {
        let data = artifact.text.into_bytes();
        match admit_artifact(
            artifact.name,
            artifact.content_type,
            &data,
            &mut total,
            caps.max_artifact_bytes,
        ) {
            Ok(kept) => artifacts.push(kept),
            Err(NotKept::Invalid(e)) => {
                tracing::warn!("run {id}: node {node} sent an artifact no run may attach: {e}")
            }
            Err(NotKept::OverCap(why)) => {
                over.get_or_insert(why);
                break;
            }
        }
    }
    // The timeline's artifact events say what the server stored, not what the node claimed.
    let events = events
        .into_iter()
        .map(|json| with_stored_artifact(json, &artifacts))
        .collect();
    let (status, summary, reason) = match over {
        Some(why) => {
            let reason = format!("{}; reported by node {node}", LimitExceeded(why));
            (
                "failed".to_string(),
                format!("run failed: {reason}"),
                Some(reason),
            )
        }
        None => (upload.status, upload.summary, upload.reason),
    };
    RunOutcome {
        run_id: id.to_string(),
        status,
        summary,
        actions: upload.actions,
        reason,
        ended_at: upload.ended_at,
        timings: reported_by(&node, upload.timings),
        grants: reported_by(&node, upload.grants),
        events,
        artifacts,
    }
}

/// Longest grants or timings a node's report may take in the store.
const MAX_REPORTED_ITEMS: usize = 256;

/// What only the node can say, capped and labelled as its word: `{"reported_by_node": …}`.
fn reported_by(node: &str, value: serde_json::Value) -> serde_json::Value {
    let mut value = crate::text::cap_json(value, MAX_REASON_BYTES, MAX_REPORTED_ITEMS);
    match &mut value {
        serde_json::Value::Object(map) => {
            map.insert("reported_by_node".into(), json!(node));
            value
        }
        other => json!({ "reported_by_node": node, "report": other }),
    }
}

/// An artifact event (JSON) with the hash and size of the artifact the server stored under
/// that name; one it did not store says so (size 0, no hash).
fn with_stored_artifact(json: String, artifacts: &[Artifact]) -> String {
    let Ok(Event {
        at,
        offset_ms,
        kind: EventKind::Artifact {
            name, content_type, ..
        },
    }) = serde_json::from_str::<Event>(&json)
    else {
        return json;
    };
    let stored = artifacts.iter().find(|a| a.name == name);
    let event = Event {
        at,
        offset_ms,
        kind: EventKind::Artifact {
            bytes: stored.map_or(0, |a| a.bytes),
            sha256: stored.map(|a| a.sha256.clone()).unwrap_or_default(),
            name,
            content_type,
        },
    };
    serde_json::to_string(&event).expect("an event serializes")
}

/// What the store would refuse to show people: the same caps a local run's outcome has.
fn outcome_problem(upload: &FinishUpload) -> Result<(), String> {
    if !END_STATUSES.contains(&upload.status.as_str()) {
        return Err(format!(
            "status {:?} is not one a run ends with ({})",
            crate::text::echo(&upload.status),
            END_STATUSES.join(", ")
        ));
    }
    if upload.summary.len() > MAX_SUMMARY_BYTES
        || upload.actions.len() > MAX_ACTIONS
        || upload.actions.iter().any(|a| a.len() > MAX_ACTION_BYTES)
        || upload
            .reason
            .as_ref()
            .is_some_and(|r| r.len() > MAX_REASON_BYTES)
        || upload.ended_at.len() > 64
    {
        return Err("the outcome is over the caps of a run's summary, actions or reason".into());
    }
    humantime::parse_rfc3339(&upload.ended_at)
        .map_err(|e| format!("ended_at is not RFC 3339: {e}"))?;
    Ok(())
}

/// Every node seen, with its agent's version, last contact and runs.
async fn list_nodes(State(app): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(denied) = super::refuse_api(&app, &headers).await {
        return denied;
    }
    let store = app.dispatcher.host().store.clone().expect("store");
    let up_within = app.dispatcher.lease();
    match store.nodes().await {
        Ok(nodes) => {
            let listed: Vec<_> = nodes
                .iter()
                .map(|n| {
                    let mut v = json!(n);
                    v["up"] = json!(n.seen_secs_ago <= up_within.as_secs_f64());
                    v
                })
                .collect();
            reply(&app, "nodes", StatusCode::OK, json!(listed))
        }
        Err(e) => error(
            &app,
            "nodes",
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{e:#}"),
        ),
    }
}
