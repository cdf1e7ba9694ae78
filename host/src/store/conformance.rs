//! The store contract (store/backend.rs) as tests, written once and run against every backend:
//! `conformance_tests!(subject_future)` expands to one `#[tokio::test]` per behaviour. A
//! subject is a fresh, empty store plus a way to open a second instance on it (another
//! replica, another process), which the cross-instance behaviours use.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures::FutureExt;
use futures::future::BoxFuture;

use super::backend::{Backend, SlotLimits};
use crate::records::{
    Admit, Admitted, AlertRecord, Artifact, Claim, NewMessage, QueuedRun, RunOutcome,
};

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
        $crate::store::conformance::conformance_tests!(@each $subject;
            identical_admissions_at_once_start_exactly_one_run,
            dedup_holds_for_its_window_and_cut_off_runs_free_it,
            cooldown_is_per_playbook_and_key,
            claims_respect_slots_across_two_claimers,
            skip_locked_gives_each_run_to_one_claimer,
            finish_frees_the_slot_and_refuses_a_lost_run,
            leases_are_renewed_by_their_runner_and_expire_without_it,
            lost_runs_are_told_once_across_instances,
            a_webhook_id_is_accepted_once,
            outbox_keeps_channel_order_and_leases_exclusively,
            outbox_once_key_queues_one_message,
            runs_alerts_and_deliveries_read_back,
            a_newer_schema_is_refused,
        );
    };
    (@each $subject:expr; $($behaviour:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $behaviour() {
                $crate::store::conformance::check(
                    $subject,
                    $crate::store::conformance::$behaviour,
                )
                .await;
            }
        )*
    };
}
pub(crate) use conformance_tests;

// ---- fixtures -------------------------------------------------------------------------------

const LONG: Duration = Duration::from_secs(3600);
/// Leases and windows that must run out during a test.
const SHORT: Duration = Duration::from_millis(500);

/// `seq` orders runs by acceptance time.
fn queued(id: &str, playbook: &str, seq: usize) -> QueuedRun {
    QueuedRun {
        id: id.into(),
        playbook: playbook.into(),
        origin: "plugin-dir".into(),
        trigger: "alert".into(),
        params: serde_json::json!({ "case": id }),
        alert: Some(serde_json::json!({ "labels": { "alertname": "BotDown" } })),
        dry_run: false,
        dedup_key: None,
        started_at: format!("2026-11-25T10:{:02}:{:02}.000Z", seq / 60, seq % 60),
        severity: "P2".into(),
    }
}

fn admit(run: QueuedRun) -> Admit {
    Admit {
        run,
        dedup_window: None,
        cooldown: None,
        alert: None,
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
        disposition: disposition.into(),
        playbook: Some("pb".into()),
        run_id: None,
        detail: None,
    }
}

