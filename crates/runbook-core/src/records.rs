//! The records the run store reads and writes, shared by both backends (SQLite, PostgreSQL)
//! and by the code that fills them. A low module: it knows nothing of runs executing, so the
//! store depends on it and not on `run` or `state`.

use serde::{Deserialize, Serialize};

use crate::timeline::Event;

/// One piece of evidence a run saved (`report.artifact`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Artifact {
    pub name: String,
    pub content_type: String,
    pub sha256: String,
    pub bytes: usize,
    /// The content as text (lossy UTF-8); artifacts are evidence such as log excerpts.
    pub text: String,
}

impl Artifact {
    /// The timeline's record of it.
    pub fn event(&self) -> crate::timeline::EventKind {
        crate::timeline::EventKind::Artifact {
            name: self.name.clone(),
            content_type: self.content_type.clone(),
            bytes: self.bytes,
            sha256: self.sha256.clone(),
        }
    }
}

/// A run as accepted, before it starts: what the store keeps to start it (here or on another
/// replica, or an agent) and to tell about it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueuedRun {
    pub id: String,
    pub playbook: String,
    pub origin: String,
    pub trigger: String,
    /// Who asked for it, when a person did (the console's user).
    #[serde(default)]
    pub by: Option<String>,
    pub params: serde_json::Value,
    pub alert: Option<serde_json::Value>,
    pub dry_run: bool,
    pub dedup_key: Option<String>,
    /// RFC 3339, when it was accepted.
    pub started_at: String,
    pub severity: String,
    /// The node (fleet agent) that must execute it; `None`: a `host serve` process does.
    pub node: Option<String>,
}

/// A run that has not ended as the store has it: enough to start it again or to tell about it.
pub type UnfinishedRun = QueuedRun;

/// How a run ended: written with its timeline and artifacts in one transaction.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub run_id: String,
    pub status: String,
    pub summary: String,
    pub actions: Vec<String>,
    pub reason: Option<String>,
    pub ended_at: String,
    pub timings: serde_json::Value,
    pub grants: serde_json::Value,
    /// Each event as JSON text.
    pub events: Vec<String>,
    pub artifacts: Vec<Artifact>,
}

/// One alert as the webhook received it, and what became of it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AlertRecord {
    pub received_at: String,
    pub source: String,
    pub alertname: String,
    pub status: String,
    pub fingerprint: String,
    pub starts_at: String,
    pub labels: serde_json::Value,
    /// started, deduplicated, cooldown, resolved, unrouted, rejected, held or suppressed (a
    /// newer host's name is passed through).
    #[schema(value_type = String)]
    pub disposition: Disposition,
    pub playbook: Option<String>,
    pub run_id: Option<String>,
    pub detail: Option<String>,
}

/// What became of an alert, stored and shown as its lowercase name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// A route's run was admitted.
    Started,
    /// A run with the same dedup key answered instead.
    Deduplicated,
    /// The route's cooldown skipped it.
    Cooldown,
    /// A resolve, and the server does not run on resolves.
    Resolved,
    /// No route matched.
    Unrouted,
    /// Refused for good (a bad route, parameter or node).
    Rejected,
    /// Its playbook's circuit breaker is open: the run is recorded `held`, not executed.
    Held,
    /// A maintenance window matched: the run is recorded `suppressed`, not executed.
    Suppressed,
    /// A name this host does not know: a row written by a newer host on a shared store is
    /// read back as it was written.
    Other(String),
}

impl Disposition {
    pub fn as_str(&self) -> &str {
        match self {
            Disposition::Started => "started",
            Disposition::Deduplicated => "deduplicated",
            Disposition::Cooldown => "cooldown",
            Disposition::Resolved => "resolved",
            Disposition::Unrouted => "unrouted",
            Disposition::Rejected => "rejected",
            Disposition::Held => "held",
            Disposition::Suppressed => "suppressed",
            Disposition::Other(name) => name,
        }
    }

    pub fn parse(name: &str) -> Disposition {
        match name {
            "started" => Disposition::Started,
            "deduplicated" => Disposition::Deduplicated,
            "cooldown" => Disposition::Cooldown,
            "resolved" => Disposition::Resolved,
            "unrouted" => Disposition::Unrouted,
            "rejected" => Disposition::Rejected,
            "held" => Disposition::Held,
            "suppressed" => Disposition::Suppressed,
            other => Disposition::Other(other.to_string()),
        }
    }
}

