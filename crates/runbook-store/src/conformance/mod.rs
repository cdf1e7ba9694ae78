//! The store contract (backend/) as tests, one file per role trait (queue.rs for `RunQueue`,
//! …; text.rs for what every role stores), written once and run against every backend:
//! `conformance_tests!(subject_future)` expands to one `#[tokio::test]` per behaviour. A
//! subject is a fresh, empty store plus a way to open a second instance on it (another
//! replica, another process), which the cross-instance behaviours use.
//!
//! A backend's tests module instantiates it with a function making its subject, e.g. SQLite:
//!
//! ```ignore
//! async fn subject() -> Option<Subject> {
//!     let dir = Arc::new(tempfile::tempdir().unwrap());
//!     let path = dir.path().join("runs.sqlite3");
//!     let open = move |path: PathBuf| async move { Ok(Arc::new(Sqlite::open(&path)?) as Arc<dyn Backend>) };
//!     Some(Subject {
//!         backend: open(path.clone()).await.unwrap(),
//!         open_again: Arc::new({ let path = path.clone(); move || Box::pin(open(path.clone())) }),
//!         set_schema_version: Arc::new(move |v| { /* PRAGMA user_version = v on `path` */ }),
//!         cleanup: Some(Arc::new(move || { let _keep = dir.clone(); Box::pin(async {}) })),
//!     })
//! }
//! conformance_tests!(subject());
//! ```

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures::FutureExt;
use futures::future::BoxFuture;

use crate::backend::{Backend, SlotLimits};
use crate::records::{
    Admit, Admitted, AlertRecord, Artifact, Claim, NewMessage, QueuedRun, RunOutcome,
};

mod access;
mod alerts;
mod approvals;
mod batches;
mod budgets;
mod cancels;
mod figures;
mod fleet;
mod info;
mod leases;
mod outbox;
mod queue;
mod safety;
mod schedules;
mod shared;
mod text;
mod timelines;
pub(crate) use access::*;
pub(crate) use alerts::*;
pub(crate) use approvals::*;
pub(crate) use batches::*;
pub(crate) use budgets::*;
pub(crate) use cancels::*;
pub(crate) use figures::*;
pub(crate) use fleet::*;
pub(crate) use info::*;
pub(crate) use leases::*;
pub(crate) use outbox::*;
pub(crate) use queue::*;
pub(crate) use safety::*;
pub(crate) use schedules::*;
pub(crate) use shared::*;
pub(crate) use text::*;
pub(crate) use timelines::*;

type Make<T> = Arc<dyn Fn() -> BoxFuture<'static, Result<T>> + Send + Sync>;

/// One fresh store under test.
#[derive(Clone)]
pub(crate) struct Subject {
    pub backend: Arc<dyn Backend>,
    /// Another instance on the same store (a second replica or process).
    pub open_again: Make<Arc<dyn Backend>>,
    /// Writes this schema version into the store (for the refusal test).
    pub set_schema_version: Arc<dyn Fn(i64) -> BoxFuture<'static, Result<()>> + Send + Sync>,
    /// Removes the store at the end, pass or fail (PostgreSQL: drops the test's database).
    pub cleanup: Option<Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>>,
}

