//! The run store's interface. Two backends implement it: SQLite (store/sqlite/, the embedded
//! default, one host per file) and PostgreSQL (store/postgres/, any number of `host serve`
//! replicas on one database). Everything that must survive a restart or be shared between
//! replicas goes through here: runs, timelines, artifacts, alerts, dedup and cooldown keys,
//! per-playbook concurrency slots, run leases, Standard Webhooks replay ids and the outbox.
//!
//! Every lease, window and "now" is the store's clock (PostgreSQL's `now()`), never the
//! caller's: replicas on machines with skewed clocks agree. Timestamps shown to people
//! (`started_at`, `ended_at`, `received_at`) are RFC 3339 text.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;

use crate::records::Cancelled;
use crate::records::{
    Admit, Admitted, AlertRecord, ApprovalRecord, Claim, Decision, Fired, Firing, FiringRecord,
    NewMessage, NodeRecord, OutboxRow, QueuedRun, RunOutcome, RunSummary, StoredRun, UnfinishedRun,
};

/// A run's status as people see it: a `running` run waiting for an answer to one of its
/// questions (`approval.ask`) shows `waiting-approval` (the lease machinery keeps seeing
/// `running`: the run's process still holds it).
#[macro_export]
#[doc(hidden)]
macro_rules! shown_status {
    () => {
        "CASE WHEN status = 'running' AND EXISTS (SELECT 1 FROM approvals a \
         WHERE a.run_id = runs.id AND a.state = 'pending') THEN 'waiting-approval' \
         ELSE status END AS status"
    };
}
pub use shown_status as SHOWN_STATUS;

/// The condition a `status = waiting-approval` filter stands for.
pub const WAITING_APPROVAL: &str = "status = 'running' AND EXISTS (SELECT 1 FROM approvals a \
     WHERE a.run_id = runs.id AND a.state = 'pending')";

/// How many runs of each playbook may run at once across every process on the store.
#[derive(Debug, Clone)]
pub struct SlotLimits {
    pub default: usize,
    pub per_playbook: HashMap<String, usize>,
}

impl SlotLimits {
    pub fn of(&self, playbook: &str) -> usize {
        self.per_playbook
            .get(playbook)
            .copied()
            .unwrap_or(self.default)
            .max(1)
    }
}

/// The console's runs page: every filter optional, newest first, one page after `before`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub playbook: Option<String>,
    pub status: Option<String>,
    /// P1..P4.
    pub severity: Option<String>,
    pub trigger: Option<String>,
    pub node: Option<String>,
    /// Bounds on `started_at` (RFC 3339 text compares as time): `since` inclusive, `until`
    /// exclusive.
    pub since: Option<String>,
    pub until: Option<String>,
    /// Keyset cursor: only runs strictly older than this (started_at, id), the last row of the
    /// previous page; no OFFSET, so page 1000 costs what page 1 does.
    pub before: Option<(String, String)>,
    pub limit: usize,
}

impl RunFilter {
    /// The equality filters as (column, value), in a fixed order; each column has an index
    /// led by it and followed by (started_at, id).
    pub fn equalities(&self) -> Vec<(&'static str, &str)> {
        [
            ("playbook", &self.playbook),
            ("status", &self.status),
            ("severity", &self.severity),
            ("trigger", &self.trigger),
            ("node", &self.node),
        ]
        .into_iter()
        .filter_map(|(column, value)| value.as_deref().map(|v| (column, v)))
        .collect()
    }

    /// The `WHERE …` of the runs page (empty without filters) and its values in order; each
    /// backend spells its placeholders (`?N`, `$N`). Only the filters given are in the SQL,
    /// so the planner picks the index led by the equality filter.
    pub fn where_clause(&self, placeholder: fn(usize) -> String) -> (String, Vec<String>) {
        let mut conditions = Vec::new();
        let mut values: Vec<String> = Vec::new();
        let bind = |value: &str, values: &mut Vec<String>| {
            values.push(value.to_string());
            placeholder(values.len())
        };
        for (column, value) in self.equalities() {
            if column == "status" && value == "waiting-approval" {
                conditions.push(WAITING_APPROVAL.to_string());
                continue;
            }
            conditions.push(format!("{column} = {}", bind(value, &mut values)));
        }
        if let Some(since) = &self.since {
            conditions.push(format!("started_at >= {}", bind(since, &mut values)));
        }
        if let Some(until) = &self.until {
            conditions.push(format!("started_at < {}", bind(until, &mut values)));
        }
        if let Some((started_at, id)) = &self.before {
            let started_at = bind(started_at, &mut values);
            let id = bind(id, &mut values);
            conditions.push(format!("(started_at, id) < ({started_at}, {id})"));
        }
        if conditions.is_empty() {
            (String::new(), values)
        } else {
            (format!("WHERE {}", conditions.join(" AND ")), values)
        }
    }
}