impl std::fmt::Display for Disposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Disposition {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Disposition {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Disposition::parse(&String::deserialize(deserializer)?))
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunSummary {
    pub id: String,
    pub playbook: String,
    pub trigger: String,
    pub status: String,
    pub summary: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub dry_run: bool,
    pub severity: String,
    /// The node it runs (ran) on; absent for a run on the server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// When it began running (claimed here or by a node's agent); absent while it waits.
    /// From `started_at` (accepted) to here it waited; from here to `ended_at` it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_since: Option<String>,
    /// Who asked for it, when a person did (the console's user).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// How long it executed (its timings' total: time queued is not in it); absent until it
    /// ends, and for a run that never executed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub took_ms: Option<f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StoredRun {
    #[serde(flatten)]
    pub run: RunSummary,
    pub origin: String,
    pub params: serde_json::Value,
    pub alert: Option<serde_json::Value>,
    pub actions: serde_json::Value,
    pub reason: Option<String>,
    pub dedup_key: Option<String>,
    pub timings: Option<serde_json::Value>,
    pub grants: Option<serde_json::Value>,
    pub timeline: Vec<Event>,
    pub artifacts: Vec<Artifact>,
    /// The run's notifications as the outbox has them now.
    pub deliveries: Vec<OutboxRow>,
}

/// A notification to queue.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub run_id: Option<String>,
    pub channel: String,
    pub kind: String,
    pub payload: serde_json::Value,
    pub dedup_key: Option<String>,
    pub event_action: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OutboxRow {
    pub id: i64,
    pub run_id: Option<String>,
    pub channel: String,
    pub kind: String,
    #[serde(skip)]
    pub payload: String,
    pub title: String,
    pub dedup_key: Option<String>,
    pub event_action: Option<String>,
    pub state: String,
    pub attempts: i64,
    pub parts_sent: i64,
    pub last_error: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
    /// When a worker last took it to deliver it (RFC 3339); none before the first attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempted_at: Option<String>,
    /// When it may be tried next (RFC 3339); meaningful while it is pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
}

impl OutboxRow {
    /// The title a row shows in lists, read from its payload.
    pub fn title_of(payload: &str) -> String {
        serde_json::from_str::<serde_json::Value>(payload)
            .ok()
            .and_then(|v| v["title"].as_str().map(String::from))
            .unwrap_or_default()
    }

    /// A row's next attempt as RFC 3339, from the store's unix ms; only a pending row has one.
    pub fn next_attempt(state: &str, at_ms: i64) -> Option<String> {
        (state == "pending").then(|| {
            rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_millis(at_ms.max(0) as u64))
        })
    }
}

/// What a delivery worker finds at the head of its channel.
#[derive(Debug)]
pub enum Claim {
    /// Nothing pending.
    Empty,
    /// The head is backing off or leased by another worker: look again after this long.
    Wait(std::time::Duration),
    /// Yours until the lease ends; `attempts` already counts this attempt.
    Due(Box<OutboxRow>),
}

/// One webhook run to admit.
#[derive(Debug, Clone)]
pub struct Admit {
    pub run: QueuedRun,
    /// A run with the same dedup key accepted within this window answers instead.
    pub dedup_window: Option<std::time::Duration>,
    /// (key, period): a run of the same playbook with this cooldown key accepted within the
    /// period means this one is skipped.
    pub cooldown: Option<(String, std::time::Duration)>,
    /// The alert's record; its disposition and run id are filled in by the store.
    pub alert: Option<AlertRecord>,
    /// The safety rails' decision, taken by the server before admission: the run is stored
    /// with this status (queued, held, suppressed) and the alert with the matching disposition.
    pub gate: Gate,
}

/// Whether an admitted run may execute: decided by the server (circuit breakers, maintenance
/// windows) before the store is asked, and carried through so that the run is recorded with
/// its reason. A held or suppressed run is never claimed; dedup still applies to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Gate {
    #[default]
    Run,
    /// The playbook's circuit breaker is open (the reason names it and until when).
    Held(String),
    /// A maintenance window matched (the reason names the window).
    Suppressed(String),
}

impl Gate {
    /// The status the run is stored with.
    pub fn status(&self) -> RunStatus {
        match self {
            Gate::Run => RunStatus::Queued,
            Gate::Held(_) => RunStatus::Held,
            Gate::Suppressed(_) => RunStatus::Suppressed,
        }
    }

    /// Why the run does not execute (stored as its reason and summary).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Gate::Run => None,
            Gate::Held(reason) | Gate::Suppressed(reason) => Some(reason),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    Started,
    Deduplicated(String),
    Cooldown,
}

impl Admitted {
    /// The alert's disposition and run id after this admission of run `run_id` (a
    /// deduplicated alert names the run that answered): both backends decide it here.
    pub fn disposition(&self, run_id: &str, gate: &Gate) -> (Disposition, Option<String>) {
        match self {
            Admitted::Started => {
                let disposition = match gate {
                    Gate::Run => Disposition::Started,
                    Gate::Held(_) => Disposition::Held,
                    Gate::Suppressed(_) => Disposition::Suppressed,
                };
                (disposition, Some(run_id.to_string()))
            }
            Admitted::Deduplicated(id) => (Disposition::Deduplicated, Some(id.clone())),
            Admitted::Cooldown => (Disposition::Cooldown, None),
        }
    }
}

