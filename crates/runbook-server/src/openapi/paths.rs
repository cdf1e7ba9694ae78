//! The JSON endpoints' operations, one doc function each (the handlers stay as they are; the
//! route table test says every route has one). Responses every endpoint of a kind shares
//! (401, 413, 503 …) are added in `mod.rs` by the operation's surface.

#![allow(dead_code)] // the functions exist for their `#[utoipa::path]` only

use runbook_core::alert::WebhookJson;
use runbook_runtime::fleet::act::ActRequest;
use runbook_runtime::fleet::{
    ArtifactManifest, ArtifactRequest, EventsUpload, FinishUpload, HeartbeatRequest,
    HeartbeatResponse, PollRequest, PollResponse,
};
use runbook_runtime::safety::Verdict;

use crate::records::{AlertRecord, ApprovalRecord, RunSummary, StoredRun};
use crate::replies::{
    AlertsAccepted, CancelAnswer, Error, Health, NodeListed, RunAccepted, SlackForm, Stored,
};

/// Alertmanager (or Grafana) alerts in
///
/// Each alert is routed by label matchers to its playbooks and answered only after its runs
/// are stored. Auth: `[webhooks.alertmanager]`.
#[utoipa::path(post, path = "/hooks/alertmanager", tag = "hooks",
    request_body(content = WebhookJson, description = "An Alertmanager webhook payload, version 4"),
    responses(
        (status = 202, description = "Stored: the runs started (or deduplicated) and each alert's fate", body = AlertsAccepted),
        (status = 400, description = "Not an Alertmanager payload", body = Error),
        (status = 404, description = "A route names a playbook or node this host does not have", body = Error),
        (status = 422, description = "A route's parameters do not fit its playbook", body = Error),
    ),
    security(("bearer" = []), ("basic" = []), ("hmac_sha256" = []), ("standard_webhooks" = [])))]
fn alertmanager_hook() {}

/// Run a playbook
///
/// The body's fields are the playbook's parameters (strings as they are, other values as their
/// JSON); an empty body runs it without any. `Idempotency-Key`, `webhook-id` or
/// `X-GitHub-Delivery` make a sender's retries one run. Auth: `[webhooks.run]`.
#[utoipa::path(post, path = "/hooks/run/{playbook}", tag = "hooks",
    params(
        ("playbook" = String, Path, description = "The playbook's name"),
        ("dry_run" = Option<bool>, Query, description = "Mutating calls are recorded as \"would …\""),
        ("severity" = Option<String>, Query, description = "critical, high, warning, info or low"),
        ("node" = Option<String>, Query, description = "The fleet node whose agent runs it (absent: this server)"),
        ("Idempotency-Key" = Option<String>, Header, description = "A delivery id: its retries are one run"),
    ),
    request_body(content = Option<HashMap<String, serde_json::Value>>, description = "The run's parameters"),
    responses(
        (status = 202, description = "Stored (or deduplicated, held, suppressed, skipped by a cooldown)", body = RunAccepted),
        (status = 400, description = "Not a JSON object, a bad severity or node name", body = Error),
        (status = 404, description = "No such playbook or node", body = Error),
        (status = 422, description = "The parameters do not fit the playbook, or it does not load", body = Error),
    ),
    security(("bearer" = []), ("basic" = []), ("hmac_sha256" = []), ("standard_webhooks" = [])))]
fn run_hook() {}

/// A click on a question's button in Slack
///
/// Signed with a Slack channel's `signing-secret` (`X-Slack-Signature`,
/// `X-Slack-Request-Timestamp`); acknowledged at once, the answer is recorded after.
#[utoipa::path(post, path = "/hooks/slack/interactive", tag = "hooks",
    request_body(content = SlackForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Acknowledged", body = serde_json::Value),
        (status = 404, description = "This host asks no questions (no approvals configured)", body = Error),
    ),
    security(("slack_signature" = [])))]
fn slack_interactive() {}

/// The latest runs
#[utoipa::path(get, path = "/runs", tag = "runs",
    params(
        ("limit" = Option<usize>, Query, description = "At most this many (default 50, at most 1000)"),
        ("playbook" = Option<String>, Query, description = "Only this playbook's"),
    ),
    responses((status = 200, description = "Newest first", body = Vec<RunSummary>)))]
fn list_runs() {}

/// One run: its parameters, alert, timeline, artifacts and notifications
#[utoipa::path(get, path = "/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run", body = StoredRun),
        (status = 404, description = "No such run", body = Error),
    ))]
fn show_run() {}

/// A run as a post-incident review
#[utoipa::path(get, path = "/runs/{id}/report", tag = "runs",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The review", body = String, content_type = "text/markdown"),
        (status = 404, description = "No such run", body = Error),
    ))]
fn run_report() {}

/// Ask a run to stop
#[utoipa::path(post, path = "/runs/{id}/cancel", tag = "runs",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "It ended `cancelled` now", body = CancelAnswer),
        (status = 202, description = "The host executing it stops it", body = CancelAnswer),
        (status = 404, description = "No such run", body = Error),
        (status = 409, description = "It had ended, or a stop was already asked", body = Error),
    ))]
fn cancel_run() {}

