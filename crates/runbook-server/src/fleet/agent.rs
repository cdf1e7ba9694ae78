//! The agent API under `/agent/v1/` (poll, heartbeat, live events, finish) and `/nodes`.
//! Each call is admitted by its node's token (`crate::nodes::Fleet::node_of`), certificate, or
//! both (`[fleet] node-auth`) and, for a run, by its
//! session still holding the run in the store.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::outcome::{node_outcome, outcome_problem, record_caps};
use crate::app::{App, Shared};
use crate::config::NodeAuth;
use crate::replies::{self, NodeListed, Stored};
use crate::respond::{AuthRefused, error, reply};
use crate::state::LimitExceeded;
use crate::store::Appended;
use crate::tls::PresentedCertificate;
use runbook_runtime::fleet::act::ActRequest;
use runbook_runtime::fleet::{
    AgentId, EventsUpload, FinishUpload, HeartbeatRequest, HeartbeatResponse, PollRequest,
    PollResponse, check_session, runner_of,
};

const ENDPOINT: &str = "agent";
/// An outcome carries the run's timeline and artifacts (a node's default caps: 4 MiB and
/// 8 MiB); anything bigger is refused, not truncated.
pub(crate) const MAX_FINISH_BYTES: usize = 32 << 20;
const MAX_EVENTS_PER_UPLOAD: usize = 4096;
/// A run's live timeline, however many uploads it comes in (a node's default cap of 4 MiB of
/// timeline is far fewer events).
const MAX_EVENTS_PER_RUN: usize = 100_000;
const MAX_RUNS_PER_AGENT: usize = 256;
/// How often a held poll looks at the store without a wake (a lost NOTIFY).
const POLL_RECHECK: Duration = Duration::from_secs(1);

/// The agent's runner in the store, or the response refusing it: 401 without a known token
/// (or, by `[fleet] node-auth`, without a certificate), 403 when the credentials are another
/// node's, 400 for a malformed body.
pub(super) fn admit_agent<T: DeserializeOwned>(
    app: &App,
    presented: &PresentedCertificate,
    headers: &HeaderMap,
    body: &[u8],
    agent_of: impl Fn(&T) -> &AgentId,
) -> Result<(T, String), Box<Response>> {
    let refuse = |status: StatusCode, why: String| {
        let mut refused = error(app, ENDPOINT, status, why);
        refused.extensions_mut().insert(AuthRefused);
        Box::new(refused)
    };
    let node = match app.fleet.auth {
        NodeAuth::Certificate => node_of_certificate(app, presented).map_err(|(status, why)| {
            tracing::warn!("refused an agent: {why}");
            refuse(status, why)
        })?,
        NodeAuth::Token | NodeAuth::TokenAndCertificate => {
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
            node
        }
    };
    // Mutual TLS as well as the token: the certificate must name the token's node.
    if app.fleet.auth == NodeAuth::TokenAndCertificate {
        let refusal = match &presented.0 {
            Some(cert) if cert.names(&node) => None,
            Some(_) => Some((
                StatusCode::FORBIDDEN,
                format!("forbidden: this client certificate does not name node {node}"),
            )),
            None => Some((
                StatusCode::UNAUTHORIZED,
                "unauthorized: this server requires a client certificate naming the node \
                 ([fleet] client-ca; the agent's --client-cert/--client-key)"
                    .to_string(),
            )),
        };
        if let Some((status, why)) = refusal {
            tracing::warn!("refused an agent of node {node}: {why}");
            return Err(refuse(status, why));
        }
    }
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
        let what = match app.fleet.auth {
            NodeAuth::Certificate => "client certificate",
            _ => "token",
        };
        tracing::warn!(
            "refused an agent: the {what} of node {node} was presented for node {}",
            crate::text::escape(&crate::text::echo(&agent.node))
        );
        return Err(refuse(
            StatusCode::FORBIDDEN,
            format!("forbidden: this {what} is node {node}'s, not the node the request names"),
        ));
    }
    check_session(&agent.session)
        .and_then(|()| {
            // Text the store keeps: PostgreSQL refuses a NUL in it (a 503 the agent retries).
            (agent.version.len() <= 64 && !agent.version.contains(char::is_control))
                .then_some(())
                .ok_or_else(|| {
                    "an agent version is at most 64 bytes, no control characters".to_string()
                })
        })
        .map_err(|e| Box::new(error(app, ENDPOINT, StatusCode::BAD_REQUEST, e)))?;
    let runner = runner_of(&node, &agent.session);
    Ok((request, runner))
}

/// `node-auth = "certificate"`: the configured node the verified certificate names (the
/// bearer header, if any, is not looked at). `names` refuses a wildcard or a certificate that
/// would also fit a sibling, so at most one node fits.
fn node_of_certificate(
    app: &App,
    presented: &PresentedCertificate,
) -> Result<String, (StatusCode, String)> {
    let Some(cert) = &presented.0 else {
        return Err((
            StatusCode::UNAUTHORIZED,
            "unauthorized: this server knows a node by its client certificate alone \
             ([fleet] node-auth = \"certificate\"; the agent's --client-cert/--client-key)"
                .to_string(),
        ));
    };
    let named: Vec<String> = app
        .fleet
        .nodes()
        .into_iter()
        .filter(|node| cert.names(node))
        .collect();
    match <[String; 1]>::try_from(named) {
        Ok([node]) => Ok(node),
        Err(_) => Err((
            StatusCode::FORBIDDEN,
            "forbidden: this client certificate names no one node of this fleet".to_string(),
        )),
    }
}