/// One firing of a schedule: its key is (schedule, firing time), so across every replica on a
/// store each firing is recorded, and its run admitted, once.
#[derive(Debug, Clone)]
pub struct Firing {
    pub schedule: String,
    /// The firing's time as the cron expression gives it (not delayed by jitter), unix ms.
    pub at_ms: i64,
    /// Fired at start for a firing missed while no host ran (`catch-up`).
    pub catch_up: bool,
    /// The run to admit `queued`, unless the schedule's previous run is still going.
    pub run: QueuedRun,
    /// A maintenance window (or breaker) stops it: stored `suppressed`/`held` with the reason.
    pub gate: Gate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fired {
    Started,
    /// The schedule's previous run (this id) is still queued or running: recorded, not run.
    Skipped(String),
    /// Another process (or an earlier start of this one) already recorded this firing.
    AlreadyFired,
}

/// A recorded firing and what became of it, for `host schedules`.
#[derive(Debug, Clone, Serialize)]
pub struct FiringRecord {
    pub schedule: String,
    /// RFC 3339 (UTC) and unix ms of the firing.
    pub at: String,
    pub at_ms: i64,
    pub catch_up: bool,
    /// The run it started; none when skipped.
    pub run_id: Option<String>,
    /// The run's status now (queued, running, resolved, …), or `skipped`.
    pub outcome: String,
    /// Skipped: the run of the schedule that was still going.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped_for: Option<String>,
}

impl FiringRecord {
    pub fn new(
        schedule: String,
        at_ms: i64,
        catch_up: bool,
        run_id: Option<String>,
        status: Option<String>,
        skipped_for: Option<String>,
    ) -> Self {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(at_ms.max(0) as u64);
        Self {
            schedule,
            at: rfc3339(at),
            at_ms,
            catch_up,
            outcome: match (&skipped_for, status) {
                (Some(_), _) => "skipped".into(),
                (None, Some(status)) => status,
                (None, None) => "unknown".into(),
            },
            run_id,
            skipped_for,
        }
    }
}

/// A fleet node as the store last saw its agent.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NodeRecord {
    pub name: String,
    /// The agent process's identity (a new one at every agent start).
    pub session: String,
    pub version: String,
    /// RFC 3339: when this session first connected, and when it was last heard from.
    pub connected_at: String,
    pub last_seen: String,
    /// Seconds since last heard from, on the store's clock.
    pub seen_secs_ago: f64,
    /// Runs `running` on the node now (any session).
    pub in_flight: usize,
    /// Runs queued for the node, not claimed yet.
    pub queued: usize,
}

/// Why a run is `undeliverable`: it was for a node no agent took it for within the wait.
pub fn undeliverable_reason(node: &str, wait: std::time::Duration) -> String {
    format!(
        "no agent of node {node:?} took the run within {}; not run anywhere else (capabilities \
         are local to the node)",
        humantime::format_duration(wait)
    )
}

/// Why a run is `lost`: the host executing it died (or lost the store) while it ran.
pub const LOST_REASON: &str = "the host stopped (crash or kill) while the run was executing; \
     not re-run, as its actions may have happened";

/// A timestamp as records show it: RFC 3339 in UTC, to the millisecond.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

pub fn now_rfc3339() -> String {
    rfc3339(std::time::SystemTime::now())
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

/// A question a run asked an approver group (`approval.ask`), and how it ended.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ApprovalRecord {
    /// Short and unguessable: it is in every button's callback data.
    pub id: String,
    pub run_id: String,
    pub playbook: String,
    pub group: String,
    pub title: String,
    pub body: String,
    pub actions: Vec<String>,
    /// `pending`, then `approved`, `rejected`, `expired` or `lost` (its run ended while it
    /// waited: the host died).
    pub state: String,
    pub asked_at: String,
    pub expires_at: String,
    /// Who answered, as the channel named them (`telegram:123 (@alice)`, `cli:bob`).
    pub answered_by: Option<String>,
    /// telegram, slack, console or cli; `timeout` (expired), `rescuer` (lost).
    pub answered_via: Option<String>,
    pub answered_at: Option<String>,
    pub reason: Option<String>,
    /// Where the question was posted, one per channel (`{"channel","kind",…ids}`), so the
    /// message can be edited to show the answer.
    pub messages: Vec<serde_json::Value>,
}