/// Runs one behaviour on a fresh subject; `None` (the backend is not available here) skips
/// it, the subject having said why.
pub(crate) async fn check<Fut: Future<Output = ()>>(
    subject: impl Future<Output = Option<Subject>>,
    behaviour: impl FnOnce(Subject) -> Fut,
) {
    let Some(subject) = subject.await else {
        return;
    };
    let result = AssertUnwindSafe(behaviour(subject.clone()))
        .catch_unwind()
        .await;
    if let Some(cleanup) = &subject.cleanup {
        cleanup().await;
    }
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// One `#[tokio::test]` per behaviour of the contract, each on a fresh subject made by
/// `$subject` (an expression evaluating to a `Future<Output = Option<Subject>>`).
macro_rules! conformance_tests {
    ($subject:expr) => {
        $crate::conformance::conformance_tests!(@each $subject;
            // queue.rs
            identical_admissions_at_once_start_exactly_one_run,
            dedup_holds_for_its_window_and_cut_off_runs_free_it,
            cooldown_is_per_playbook_and_key,
            claims_respect_slots_across_two_claimers,
            skip_locked_gives_each_run_to_one_claimer,
            finish_frees_the_slot_and_refuses_a_lost_run,
            every_waiting_claimer_wakes_on_a_new_run,
            queued_runs_are_counted_by_who_waits_for_them,
            a_run_says_when_it_began_running,
            // batches.rs
            admissions_arriving_together_answer_as_one_after_another,
            a_failing_admission_among_others_fails_alone,
            outcomes_arriving_together_are_each_answered_alone,
            // leases.rs
            leases_are_renewed_by_their_runner_and_expire_without_it,
            lost_runs_are_told_once_across_instances,
            // cancels.rs
            a_cancel_ends_queued_runs_and_asks_running_ones_once,
            a_cancelled_node_run_ends_and_its_agent_no_longer_holds_it,
            // alerts.rs
            recorded_alerts_read_back_newest_first_with_their_disposition,
            // timelines.rs
            runs_alerts_and_deliveries_read_back,
            who_asked_how_long_and_when_tried_read_back,
            runs_page_filters_and_keyset_pages,
            events_after_reads_from_the_cursor_bounded,
            // schedules.rs
            each_firing_is_recorded_and_run_once_across_instances,
            a_firing_while_the_schedules_run_is_going_is_skipped_and_recorded,
            // fleet.rs
            node_runs_are_claimed_by_their_node_only,
            slots_count_node_and_server_runs_together,
            renew_held_answers_only_runs_still_held,
            append_events_only_while_held,
            finish_held_by_the_holder_replaces_live_events,
            nodes_are_listed_with_their_runs,
            undelivered_node_runs_end_after_the_wait_and_are_told_once,
            undeliverable_runs_free_their_dedup_and_cooldown_keys,
            live_events_stop_at_the_timeline_cap,
            // figures.rs
            figures_of_seeded_runs_equal_hand_computed_values,
            a_finished_run_records_its_first_performed_mutating_call,
            // approvals.rs
            the_first_answer_to_an_approval_wins_across_instances,
            approvals_of_ended_runs_end_lost_once,
            // shared.rs
            a_webhook_id_is_accepted_once,
            a_shared_secret_is_made_once_and_the_same_for_every_instance,
            // budgets.rs
            a_budget_gives_its_uses_once_across_instances,
            a_spent_budget_frees_when_its_window_passes,
            several_budgets_are_taken_all_or_nothing,
            the_freeze_switch_is_one_for_every_instance,
            // outbox.rs
            outbox_keeps_channel_order_and_leases_exclusively,
            outbox_once_key_queues_one_message,
            a_failed_message_can_be_retried_once,
            a_held_message_is_left_to_workers_only_when_its_lease_ends,
            // safety.rs
            a_gated_admission_is_recorded_with_its_reason_and_never_claimed,
            a_breaker_opens_once_across_instances_and_a_reset_closes_it,
            a_breaker_closes_after_its_cool_down,
            maintenance_windows_start_list_and_end,
            // access.rs
            tokens_are_found_by_hash_expire_and_revoke_for_every_instance,
            audit_events_come_back_in_order_and_capped,
            audit_events_not_yet_queued_to_a_sink_are_found,
            a_session_ends_for_every_instance_and_a_sign_in_is_taken_once,
            // info.rs
            a_newer_schema_is_refused,
            // text.rs
            nul_and_odd_bytes_are_kept_alike_in_every_text,
            keys_of_any_length_are_keys,
        );
    };
    (@each $subject:expr; $($behaviour:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $behaviour() {
                $crate::conformance::check(
                    $subject,
                    $crate::conformance::$behaviour,
                )
                .await;
            }
        )*
    };
}
pub(crate) use conformance_tests;

// ---- fixtures -------------------------------------------------------------------------------

pub(crate) const LONG: Duration = Duration::from_secs(3600);
/// Leases and windows that must run out during a test.
const SHORT: Duration = Duration::from_millis(500);
/// Windows and leases that must hold across a few calls (on a loaded machine), then end.
const BRIEF: Duration = Duration::from_secs(2);

/// `seq` orders runs by acceptance time.
pub(crate) fn queued(id: &str, playbook: &str, seq: usize) -> QueuedRun {
    QueuedRun {
        id: id.into(),
        playbook: playbook.into(),
        origin: "plugin-dir".into(),
        trigger: "alert".into(),
        by: None,
        params: serde_json::json!({ "case": id }),
        alert: Some(serde_json::json!({ "labels": { "alertname": "BotDown" } })),
        dry_run: false,
        dedup_key: None,
        started_at: format!("2026-11-25T10:{:02}:{:02}.000Z", seq / 60, seq % 60),
        severity: "P2".into(),
        node: None,
    }
}

pub(crate) fn admit(run: QueuedRun) -> Admit {
    Admit {
        run,
        dedup_window: None,
        cooldown: None,
        alert: None,
        gate: Default::default(),
    }
}

fn deduped(mut run: QueuedRun, key: &str, window: Duration) -> Admit {
    run.dedup_key = Some(key.into());
    Admit {
        dedup_window: Some(window),
        ..admit(run)
    }
}

fn cooled(run: QueuedRun, key: &str, period: Duration) -> Admit {
    Admit {
        cooldown: Some((key.into(), period)),
        ..admit(run)
    }
}

fn alert(name: &str, disposition: &str) -> AlertRecord {
    AlertRecord {
        received_at: "2026-11-25T10:00:00.000Z".into(),
        source: "alertmanager".into(),
        alertname: name.into(),
        status: "firing".into(),
        fingerprint: format!("fp-{name}"),
        starts_at: "2026-11-25T09:59:00.000Z".into(),
        labels: serde_json::json!({ "alertname": name }),
        disposition: crate::Disposition::parse(disposition),
        playbook: Some("pb".into()),
        run_id: None,
        detail: None,
    }
}

pub(crate) fn outcome(id: &str, status: &str) -> RunOutcome {
    let event = |offset: f64, message: &str| {
        serde_json::json!({
            "at": "2026-11-25T10:00:01.000Z", "offset_ms": offset,
            "event": "log", "level": "info", "message": message,
        })
        .to_string()
    };
    RunOutcome {
        run_id: id.into(),
        status: status.into(),
        summary: format!("{id} {status}"),
        actions: vec!["restarted bot".into()],
        reason: None,
        ended_at: "2026-11-25T10:00:02.000Z".into(),
        timings: serde_json::json!({ "total_ms": 12 }),
        grants: serde_json::json!({ "docker": ["bot"] }),
        events: vec![event(1.0, "looking"), event(2.0, "restarted")],
        artifacts: vec![Artifact {
            name: "logs.txt".into(),
            content_type: "text/plain".into(),
            sha256: "ab".repeat(32),
            bytes: 5,
            text: "hello".into(),
        }],
    }
}

fn message(run_id: &str, channel: &str, title: &str, action: &str) -> NewMessage {
    NewMessage {
        run_id: Some(run_id.into()),
        channel: channel.into(),
        kind: "slack".into(),
        payload: serde_json::json!({ "title": title }),
        dedup_key: Some("k1".into()),
        event_action: Some(action.into()),
        created_at: "2026-11-25T10:00:00.000Z".into(),
    }
}

pub(crate) fn limits(default: usize, per_playbook: &[(&str, usize)]) -> SlotLimits {
    SlotLimits {
        default,
        per_playbook: per_playbook
            .iter()
            .map(|(p, n)| (p.to_string(), *n))
            .collect(),
    }
}

/// Polls `attempt` until it gives something (10 s at most): for leases and windows on the
/// store's clock, which a test cannot advance.
async fn eventually_some<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn eventually<F: Future<Output = bool>>(what: &str, mut condition: impl FnMut() -> F) {
    eventually_some(what, || {
        let holds = condition();
        async move { holds.await.then_some(()) }
    })
    .await
}

pub(crate) async fn status(backend: &Arc<dyn Backend>, id: &str) -> String {
    backend.get(id).await.unwrap().expect(id).run.status
}

pub(crate) async fn claimed_ids(
    backend: &Arc<dyn Backend>,
    runner: &str,
    max: usize,
    limits: &SlotLimits,
    lease: Duration,
) -> Vec<String> {
    let runs = backend
        .claim_queued(runner, max, limits, lease)
        .await
        .unwrap();
    runs.into_iter().map(|r| r.id).collect()
}

/// Claims `id` (the only queued run) with a short lease and waits until it is lost.
async fn make_lost(backend: &Arc<dyn Backend>, id: &str) {
    let claimed = claimed_ids(backend, "gone-runner", 1, &limits(10, &[]), SHORT).await;
    assert_eq!(claimed, [id]);
    eventually("the lease expires and the run is lost", || async move {
        backend.expire_leases().await.unwrap();
        status(backend, id).await == "lost"
    })
    .await;
}

// ---- node runs and live events (fleet.rs, queue.rs, cancels.rs, text.rs) ------------------

/// A timeline cap no test reaches (fleet.rs's `live_events_stop_at_the_timeline_cap` tests it).
const NO_CAP: usize = usize::MAX;

const AGENT_A: &str = "agent/node-a/6f1c2b7e-0000-4000-8000-000000000001";

const AGENT_B: &str = "agent/node-b/6f1c2b7e-0000-4000-8000-000000000002";

/// node-a's agent restarted: a new identity, which holds none of the old one's runs.
const AGENT_A_AGAIN: &str = "agent/node-a/6f1c2b7e-0000-4000-8000-000000000003";

fn for_node(id: &str, node: &str, seq: usize) -> QueuedRun {
    QueuedRun {
        node: Some(node.into()),
        ..queued(id, "pb", seq)
    }
}

fn live_event(message: &str) -> String {
    serde_json::json!({
        "at": "2026-11-25T10:00:01.000Z", "offset_ms": 1.0,
        "event": "log", "level": "info", "message": message,
    })
    .to_string()
}

fn live_events(messages: &[&str]) -> Vec<String> {
    messages.iter().map(|m| live_event(m)).collect()
}

/// The run's timeline as the messages of its events, in order.
async fn timeline(backend: &Arc<dyn Backend>, id: &str) -> Vec<String> {
    let run = backend.get(id).await.unwrap().expect(id);
    run.timeline
        .iter()
        .map(|e| {
            let value = serde_json::to_value(e).unwrap();
            value["message"].as_str().unwrap_or_default().to_string()
        })
        .collect()
}