fn unavailable(app: &App, e: anyhow::Error) -> Response {
    crate::respond::store_unavailable(app, ENDPOINT, &e)
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
pub(crate) async fn poll(
    State(app): State<Shared>,
    presented: PresentedCertificate,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (request, runner) =
        match admit_agent::<PollRequest>(&app, &presented, &headers, &body, |r| &r.agent) {
            Ok(admitted) => admitted,
            Err(refused) => return *refused,
        };
    let store = app.store.clone();
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
pub(crate) async fn heartbeat(
    State(app): State<Shared>,
    presented: PresentedCertificate,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (request, runner) =
        match admit_agent::<HeartbeatRequest>(&app, &presented, &headers, &body, |r| &r.agent) {
            Ok(admitted) => admitted,
            Err(refused) => return *refused,
        };
    if request.running.len() > MAX_RUNS_PER_AGENT
        || request
            .running
            .iter()
            .any(|id| id.len() > 128 || id.contains(char::is_control))
    {
        return error(
            &app,
            ENDPOINT,
            StatusCode::BAD_REQUEST,
            format!("at most {MAX_RUNS_PER_AGENT} run ids of ≤ 128 bytes, no control characters"),
        );
    }
    let store = app.store.clone();
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
pub(crate) async fn events(
    State(app): State<Shared>,
    Path(id): Path<String>,
    presented: PresentedCertificate,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (upload, runner) =
        match admit_agent::<EventsUpload>(&app, &presented, &headers, &body, |r| &r.agent) {
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
    let store = app.store.clone();
    let max = record_caps().max_timeline_bytes;
    match store
        .append_events(&id, &runner, upload.from, events, max)
        .await
    {
        Ok(Appended::Stored) => reply(
            &app,
            ENDPOINT,
            StatusCode::OK,
            replies::json(Stored { ok: true }),
        ),
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

/// A node's mutating call about to be made: the freeze switch and this server's budgets
/// decide, counted in the shared store (`runbook_runtime::safety::remote`,
/// `runbook_runtime::fleet::act`), for the stored run's playbook. Only for a run the agent's
/// session holds.
pub(crate) async fn act(
    State(app): State<Shared>,
    Path(id): Path<String>,
    presented: PresentedCertificate,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (request, runner) =
        match admit_agent::<ActRequest>(&app, &presented, &headers, &body, |r| &r.agent) {
            Ok(admitted) => admitted,
            Err(refused) => return *refused,
        };
    let action = &request.action;
    if action.run_id != id
        || action.action.len() > 64
        || action.playbook.len() > 128
        || action.container.as_ref().is_some_and(|c| c.len() > 256)
    {
        return error(
            &app,
            ENDPOINT,
            StatusCode::BAD_REQUEST,
            "an action names the run of its path, an action of ≤ 64 bytes, a playbook of ≤ 128 \
             and a container of ≤ 256"
                .to_string(),
        );
    }
    let store = app.store.clone();
    match store
        .renew_held(&runner, std::slice::from_ref(&id), app.dispatcher.lease())
        .await
    {
        Ok(held) if held.contains(&id) => {}
        Ok(_) => return not_held(&app, &id),
        Err(e) => return unavailable(&app, e),
    }
    // The budgets count the playbook the run was stored with, never the one the node names:
    // a node must not spend, or dodge, another playbook's budget.
    let action = match store.get(&id).await {
        Ok(Some(run)) => runbook_runtime::safety::Action {
            playbook: run.run.playbook,
            ..action.clone()
        },
        Ok(None) => return not_held(&app, &id),
        Err(e) => return unavailable(&app, e),
    };
    let safety = app.dispatcher.host().safety();
    match safety
        .decide_in(store.as_ref(), &action, &request.agent.node)
        .await
    {
        Ok(gate) => {
            runbook_runtime::safety::count(&gate);
            reply(&app, ENDPOINT, StatusCode::OK, json!(gate))
        }
        Err(e) => unavailable(&app, e),
    }
}

/// A run's end on the node: outcome, whole timeline and artifacts, in one write.
pub(crate) async fn finish(
    State(app): State<Shared>,
    Path(id): Path<String>,
    presented: PresentedCertificate,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (upload, runner) =
        match admit_agent::<FinishUpload>(&app, &presented, &headers, &body, |r| &r.agent) {
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
    let store = app.store.clone();
    let playbook = match store.get(&id).await {
        Ok(Some(run)) => run.run.playbook,
        Ok(None) => return not_held(&app, &id),
        Err(e) => return unavailable(&app, e),
    };
    match store.finish_held(outcome, &runner).await {
        Ok(true) => {
            app.dispatcher.metrics.ended(&playbook, &status, seconds);
            reply(
                &app,
                ENDPOINT,
                StatusCode::OK,
                replies::json(Stored { ok: true }),
            )
        }
        Ok(false) => not_held(&app, &id),
        Err(e) => unavailable(&app, e),
    }
}

/// Every node seen, with its agent's version, last contact and runs.
pub(crate) async fn list_nodes(State(app): State<Shared>) -> Response {
    let store = app.store.clone();
    let up_within = app.dispatcher.lease();
    match store.nodes().await {
        Ok(nodes) => {
            let listed: Vec<_> = nodes
                .into_iter()
                .map(|node| NodeListed {
                    up: node.seen_secs_ago <= up_within.as_secs_f64(),
                    node,
                })
                .collect();
            reply(&app, "nodes", StatusCode::OK, replies::json(listed))
        }
        Err(e) => crate::respond::store_unavailable(&app, "nodes", &e),
    }
}