fn outcome(id: &str, status: &str) -> RunOutcome {
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

fn limits(default: usize, per_playbook: &[(&str, usize)]) -> SlotLimits {
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

async fn status(backend: &Arc<dyn Backend>, id: &str) -> String {
    backend.get(id).await.unwrap().expect(id).run.status
}

async fn claimed_ids(
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

// ---- admission ------------------------------------------------------------------------------

pub(crate) async fn identical_admissions_at_once_start_exactly_one_run(s: Subject) {
    let replicas = [s.backend.clone(), (s.open_again)().await.unwrap()];
    let admissions: Vec<_> = (0..200)
        .map(|i| {
            let backend = replicas[i % 2].clone();
            tokio::spawn(async move {
                let mut admission = deduped(queued(&format!("r{i}"), "pb", i), "same-alert", LONG);
                admission.alert = Some(alert("BotDown", ""));
                let admitted = backend.admit(admission).await.unwrap();
                (format!("r{i}"), admitted)
            })
        })
        .collect();
    let (mut started, mut deduplicated) = (Vec::new(), Vec::new());
    for admission in admissions {
        match admission.await.unwrap() {
            (id, Admitted::Started) => started.push(id),
            (_, Admitted::Deduplicated(id)) => deduplicated.push(id),
            (_, Admitted::Cooldown) => panic!("no cooldown asked"),
        }
    }
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(deduplicated.len(), 199);
    assert!(deduplicated.iter().all(|id| *id == started[0]));
    let alerts = s.backend.alerts(1000).await.unwrap();
    assert_eq!(alerts.len(), 200);
    assert_eq!(
        alerts.iter().filter(|a| a.disposition == "started").count(),
        1
    );
    assert!(
        alerts
            .iter()
            .all(|a| a.run_id.as_deref() == Some(started[0].as_str()))
    );
    assert_eq!(s.backend.list(1000, None).await.unwrap().len(), 1);
    assert_eq!(s.backend.run_counts().await.unwrap(), (1, 0));
}

pub(crate) async fn dedup_holds_for_its_window_and_cut_off_runs_free_it(s: Subject) {
    let b = &s.backend;
    let key = |id: &str, seq| deduped(queued(id, "pb", seq), "k", LONG);
    assert_eq!(b.admit(key("a", 1)).await.unwrap(), Admitted::Started);
    assert_eq!(
        b.admit(key("b", 2)).await.unwrap(),
        Admitted::Deduplicated("a".into())
    );
    // Interrupted: the alert must be able to run again.
    assert!(
        b.end_unfinished("a", "interrupted", "host stopped")
            .await
            .unwrap()
    );
    assert!(!b.end_unfinished("a", "failed", "again").await.unwrap());
    assert_eq!(b.admit(key("c", 3)).await.unwrap(), Admitted::Started);
    // Lost: the same.
    make_lost(b, "c").await;
    assert_eq!(b.admit(key("d", 4)).await.unwrap(), Admitted::Started);
    // A run that ended with a result still counts.
    assert_eq!(claimed_ids(b, "me", 1, &limits(1, &[]), LONG).await, ["d"]);
    b.finish(outcome("d", "resolved")).await.unwrap();
    assert_eq!(
        b.admit(key("e", 5)).await.unwrap(),
        Admitted::Deduplicated("d".into())
    );
    // The window ends.
    let short = |id: &str, seq| deduped(queued(id, "pb", seq), "short", SHORT);
    assert_eq!(b.admit(short("f", 6)).await.unwrap(), Admitted::Started);
    assert_eq!(
        b.admit(short("g", 7)).await.unwrap(),
        Admitted::Deduplicated("f".into())
    );
    let mut attempt = 8;
    eventually("the dedup window ends", || {
        attempt += 1;
        let admission = short(&format!("h{attempt}"), attempt);
        async move { b.admit(admission).await.unwrap() == Admitted::Started }
    })
    .await;
}

pub(crate) async fn cooldown_is_per_playbook_and_key(s: Subject) {
    let b = &s.backend;
    let cool = |id: &str, playbook: &str, key: &str| cooled(queued(id, playbook, 1), key, LONG);
    assert_eq!(
        b.admit(cool("c1", "p", "fp1")).await.unwrap(),
        Admitted::Started
    );
    let mut skipped = cool("c2", "p", "fp1");
    skipped.alert = Some(alert("Skipped", ""));
    assert_eq!(b.admit(skipped).await.unwrap(), Admitted::Cooldown);
    let recorded = &b.alerts(1).await.unwrap()[0];
    assert_eq!(
        (recorded.disposition.as_str(), &recorded.run_id),
        ("cooldown", &None)
    );
    assert_eq!(
        b.admit(cool("c3", "p", "fp2")).await.unwrap(),
        Admitted::Started
    );
    assert_eq!(
        b.admit(cool("c4", "q", "fp1")).await.unwrap(),
        Admitted::Started
    );
    assert!(b.get("c2").await.unwrap().is_none());

    // A cooldown refusal leaves no dedup key naming a run that was never recorded.
    let mut both = cool("c5", "p", "fp1");
    both.run.dedup_key = Some("k5".into());
    both.dedup_window = Some(LONG);
    assert_eq!(b.admit(both).await.unwrap(), Admitted::Cooldown);
    let mut again = cool("c6", "p", "fp9");
    again.run.dedup_key = Some("k5".into());
    again.dedup_window = Some(LONG);
    assert_eq!(b.admit(again).await.unwrap(), Admitted::Started);

    // A cut-off run does not hold the cooldown.
    assert!(
        b.end_unfinished("c1", "interrupted", "stopped")
            .await
            .unwrap()
    );
    assert_eq!(
        b.admit(cool("c7", "p", "fp1")).await.unwrap(),
        Admitted::Started
    );

    // The period ends.
    let brief = |id: String| cooled(queued(&id, "r", 2), "fpx", SHORT);
    assert_eq!(
        b.admit(brief("c8".into())).await.unwrap(),
        Admitted::Started
    );
    assert_eq!(
        b.admit(brief("c9".into())).await.unwrap(),
        Admitted::Cooldown
    );
    let mut attempt = 0;
    eventually("the cooldown ends", || {
        attempt += 1;
        let admission = brief(format!("c10-{attempt}"));
        async move { b.admit(admission).await.unwrap() == Admitted::Started }
    })
    .await;
}

// ---- claims and slots -----------------------------------------------------------------------

pub(crate) async fn claims_respect_slots_across_two_claimers(s: Subject) {
    let replicas = [s.backend.clone(), (s.open_again)().await.unwrap()];
    let limits = limits(2, &[("solo", 1), ("many", 3)]);
    for i in 0..9 {
        let playbook = if i % 3 == 2 { "solo" } else { "pb" };
        let run = queued(&format!("q{i}"), playbook, i);
        assert_eq!(
            s.backend.admit(admit(run)).await.unwrap(),
            Admitted::Started
        );
    }
    // More queued runs than one claim looks at: claimers take slots of one playbook at once.
    for i in 0..150 {
        let run = queued(&format!("m{i:03}"), "many", 10 + i);
        s.backend.admit(admit(run)).await.unwrap();
    }
    let claimers: Vec<_> = (0..4)
        .map(|i| {
            let (backend, limits) = (replicas[i % 2].clone(), limits.clone());
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for _ in 0..5 {
                    ids.extend(
                        claimed_ids(&backend, &format!("runner{i}"), 10, &limits, LONG).await,
                    );
                }
                ids
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for claimer in claimers {
        claimed.extend(claimer.await.unwrap());
    }
    claimed.sort();
    let playbook_of = |id: &String| match id.as_str() {
        "q2" | "q5" | "q8" => "solo",
        many if many.starts_with('m') => "many",
        _ => "pb",
    };
    let count = |playbook| {
        claimed
            .iter()
            .filter(|id| playbook_of(id) == playbook)
            .count()
    };
    assert_eq!(
        (count("pb"), count("solo"), count("many")),
        (2, 1, 3),
        "{claimed:?}"
    );
    let mut unique = claimed.clone();
    unique.dedup();
    assert_eq!(unique, claimed, "a run claimed twice");
    assert_eq!(s.backend.run_counts().await.unwrap(), (6 + 147, 6));

    // A finished run frees its slot for the oldest waiting run of its playbook.
    let pb_run = claimed.iter().find(|id| playbook_of(id) == "pb").unwrap();
    s.backend.finish(outcome(pb_run, "resolved")).await.unwrap();
    let next = claimed_ids(&replicas[1], "runner9", 10, &limits, LONG).await;
    let oldest_waiting = (0..9)
        .map(|i| format!("q{i}"))
        .find(|id| playbook_of(id) == "pb" && !claimed.contains(id))
        .unwrap();
    assert_eq!(next, [oldest_waiting]);
    for id in claimed.iter().chain(&next).filter(|id| *id != pb_run) {
        assert_eq!(status(&s.backend, id).await, "running");
    }
}

pub(crate) async fn skip_locked_gives_each_run_to_one_claimer(s: Subject) {
    let replicas = [s.backend.clone(), (s.open_again)().await.unwrap()];
    let limits = limits(1, &[("wide", 100)]);
    for i in 0..40 {
        let run = queued(&format!("w{i:02}"), "wide", i);
        s.backend.admit(admit(run)).await.unwrap();
    }
    let claimers: Vec<_> = (0..4)
        .map(|i| {
            let (backend, limits) = (replicas[i % 2].clone(), limits.clone());
            tokio::spawn(async move {
                let mut ids = Vec::new();
                // A claimer finds nothing only when the others hold every queued run; they
                // keep claiming, so the last one standing empties the queue.
                loop {
                    let got = claimed_ids(&backend, &format!("runner{i}"), 3, &limits, LONG).await;
                    assert!(got.len() <= 3);
                    if got.is_empty() {
                        return ids;
                    }
                    ids.extend(got);
                }
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for claimer in claimers {
        claimed.extend(claimer.await.unwrap());
    }
    claimed.sort();
    let expected: Vec<String> = (0..40).map(|i| format!("w{i:02}")).collect();
    assert_eq!(claimed, expected);
    assert_eq!(s.backend.run_counts().await.unwrap(), (0, 40));
}

pub(crate) async fn finish_frees_the_slot_and_refuses_a_lost_run(s: Subject) {
    let b = &s.backend;
    let one = limits(1, &[]);
    for (i, id) in ["f1", "f2"].into_iter().enumerate() {
        b.admit(admit(queued(id, "one", i))).await.unwrap();
    }
    assert_eq!(claimed_ids(b, "me", 10, &one, LONG).await, ["f1"]);
    assert!(claimed_ids(b, "me", 10, &one, LONG).await.is_empty());
    b.finish(outcome("f1", "resolved")).await.unwrap();
    assert!(
        b.finish(outcome("f1", "resolved")).await.is_err(),
        "finished twice"
    );
    assert_eq!(claimed_ids(b, "me", 10, &one, SHORT).await, ["f2"]);

    // f2's runner stops renewing: its lease ends, it is lost, and its late outcome is refused.
    eventually("f2 is lost", || async move {
        b.expire_leases().await.unwrap();
        status(b, "f2").await == "lost"
    })
    .await;
    let refused = b.finish(outcome("f2", "resolved")).await.unwrap_err();
    assert!(format!("{refused:#}").contains("lost"), "{refused:#}");
    let f2 = b.get("f2").await.unwrap().unwrap();
    assert_eq!((f2.run.status.as_str(), f2.timeline.len()), ("lost", 0));
    assert!(f2.reason.is_some() && f2.run.ended_at.is_some());

    // Expiry freed the slot; so does ending a run unfinished.
    b.admit(admit(queued("f3", "one", 3))).await.unwrap();
    assert_eq!(claimed_ids(b, "me", 10, &one, LONG).await, ["f3"]);
    assert!(
        b.end_unfinished("f3", "failed", "could not start")
            .await
            .unwrap()
    );
    assert_eq!(status(b, "f3").await, "failed");
    b.admit(admit(queued("f4", "one", 4))).await.unwrap();
    assert_eq!(claimed_ids(b, "me", 10, &one, LONG).await, ["f4"]);
}

// ---- leases ---------------------------------------------------------------------------------

pub(crate) async fn leases_are_renewed_by_their_runner_and_expire_without_it(s: Subject) {
    let b = &s.backend;
    let limits = limits(1, &[]);
    b.admit(admit(queued("kept", "a", 1))).await.unwrap();
    b.admit(admit(queued("dropped", "b", 2))).await.unwrap();
    assert_eq!(claimed_ids(b, "keeper", 1, &limits, SHORT).await, ["kept"]);
    assert_eq!(
        claimed_ids(b, "dying", 1, &limits, SHORT).await,
        ["dropped"]
    );
    assert_eq!(b.renew_leases("keeper", SHORT).await.unwrap(), 1);
    assert_eq!(b.renew_leases("nobody", SHORT).await.unwrap(), 0);
    assert_eq!(b.run_counts().await.unwrap(), (0, 2));
    eventually("the unrenewed lease expires", || async move {
        b.renew_leases("keeper", SHORT).await.unwrap();
        b.expire_leases().await.unwrap();
        status(b, "dropped").await == "lost"
    })
    .await;
    assert_eq!(status(b, "kept").await, "running");
    assert_eq!(b.renew_leases("dying", SHORT).await.unwrap(), 0);
    b.renew_leases("keeper", LONG).await.unwrap();
    assert_eq!(b.expire_leases().await.unwrap(), 0);
    assert_eq!(b.run_counts().await.unwrap(), (0, 1));
    // The slot of the lost run is free again; the kept one's is not.
    b.admit(admit(queued("b2", "b", 3))).await.unwrap();
    b.admit(admit(queued("a2", "a", 4))).await.unwrap();
    assert_eq!(claimed_ids(b, "keeper", 10, &limits, LONG).await, ["b2"]);
}

pub(crate) async fn lost_runs_are_told_once_across_instances(s: Subject) {
    let replicas = [s.backend.clone(), (s.open_again)().await.unwrap()];
    let b = &s.backend;
    let all: Vec<String> = (0..24).map(|i| format!("l{i:02}")).collect();
    for (i, id) in all.iter().enumerate() {
        b.admit(admit(queued(id, "pb", i))).await.unwrap();
    }
    assert_eq!(
        claimed_ids(b, "dead", 100, &limits(100, &[]), SHORT)
            .await
            .len(),
        all.len()
    );
    let lost = &std::sync::atomic::AtomicUsize::new(0);
    eventually("every run is lost", || async move {
        let expired = b.expire_leases().await.unwrap();
        lost.fetch_add(expired, std::sync::atomic::Ordering::SeqCst) + expired == 24
    })
    .await;
    let takers: Vec<_> = (0..6)
        .map(|i| {
            let backend = replicas[i % 2].clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                loop {
                    let batch = backend.take_lost_unnotified(2).await.unwrap();
                    let started: Vec<_> = batch.iter().map(|r| r.started_at.clone()).collect();
                    assert!(started.is_sorted(), "oldest first: {started:?}");
                    if batch.is_empty() {
                        return ids;
                    }
                    ids.extend(batch.into_iter().map(|r| r.id));
                }
            })
        })
        .collect();
    let mut told = Vec::new();
    for taker in takers {
        told.extend(taker.await.unwrap());
    }
    told.sort();
    assert_eq!(told, all);
    assert!(b.take_lost_unnotified(10).await.unwrap().is_empty());
}

// ---- replay ids -----------------------------------------------------------------------------

pub(crate) async fn a_webhook_id_is_accepted_once(s: Subject) {
    let replicas = [s.backend.clone(), (s.open_again)().await.unwrap()];
    let b = &s.backend;
    assert!(b.first_delivery("msg_1", LONG).await.unwrap());
    assert!(!b.first_delivery("msg_1", LONG).await.unwrap());
    assert!(!replicas[1].first_delivery("msg_1", LONG).await.unwrap());
    assert!(b.first_delivery("msg_2", LONG).await.unwrap());

    let deliveries: Vec<_> = (0..20)
        .map(|i| {
            let backend = replicas[i % 2].clone();
            tokio::spawn(async move { backend.first_delivery("msg_3", LONG).await.unwrap() })
        })
        .collect();
    let mut accepted = 0;
    for delivery in deliveries {
        accepted += usize::from(delivery.await.unwrap());
    }
    assert_eq!(accepted, 1);

    assert!(b.first_delivery("msg_4", SHORT).await.unwrap());
    assert!(!b.first_delivery("msg_4", SHORT).await.unwrap());
    eventually("the replay window ends", || async move {
        b.first_delivery("msg_4", SHORT).await.unwrap()
    })
    .await;
}

// ---- the outbox -----------------------------------------------------------------------------

fn due(claim: Claim) -> Box<crate::records::OutboxRow> {
    match claim {
        Claim::Due(row) => row,
        other => panic!("expected a due row, got {other:?}"),
    }
}

pub(crate) async fn outbox_keeps_channel_order_and_leases_exclusively(s: Subject) {
    let (b, other) = (&s.backend, (s.open_again)().await.unwrap());
    let m1 = b
        .enqueue(message("run-1", "ops", "first", "trigger"), None)
        .await
        .unwrap();
    let m2 = b
        .enqueue(message("run-1", "ops", "second", "resolve"), None)
        .await
        .unwrap();
    let m3 = b
        .enqueue(message("run-2", "other", "third", "trigger"), None)
        .await
        .unwrap();

    let head = due(b.claim_head("ops", LONG).await.unwrap());
    assert_eq!(
        (head.id, head.attempts, head.title.as_str()),
        (m1, 1, "first")
    );
    // Leased: another replica waits instead of sending it again or skipping to the next.
    assert!(matches!(
        other.claim_head("ops", LONG).await.unwrap(),
        Claim::Wait(_)
    ));
    assert_eq!(due(other.claim_head("other", LONG).await.unwrap()).id, m3);

    // Backing off keeps the head: a resolve never overtakes its trigger.
    b.mark_retry(m1, SHORT, "500").await.unwrap();
    assert!(matches!(
        b.claim_head("ops", LONG).await.unwrap(),
        Claim::Wait(_)
    ));
    let retried = eventually_some("the retry is due", || {
        let other = other.clone();
        async move {
            match other.claim_head("ops", LONG).await.unwrap() {
                Claim::Due(row) => Some(row),
                Claim::Wait(_) => None,
                Claim::Empty => panic!("the head vanished"),
            }
        }
    })
    .await;
    assert_eq!((retried.id, retried.attempts), (m1, 2));
    assert_eq!(retried.last_error.as_deref(), Some("500"));
    b.mark_parts_sent(m1, 2).await.unwrap();
    b.mark_delivered(m1).await.unwrap();
    assert_eq!(due(b.claim_head("ops", LONG).await.unwrap()).id, m2);
    b.mark_failed(m2, "400 invalid_payload").await.unwrap();
    assert!(matches!(
        b.claim_head("ops", LONG).await.unwrap(),
        Claim::Empty
    ));

    let first = b.outbox_row(m1).await.unwrap().unwrap();
    assert_eq!(
        (first.state.as_str(), first.parts_sent, first.attempts),
        ("delivered", 2, 2)
    );
    assert!(first.delivered_at.is_some() && first.last_error.is_none());
    let states: Vec<String> = b
        .outbox_for_run("run-1")
        .await
        .unwrap()
        .into_iter()
        .map(|r| format!("{}:{}", r.state, r.last_error.unwrap_or_default()))
        .collect();
    assert_eq!(states, ["delivered:", "failed:400 invalid_payload"]);
    let ids =
        |rows: Vec<crate::records::OutboxRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(b.outbox_list(None, 10).await.unwrap()), [m3, m2, m1]);
    assert_eq!(ids(b.outbox_list(Some("failed"), 10).await.unwrap()), [m2]);
    assert_eq!(
        b.outbox_pending().await.unwrap(),
        [("other".to_string(), 1)]
    );
    assert_eq!(
        b.last_for_dedup_key("ops", "k1")
            .await
            .unwrap()
            .map(|r| r.id),
        Some(m2)
    );
    assert!(
        b.last_for_dedup_key("nowhere", "k1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(b.outbox_row(m3 + 100).await.unwrap().is_none());

    // Twenty workers of two replicas at once: one gets the row (five rounds, five channels).
    let replicas = [b.clone(), other.clone()];
    for round in 0..5 {
        let channel = format!("race{round}");
        let raced = b
            .enqueue(message("run-4", &channel, "raced", "trigger"), None)
            .await
            .unwrap();
        let workers: Vec<_> = (0..20)
            .map(|i| {
                let (backend, channel) = (replicas[i % 2].clone(), channel.clone());
                tokio::spawn(async move { backend.claim_head(&channel, LONG).await.unwrap() })
            })
            .collect();
        let mut winners = Vec::new();
        for worker in workers {
            if let Claim::Due(row) = worker.await.unwrap() {
                winners.push(row.id);
            }
        }
        assert_eq!(winners, [raced], "round {round}");
    }

    // A worker that dies holding a row: its lease runs out and another replica takes it.
    let m5 = b
        .enqueue(message("run-5", "lapse", "lapsed", "trigger"), None)
        .await
        .unwrap();
    assert_eq!(due(b.claim_head("lapse", SHORT).await.unwrap()).id, m5);
    let taken = eventually_some("the lease runs out", || {
        let other = other.clone();
        async move {
            match other.claim_head("lapse", LONG).await.unwrap() {
                Claim::Due(row) => Some((row.id, row.attempts)),
                _ => None,
            }
        }
    })
    .await;
    assert_eq!(taken, (m5, 2));
}

pub(crate) async fn outbox_once_key_queues_one_message(s: Subject) {
    let replicas = [s.backend.clone(), (s.open_again)().await.unwrap()];
    let enqueues: Vec<_> = (0..10)
        .map(|i| {
            let backend = replicas[i % 2].clone();
            tokio::spawn(async move {
                let resolve = message("run-1", "pagerduty", "resolved", "resolve");
                backend
                    .enqueue(resolve, Some("resolve:k1".into()))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for enqueue in enqueues {
        ids.push(enqueue.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(s.backend.outbox_for_run("run-1").await.unwrap().len(), 1);
    // Without a key, every message is queued.
    let plain = message("run-1", "pagerduty", "again", "trigger");
    assert_ne!(
        s.backend.enqueue(plain.clone(), None).await.unwrap(),
        ids[0]
    );
    s.backend.enqueue(plain, None).await.unwrap();
    assert_eq!(s.backend.outbox_for_run("run-1").await.unwrap().len(), 3);
}

// ---- reads ----------------------------------------------------------------------------------

pub(crate) async fn runs_alerts_and_deliveries_read_back(s: Subject) {
    let b = &s.backend;
    let mut cli = queued("cli-1", "cli", 1);
    cli.trigger = "cli".into();
    cli.dry_run = true;
    b.insert_running(cli, "me", LONG).await.unwrap();
    assert_eq!(b.run_counts().await.unwrap(), (0, 1));
    b.finish(outcome("cli-1", "resolved")).await.unwrap();
    let mut web = admit(queued("web-1", "web", 2));
    web.alert = Some(alert("BotDown", ""));
    assert_eq!(b.admit(web).await.unwrap(), Admitted::Started);
    b.record_alerts(vec![
        alert("Unrouted", "unrouted"),
        alert("Later", "unrouted"),
    ])
    .await
    .unwrap();
    let sent = b
        .enqueue(message("cli-1", "ops", "done", "trigger"), None)
        .await
        .unwrap();

    let run = b.get("cli-1").await.unwrap().unwrap();
    assert_eq!(
        (
            run.run.status.as_str(),
            run.run.summary.as_str(),
            run.run.dry_run
        ),
        ("resolved", "cli-1 resolved", true)
    );
    assert_eq!(
        (
            run.run.trigger.as_str(),
            run.run.severity.as_str(),
            run.origin.as_str()
        ),
        ("cli", "P2", "plugin-dir")
    );
    assert_eq!(run.run.started_at, "2026-11-25T10:00:01.000Z");
    assert_eq!(
        run.run.ended_at.as_deref(),
        Some("2026-11-25T10:00:02.000Z")
    );
    assert_eq!(run.params["case"], "cli-1");
    assert_eq!(
        run.alert.as_ref().unwrap()["labels"]["alertname"],
        "BotDown"
    );
    assert_eq!(run.actions, serde_json::json!(["restarted bot"]));
    assert_eq!(run.timings.as_ref().unwrap()["total_ms"], 12);
    assert_eq!(run.grants.as_ref().unwrap()["docker"][0], "bot");
    let messages: Vec<String> = run
        .timeline
        .iter()
        .map(|e| match &e.kind {
            crate::timeline::EventKind::Log { message, .. } => message.clone(),
            other => panic!("unexpected event {other:?}"),
        })
        .collect();
    assert_eq!(messages, ["looking", "restarted"]);
    assert_eq!(run.artifacts.len(), 1);
    let artifact = &run.artifacts[0];
    assert_eq!(
        (
            artifact.name.as_str(),
            artifact.bytes,
            artifact.text.as_str()
        ),
        ("logs.txt", 5, "hello")
    );
    assert_eq!(artifact.sha256, "ab".repeat(32));
    assert_eq!(
        run.deliveries.iter().map(|d| d.id).collect::<Vec<_>>(),
        [sent]
    );
    assert!(b.get("nothing").await.unwrap().is_none());

    let web = b.get("web-1").await.unwrap().unwrap();
    assert_eq!(
        (web.run.status.as_str(), web.run.ended_at),
        ("queued", None)
    );
    let ids =
        |runs: Vec<crate::records::RunSummary>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(b.list(10, None).await.unwrap()), ["web-1", "cli-1"]);
    assert_eq!(ids(b.list(1, None).await.unwrap()), ["web-1"]);
    assert_eq!(ids(b.list(10, Some("cli")).await.unwrap()), ["cli-1"]);
    let alerts = b.alerts(10).await.unwrap();
    let names: Vec<&str> = alerts.iter().map(|a| a.alertname.as_str()).collect();
    assert_eq!(names, ["Later", "Unrouted", "BotDown"]);
    assert_eq!(
        (alerts[2].disposition.as_str(), alerts[2].run_id.as_deref()),
        ("started", Some("web-1"))
    );
    assert_eq!(alerts[2].labels["alertname"], "BotDown");
    assert!(b.ping().await.is_ok());
}

pub(crate) async fn a_newer_schema_is_refused(s: Subject) {
    (s.set_schema_version)(99).await.unwrap();
    let err = (s.open_again)().await.err().expect("a newer schema opened");
    assert!(format!("{err:#}").contains("schema version 99"), "{err:#}");
}