/// How a pending approval ends (`Backend::decide_approval`).
#[derive(Debug, Clone)]
pub struct Decision {
    /// approved, rejected, expired or lost.
    pub state: &'static str,
    pub by: Option<String>,
    pub via: String,
    pub reason: Option<String>,
    pub at: String,
}

/// Every status a run can have in the store, and `waiting-approval` as people see a running
/// run with a pending question (`backend::SHOWN_STATUS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    Queued,
    Running,
    WaitingApproval,
    Resolved,
    Mitigated,
    Escalated,
    NoAction,
    Failed,
    /// Someone asked it to stop (`host runs cancel`, the API, the console).
    Cancelled,
    Interrupted,
    Lost,
    Undeliverable,
    /// Never executed: its playbook's circuit breaker was open when it was admitted.
    Held,
    /// Never executed: a maintenance window matched it when it was admitted.
    Suppressed,
    /// A status this code does not know (a newer host's, on a shared store): shown as is.
    Other,
}

impl RunStatus {
    pub const ALL: [RunStatus; 14] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::WaitingApproval,
        RunStatus::Resolved,
        RunStatus::Mitigated,
        RunStatus::Escalated,
        RunStatus::NoAction,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::Interrupted,
        RunStatus::Lost,
        RunStatus::Undeliverable,
        RunStatus::Held,
        RunStatus::Suppressed,
    ];

    pub fn parse(text: &str) -> RunStatus {
        RunStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .unwrap_or(RunStatus::Other)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::WaitingApproval => "waiting-approval",
            RunStatus::Resolved => "resolved",
            RunStatus::Mitigated => "mitigated",
            RunStatus::Escalated => "escalated",
            RunStatus::NoAction => "no-action",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Lost => "lost",
            RunStatus::Undeliverable => "undeliverable",
            RunStatus::Held => "held",
            RunStatus::Suppressed => "suppressed",
            RunStatus::Other => "other",
        }
    }

    /// Not ended yet: a run in these may still be cancelled.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            RunStatus::Queued | RunStatus::Running | RunStatus::WaitingApproval
        )
    }

    /// Ended as the playbook meant (found nothing to do counts).
    pub fn is_good(self) -> bool {
        matches!(
            self,
            RunStatus::Resolved | RunStatus::Mitigated | RunStatus::NoAction
        )
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RunStatus {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        RunStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| format!("no run status {text:?}"))
    }
}

/// What asking a run to stop did (`Backend::cancel_run`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// It had not started (queued), or it runs on a fleet node (whose agent stops it when the
    /// server refuses its next heartbeat or upload): it ended `cancelled` now.
    Ended {
        playbook: String,
    },
    /// It is running in a host process: the request is recorded, and that process stops it
    /// and records it `cancelled` with its timeline so far.
    Asked {
        playbook: String,
    },
    /// A stop was already asked, by this one.
    AlreadyAsked {
        by: String,
    },
    /// It had ended already, with this status.
    Over(RunStatus),
    NotFound,
}

/// The summary and reason of a cancelled run.
pub fn cancelled_by(by: &str) -> String {
    format!("cancelled by {by}")
}

/// The timeline line of a run cancelled in the store (queued, or on a node): JSON of a
/// `timeline::Event`, its offset counted from when the run was accepted.
pub fn cancel_event(by: &str, started_at: &str) -> String {
    let now = std::time::SystemTime::now();
    let offset = humantime::parse_rfc3339_weak(started_at)
        .ok()
        .and_then(|started| now.duration_since(started).ok())
        .unwrap_or_default();
    let event = Event {
        at: rfc3339(now),
        offset_ms: crate::timeline::round_ms(offset),
        kind: crate::timeline::EventKind::Log {
            level: "warn".into(),
            message: cancelled_by(by),
        },
    };
    serde_json::to_string(&event).expect("an event serializes")
}

/// Where a run came from, as the host records it: the contract's triggers, plus `console` (a
/// person through the console's form). The WIT has no `console`, and adding one is a contract
/// change: a guest is told `webhook`, the nearest (a request over HTTP), while the store, the
/// API and the console say `console` and who.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Cli,
    Webhook,
    Alert,
    Schedule,
    Console,
}

impl Trigger {
    pub const ALL: [Trigger; 5] = [
        Trigger::Alert,
        Trigger::Webhook,
        Trigger::Console,
        Trigger::Schedule,
        Trigger::Cli,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Cli => "cli",
            Trigger::Webhook => "webhook",
            Trigger::Alert => "alert",
            Trigger::Schedule => "schedule",
            Trigger::Console => "console",
        }
    }

    pub fn parse(text: &str) -> Option<Trigger> {
        Trigger::ALL.into_iter().find(|t| t.as_str() == text)
    }
}