/// What became of a node's live events (`append_events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    Stored,
    /// The run is not the runner's (anymore): nothing written.
    NotHeld,
    /// The run's timeline reached its cap: what fit is stored; the limit's message.
    Full(String),
}

/// Queued runs, counted apart so that one class of waiting work cannot fill another's bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepths {
    /// Runs for this server and its replicas.
    pub local: usize,
    /// Runs for fleet nodes, all together.
    pub nodes: usize,
    /// Runs for the node asked about (0 when none was).
    pub node: usize,
}

/// A run's events after a reader's cursor (`Backend::events_after`).
#[derive(Debug, Clone, PartialEq)]
pub struct EventsPage {
    /// The run's status when read.
    pub status: String,
    /// (number, event as JSON text), in number order.
    pub events: Vec<(usize, String)>,
}

impl EventsPage {
    /// The run may still add events.
    pub fn live(&self) -> bool {
        matches!(
            self.status.as_str(),
            "queued" | "running" | "waiting-approval"
        )
    }
}

#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// For messages: the SQLite file's path, or the database URL with its password masked.
    fn describe(&self) -> String;
    /// "sqlite" or "postgres".
    fn kind(&self) -> &'static str;
    /// The store's file on this machine (SQLite): fs-read grants never reach it, and the
    /// compile cache lives next to it by default. None for a database server.
    fn local_file(&self) -> Option<std::path::PathBuf>;
    /// One trivial round trip: whether the store answers, and how long it took.
    async fn ping(&self) -> Result<Duration>;

    // ---- runs -------------------------------------------------------------------------

    /// A CLI run: recorded `running` at once, held by `runner` under a lease.
    async fn insert_running(&self, run: QueuedRun, runner: &str, lease: Duration) -> Result<()>;

    /// Decides and records one webhook admission, atomically across every process on the
    /// store: dedup (one key row per dedup key under a unique constraint, valid for the
    /// window from the run it names; a run cut off — `interrupted`, `lost`, `undeliverable`
    /// — frees it), then cooldown (the same per playbook and cooldown key), then the run as
    /// `queued` (unclaimed, for `run.node` if any) and the alert's record with its
    /// disposition. Returns once committed, and wakes the claimers of every process
    /// (`wait_for_queued`).
    async fn admit(&self, admit: Admit) -> Result<Admitted>;

    /// Records alerts that started nothing; returns once committed.
    async fn record_alerts(&self, alerts: Vec<AlertRecord>) -> Result<()>;

    /// Claims up to `max` queued runs for `runner`, oldest first, among runs for no node
    /// (`node IS NULL`: runs for a fleet node are claimed only by its agent, `claim_for_node`), in one transaction: rows
    /// another claimer is taking are skipped (`FOR UPDATE SKIP LOCKED`), and a run is taken
    /// only with a free slot of its playbook (a slot is a row: playbook, number, holder run,
    /// lease; at most `limits.of(playbook)` of them per playbook). A claimed run is `running`,
    /// held by `runner` with `lease` from now, and holds its slot until it ends or its lease
    /// ends.
    async fn claim_queued(
        &self,
        runner: &str,
        max: usize,
        limits: &SlotLimits,
        lease: Duration,
    ) -> Result<Vec<QueuedRun>>;

    /// Returns when a run may have been queued by any process (PostgreSQL: LISTEN/NOTIFY;
    /// SQLite: this process's admissions) or a slot freed, or after `timeout`.
    async fn wait_for_queued(&self, timeout: Duration);

    /// Writes a run's outcome, timeline and artifacts and frees its slot, in one transaction.
    /// Refused (an error, nothing written) unless the run is still `running`: a run marked
    /// `lost` after its lease ran out stays lost.
    async fn finish(&self, outcome: RunOutcome) -> Result<()>;

    /// Ends a run still `queued` or `running` with `status` (failed, interrupted) and
    /// `reason`, freeing its slot; false when it had already ended.
    async fn end_unfinished(&self, id: &str, status: &str, reason: &str) -> Result<bool>;

    /// Asks run `id` to stop, on behalf of `by` (`cli:root`, `console:alice`, `api:…`),
    /// atomically across every process: a queued run, or one running on a fleet node, ends
    /// `cancelled` at once (summary and reason "cancelled by …", a timeline line saying so;
    /// its slot freed; its dedup and cooldown keys kept: a person stopped it, and the alert's
    /// next delivery within the window must not start it again); a run a host process executes keeps running
    /// with the request recorded, for that process to stop (`cancel_requests`). The first
    /// request wins.
    async fn cancel_run(&self, id: &str, by: &str) -> Result<Cancelled>;

    /// The `running` runs `runner` holds that someone asked to stop: (id, by).
    async fn cancel_requests(&self, runner: &str) -> Result<Vec<(String, String)>>;

    /// Renews the lease of every `running` run `runner` holds, and of their slots; returns how
    /// many runs it holds.
    async fn renew_leases(&self, runner: &str, lease: Duration) -> Result<usize>;

    /// Marks `lost` every `running` run whose lease ended (its process died or lost the
    /// store) and frees its slot; returns how many.
    async fn expire_leases(&self) -> Result<usize>;

    /// Lost runs nobody has told ops about, oldest first, at most `max`; each is returned to
    /// one caller only (it is marked told in the same transaction; a crash right after loses
    /// that notice rather than sending it twice).
    async fn take_lost_unnotified(&self, max: usize) -> Result<Vec<UnfinishedRun>>;

    // ---- schedules -------------------------------------------------------------------

    /// Records one firing of a schedule and admits its run, in one transaction, atomically
    /// across every process on the store: the firing's key (schedule, time) is unique, so a
    /// firing already recorded (by another replica, or before a restart) is `AlreadyFired`;
    /// a schedule whose latest run is still `queued` or `running` records the firing as
    /// skipped (naming that run); otherwise the run is stored `queued` and claimers are woken.
    async fn fire(&self, firing: Firing) -> Result<Fired>;

    /// The recorded firings of `schedule`, newest first, at most `limit`, each with its
    /// run's status now.
    async fn firings(&self, schedule: &str, limit: usize) -> Result<Vec<FiringRecord>>;

    /// Newest first; `playbook` filters.
    async fn list(&self, limit: usize, playbook: Option<&str>) -> Result<Vec<RunSummary>>;
    /// One page of the console's runs list, newest first by (started_at, id).
    async fn list_page(&self, filter: &RunFilter) -> Result<Vec<RunSummary>>;
    async fn get(&self, id: &str) -> Result<Option<StoredRun>>;
    /// What a live stream reads: the run's events numbered `from` and on, at most `limit`, in
    /// number order, with its status read first (one snapshot: a status that says the run
    /// ended comes with its final timeline). `None`: no such run.
    async fn events_after(&self, id: &str, from: usize, limit: usize)
    -> Result<Option<EventsPage>>;
    /// Newest first.
    async fn alerts(&self, limit: usize) -> Result<Vec<AlertRecord>>;
    /// (queued runs not claimed yet, running runs held under a live lease).
    async fn run_counts(&self) -> Result<(usize, usize)>;
    /// Queued runs by who waits for them: this server's kind (no node), any node, and `node`.
    async fn queue_depths(&self, node: Option<&str>) -> Result<QueueDepths>;

    // ---- the fleet: runs executed by `host agent` on a named node ---------------------------
    //
    // An agent *holds* a run while the run is `running`, its runner is the agent's, and its
    // lease has not ended. A lease that ran out is not revived by a late renewal or write: the
    // run is the rescuer's to mark `lost` (`expire_leases`), and its slot may be another run's.

    /// As `claim_queued`, among the queued runs for `node` only (same slots: a playbook's
    /// `max-concurrent` counts its runs on every node and server together).
    async fn claim_for_node(
        &self,
        node: &str,
        runner: &str,
        max: usize,
        limits: &SlotLimits,
        lease: Duration,
    ) -> Result<Vec<QueuedRun>>;

    /// Renews the leases of those of `ids` that `runner` still holds, and of their slots;
    /// returns them (in the order given, each once). An id missing from the answer was taken
    /// from the runner (its lease ran out, it is or will be `lost`, or it ended): the agent
    /// stops that run's writes.
    async fn renew_held(
        &self,
        runner: &str,
        ids: &[String],
        lease: Duration,
    ) -> Result<Vec<String>>;

    /// Appends live timeline events (JSON text) of a run `runner` holds, numbered from `from`
    /// (an event already stored under a number is replaced: an agent's retry is idempotent),
    /// in one transaction with the check. `NotHeld`, nothing written, when it does not hold
    /// it. The run's stored events count against `max_bytes` as a local run's timeline does
    /// (`timeline::over_cap` before each event): the events that fit are stored, and `Full`
    /// says the rest were not. `get` shows them, in number order, while the run is `running`.
    async fn append_events(
        &self,
        run_id: &str,
        runner: &str,
        from: usize,
        events: Vec<String>,
        max_bytes: usize,
    ) -> Result<Appended>;

    /// As `finish`, only while `runner` holds the run; the outcome's timeline replaces the
    /// events appended live. False, nothing written, when it does not hold it.
    async fn finish_held(&self, outcome: RunOutcome, runner: &str) -> Result<bool>;

    /// Records that the agent `session` of `node` (at `version`) was heard from now (the
    /// store's clock); the session last heard from is the node's, and a session other than
    /// the recorded one starts a new `connected_at`.
    async fn node_seen(&self, node: &str, session: &str, version: &str) -> Result<()>;

    /// Every node ever seen (`node_seen`), by name, with its runs in flight and queued; a node
    /// named by runs but never seen is not listed.
    async fn nodes(&self) -> Result<Vec<NodeRecord>>;

    /// Queued runs for a node accepted `wait` or longer ago (the store's clock) end
    /// `undeliverable` (reason `records::undeliverable_reason`, summary "run undeliverable:
    /// <reason>"); a dedup or cooldown key naming one is free again, as for `lost`. Returns how
    /// many.
    async fn expire_undelivered(&self, wait: Duration) -> Result<usize>;

    /// As `take_lost_unnotified`, for `undeliverable` runs.
    async fn take_undeliverable_unnotified(&self, max: usize) -> Result<Vec<UnfinishedRun>>;

    // ---- approvals: questions runs asked people (crate::approval) ------------------------

    /// Records a question, `pending` (its `state` and answer fields are ignored).
    async fn open_approval(&self, approval: ApprovalRecord) -> Result<()>;

    /// Where the question was posted, replacing what was recorded.
    async fn set_approval_messages(&self, id: &str, messages: Vec<serde_json::Value>)
    -> Result<()>;

    /// Ends a `pending` approval with `decision`, atomically across every process: the first
    /// decision wins. Returns the approval as decided, or `None` when it was not pending (or
    /// does not exist).
    async fn decide_approval(&self, id: &str, decision: Decision)
    -> Result<Option<ApprovalRecord>>;

    async fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>>;

    /// Pending approvals, oldest first; with `run_id`, that run's approvals in any state.
    async fn approvals(&self, run_id: Option<&str>) -> Result<Vec<ApprovalRecord>>;

    /// Pending approvals whose run is no longer `running` (its process died and the run was
    /// marked `lost`, or it ended otherwise) end `lost`; returns them, each to one caller.
    async fn orphaned_approvals(&self, at: &str) -> Result<Vec<ApprovalRecord>>;

    // ---- secrets every process on the store shares -----------------------------------------

    /// The store-wide secret `name`: the first process to ask stores its `candidate` (random),
    /// and every process on the store gets that one from then on (a unique key decides). The
    /// console's CSRF key, so a form served by one replica is accepted by another.
    async fn shared_secret(&self, name: &str, candidate: &str) -> Result<String>;

    // ---- Standard Webhooks replay ids ---------------------------------------------------

    /// Records a delivery's `webhook-id`; false when the id was recorded within `window`
    /// (a replay). A unique constraint decides, so two replicas never both accept one id.
    async fn first_delivery(&self, id: &str, window: Duration) -> Result<bool>;

    // ---- the notification outbox ---------------------------------------------------------

    /// Queues a message, due now. With `once_key`, a second message with the same key is not
    /// queued (a unique constraint) and the first one's id is returned: a resolve that two
    /// replicas both receive goes out once.
    async fn enqueue(&self, message: NewMessage, once_key: Option<String>) -> Result<i64>;
    /// Takes the channel's oldest pending row if it is due and no worker of any process
    /// holds it; channels stay in order (a resolve never overtakes its trigger).
    async fn claim_head(&self, channel: &str, lease: Duration) -> Result<Claim>;
    /// A multi-part message remembers which parts went out, so a retry sends only the rest.
    async fn mark_parts_sent(&self, id: i64, parts: i64) -> Result<()>;
    async fn mark_delivered(&self, id: i64) -> Result<()>;
    async fn mark_retry(&self, id: i64, after: Duration, error: &str) -> Result<()>;
    async fn mark_failed(&self, id: i64, error: &str) -> Result<()>;
    /// The console's retry: a `failed` row is `pending` again, due now, its attempts kept.
    /// False when the row is not failed (delivered, pending, or no such row).
    async fn outbox_retry(&self, id: i64) -> Result<bool>;
    async fn outbox_for_run(&self, run_id: &str) -> Result<Vec<OutboxRow>>;
    async fn outbox_row(&self, id: i64) -> Result<Option<OutboxRow>>;
    /// Newest first; `state` filters (pending, delivered, failed).
    async fn outbox_list(&self, state: Option<&str>, limit: usize) -> Result<Vec<OutboxRow>>;
    /// Pending rows per channel.
    async fn outbox_pending(&self) -> Result<Vec<(String, i64)>>;
    /// The newest message queued to `channel` under `dedup_key` (a resolve goes only where
    /// its trigger went).
    async fn last_for_dedup_key(&self, channel: &str, dedup_key: &str)
    -> Result<Option<OutboxRow>>;
}