/// The latest alerts and what became of each
#[utoipa::path(get, path = "/alerts", tag = "runs",
    params(
        ("limit" = Option<usize>, Query, description = "At most this many (default 100, at most 1000)"),
        ("playbook" = Option<String>, Query, description = "Ignored"),
    ),
    responses((status = 200, description = "Newest first", body = Vec<AlertRecord>)))]
fn list_alerts() {}

/// Questions runs asked: the pending ones, or every one of a run
#[utoipa::path(get, path = "/approvals", tag = "runs",
    params(("run" = Option<String>, Query, description = "Every question of this run")),
    responses((status = 200, description = "The questions", body = Vec<ApprovalRecord>)))]
fn list_approvals() {}

/// An approval body: `{"approve": true|false, "reason": …}`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // described, not built: approvals.rs reads the body itself
struct AnswerBody {
    approve: bool,
    /// At most 1024 bytes.
    reason: Option<String>,
}

/// Answer a question as the caller (an API token's name, the `[ui]` user)
///
/// The caller needs the approver role and must be on the question's group's `users` list.
#[utoipa::path(post, path = "/approvals/{id}", tag = "runs",
    params(("id" = String, Path, description = "The question's id")),
    request_body(content = AnswerBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The answer, recorded", body = ApprovalRecord),
        (status = 404, description = "No such question, or this host asks none", body = Error),
        (status = 409, description = "The question was answered or closed already", body = Error),
    ))]
fn answer_approval() {}

/// Every fleet node seen, its agent's version, last contact and runs
#[utoipa::path(get, path = "/nodes", tag = "fleet",
    responses((status = 200, description = "The nodes", body = Vec<NodeListed>)))]
fn list_nodes() {}

/// Up when the run store answers
///
/// Open to anyone (a load balancer asks): it says only whether the store answers.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses(
        (status = 200, description = "Up", body = Health),
        (status = 503, description = "The run store does not answer (within 5 s)", body = Health),
    ),
    security(()))]
fn healthz() {}

/// Prometheus metrics (OpenMetrics text)
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Counters and gauges", body = String,
        content_type = "application/openmetrics-text")),
    security(()))]
fn metrics() {}

/// This document
///
/// Open to anyone: it describes the endpoints and holds no secret.
#[utoipa::path(get, path = "/openapi.json", tag = "health",
    responses((status = 200, description = "OpenAPI 3.1", body = serde_json::Value)),
    security(()))]
fn openapi_json() {}

/// Claim the node's queued runs, held until one is queued or the wait ends
///
/// Held at most `wait_ms`, and never longer than `[fleet] poll-max`.
#[utoipa::path(post, path = "/agent/v1/poll", tag = "agent",
    request_body = PollRequest,
    responses((status = 200, description = "The runs now the agent's, and their lease", body = PollResponse)))]
fn agent_poll() {}

/// Renew the leases of the runs the agent still holds
#[utoipa::path(post, path = "/agent/v1/heartbeat", tag = "agent",
    request_body = HeartbeatRequest,
    responses((status = 200, description = "Which of them are still the agent's", body = HeartbeatResponse)))]
fn agent_heartbeat() {}

/// Live timeline events of a run the agent holds
#[utoipa::path(post, path = "/agent/v1/runs/{id}/events", tag = "agent",
    params(("id" = String, Path, description = "The run's id")),
    request_body = EventsUpload,
    responses((status = 200, description = "Stored", body = Stored)))]
fn agent_events() {}

/// A run's end on the node: outcome, whole timeline and artifacts in one write
#[utoipa::path(post, path = "/agent/v1/runs/{id}/finish", tag = "agent",
    params(("id" = String, Path, description = "The run's id")),
    request_body = FinishUpload,
    responses((status = 200, description = "Stored", body = Stored)))]
fn agent_finish() {}

/// A mutating call about to be made on the node: the freeze switch and the budgets decide
#[utoipa::path(post, path = "/agent/v1/runs/{id}/act", tag = "agent",
    params(("id" = String, Path, description = "The run's id")),
    request_body = ActRequest,
    responses((status = 200, description = "The verdict", body = Verdict)))]
fn agent_act() {}

/// A playbook artifact's manifest and signatures, for a node that cannot reach the registry
///
/// Only artifacts of this server's registry playbooks; the node checks the manifest against
/// the digest before it uses it.
#[utoipa::path(post, path = "/agent/v1/artifacts/{digest}", tag = "agent",
    params(("digest" = String, Path, description = "The manifest digest the server named (sha256:…)")),
    request_body = ArtifactRequest,
    responses(
        (status = 200, description = "The manifest (base64) and signatures", body = ArtifactManifest),
        (status = 404, description = "This server holds no such artifact", body = Error)))]
fn agent_artifact() {}

/// A playbook artifact's component bytes, for a node that cannot reach the registry
#[utoipa::path(post, path = "/agent/v1/artifacts/{digest}/component", tag = "agent",
    params(("digest" = String, Path, description = "The manifest digest the server named (sha256:…)")),
    request_body = ArtifactRequest,
    responses(
        (status = 200, description = "The component", content_type = "application/wasm", body = Vec<u8>),
        (status = 404, description = "This server holds no such artifact", body = Error)))]
fn agent_artifact_component() {}
