//! The JSON bodies the server answers with, where no lower layer has a type for them: the
//! handlers send these, and `/openapi.json` describes them from the same types.

use serde::Serialize;
use utoipa::ToSchema;

use crate::records::{AlertRecord, NodeRecord};

/// Every refusal and error the JSON endpoints answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct Error {
    /// What went wrong, in a line (a 401 says only `unauthorized`).
    pub error: String,
}

/// `POST /hooks/alertmanager` accepted the payload: one record per alert.
#[derive(Serialize, ToSchema)]
pub(crate) struct AlertsAccepted {
    /// The runs the payload started or that answered for it (deduplicated).
    pub runs: Vec<String>,
    pub alerts: Vec<AlertRecord>,
}

/// What became of a run asked for by `POST /hooks/run/{playbook}`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Admitted {
    Queued,
    Deduplicated,
    /// The playbook's circuit breaker is open: recorded, not executed.
    Held,
    /// A maintenance window matched: recorded, not executed.
    Suppressed,
    /// The playbook's cooldown skipped it: no run.
    Cooldown,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RunAccepted {
    /// The run (none when a cooldown skipped it).
    pub runs: Vec<String>,
    pub status: Admitted,
    /// Why a held or suppressed run does not execute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum CancelState {
    /// It ended `cancelled` now (it had not started, or it runs on a fleet node).
    Cancelled,
    /// The host executing it stops it and records it `cancelled`.
    Cancelling,
}

/// `POST /runs/{id}/cancel` was taken.
#[derive(Serialize, ToSchema)]
pub(crate) struct CancelAnswer {
    pub runs: Vec<String>,
    pub status: CancelState,
    /// Who asked, as the run records it (`api:<user or token name>`).
    pub by: String,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum HealthState {
    Ok,
    Unavailable,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct StoreHealth {
    /// `sqlite` or `postgres`.
    pub backend: String,
    pub ok: bool,
    /// How long the store took to answer (when it did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Why not (the details stay in the server's log).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /healthz`: up when the run store answers within 5 s.
#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    pub status: HealthState,
    pub store: StoreHealth,
}

/// A node as `GET /nodes` lists it.
#[derive(Serialize, ToSchema)]
pub(crate) struct NodeListed {
    #[serde(flatten)]
    pub node: NodeRecord,
    /// Heard from within the lease.
    pub up: bool,
}

/// An agent's upload was stored.
#[derive(Serialize, ToSchema)]
pub(crate) struct Stored {
    pub ok: bool,
}

/// Slack's interactive payload (form-encoded): its `payload` field is the JSON of the click.
#[derive(Serialize, ToSchema)]
pub(crate) struct SlackForm {
    pub payload: String,
}

/// A JSON body the document describes, as `reply` takes it.
pub(crate) fn json(body: impl Serialize) -> serde_json::Value {
    serde_json::to_value(body).expect("a reply serializes")
}
