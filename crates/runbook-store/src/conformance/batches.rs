//! Admissions arriving together (one group commit on either backend): the answers are those
//! of one after the other, in arrival order, and one that fails fails alone.

use super::*;

/// Sends every admission before awaiting any, so they reach the store's writer in this order
/// and wait for it together.
async fn all_at_once(b: &Arc<dyn Backend>, admits: Vec<Admit>) -> Vec<Result<Admitted>> {
    futures::future::join_all(admits.into_iter().map(|a| b.admit(a))).await
}

fn with_alert(mut admit: Admit, name: &str) -> Admit {
    admit.alert = Some(alert(name, ""));
    admit
}

pub(crate) async fn admissions_arriving_together_answer_as_one_after_another(s: Subject) {
    let b = &s.backend;
    let cooled_by =
        |id: &str, playbook: &str, key: &str| cooled(queued(id, playbook, 1), key, LONG);
    assert_eq!(
        b.admit(cooled_by("held", "p", "c")).await.unwrap(),
        Admitted::Started
    );
    let both = |id: &str, dedup: &str, cooldown: &str| {
        let mut a = cooled_by(id, "p", cooldown);
        a.run.dedup_key = Some(dedup.into());
        a.dedup_window = Some(LONG);
        a
    };
    let admits = vec![
        deduped(queued("a0", "p", 2), "k1", LONG),
        deduped(queued("a1", "p", 3), "k1", LONG),
        // Cooled down by "held": the dedup key it took is given back...
        both("b0", "k2", "c"),
        // ...so the next one with that key starts, and the one after names it.
        both("b1", "k2", "c2"),
        deduped(queued("b2", "p", 4), "k2", LONG),
        cooled_by("c0", "q", "x"),
        cooled_by("c1", "q", "x"),
        deduped(queued("a2", "p", 5), "k1", LONG),
    ];
    let names: Vec<String> = admits.iter().map(|a| a.run.id.clone()).collect();
    let admits = admits
        .into_iter()
        .zip(&names)
        .map(|(a, name)| with_alert(a, name))
        .collect();
    let answers: Vec<Admitted> = all_at_once(b, admits)
        .await
        .into_iter()
        .map(|a| a.unwrap())
        .collect();
    let dedup = |id: &str| Admitted::Deduplicated(id.into());
    assert_eq!(
        answers,
        [
            Admitted::Started,
            dedup("a0"),
            Admitted::Cooldown,
            Admitted::Started,
            dedup("b1"),
            Admitted::Started,
            Admitted::Cooldown,
            dedup("a0"),
        ]
    );
    let mut runs: Vec<String> = b
        .list(100, None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    runs.sort();
    assert_eq!(runs, ["a0", "b1", "c0", "held"]);
    // Each alert with its own admission's disposition and run.
    let mut alerts: Vec<(String, String, Option<String>)> = b
        .alerts(100)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.alertname, a.disposition.as_str().to_string(), a.run_id))
        .collect();
    alerts.sort();
    let some = |id: &str| Some(id.to_string());
    let expected: Vec<(String, String, Option<String>)> = [
        ("a0", "started", some("a0")),
        ("a1", "deduplicated", some("a0")),
        ("a2", "deduplicated", some("a0")),
        ("b0", "cooldown", None),
        ("b1", "started", some("b1")),
        ("b2", "deduplicated", some("b1")),
        ("c0", "started", some("c0")),
        ("c1", "cooldown", None),
    ]
    .into_iter()
    .map(|(n, d, r)| (n.to_string(), d.to_string(), r))
    .collect();
    assert_eq!(alerts, expected);
}

pub(crate) async fn a_failing_admission_among_others_fails_alone(s: Subject) {
    let b = &s.backend;
    assert_eq!(
        b.admit(admit(queued("taken", "p", 1))).await.unwrap(),
        Admitted::Started
    );
    let admits = vec![
        with_alert(admit(queued("ok1", "p", 2)), "ok1"),
        // A run id already stored: the database refuses the row.
        with_alert(admit(queued("taken", "p", 3)), "refused"),
        with_alert(deduped(queued("ok2", "p", 4), "k", LONG), "ok2"),
        // The same id twice in one batch: the second is refused.
        with_alert(admit(queued("ok2", "p", 5)), "refused too"),
        with_alert(deduped(queued("ok3", "p", 6), "k", LONG), "ok3"),
    ];
    let answers = all_at_once(b, admits).await;
    assert_eq!(answers[0].as_ref().unwrap(), &Admitted::Started);
    let refused = format!("{:#}", answers[1].as_ref().unwrap_err());
    assert!(
        refused.contains("taken") || refused.to_lowercase().contains("unique"),
        "{refused}"
    );
    assert_eq!(answers[2].as_ref().unwrap(), &Admitted::Started);
    assert!(answers[3].is_err(), "{:?}", answers[3]);
    assert_eq!(
        answers[4].as_ref().unwrap(),
        &Admitted::Deduplicated("ok2".into())
    );
    let mut runs: Vec<String> = b
        .list(100, None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    runs.sort();
    assert_eq!(runs, ["ok1", "ok2", "taken"]);
    // The refused admissions left no alert record; the others did.
    let mut alerts: Vec<String> = b
        .alerts(100)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.alertname)
        .collect();
    alerts.sort();
    assert_eq!(alerts, ["ok1", "ok2", "ok3"]);
    // The original run is untouched.
    let taken = b.get("taken").await.unwrap().unwrap();
    assert_eq!(taken.run.started_at, queued("taken", "p", 1).started_at);
}

/// Outcomes arriving together (one statement on PostgreSQL): each running run gets its own
/// outcome, timeline and artifacts; an outcome for a run that is not running answers its own
/// error (or `false` for a holder that does not hold it) and touches no other.
pub(crate) async fn outcomes_arriving_together_are_each_answered_alone(s: Subject) {
    let b = &s.backend;
    for (i, id) in ["f1", "f2", "f3", "held"].iter().enumerate() {
        b.admit(admit(queued(id, "p", i + 1))).await.unwrap();
    }
    let mut claimed = claimed_ids(b, "runner-a", 10, &limits(10, &[]), LONG).await;
    claimed.sort();
    assert_eq!(claimed, ["f1", "f2", "f3", "held"]);
    b.admit(admit(queued("waiting", "p", 9))).await.unwrap();
    let mut short = outcome("f2", "mitigated");
    short.events.truncate(1);
    short.artifacts.clear();
    let answers = futures::future::join_all([
        b.finish(outcome("f1", "resolved")),
        // Still queued: refused, nothing written.
        b.finish(outcome("waiting", "resolved")),
        b.finish(short),
        b.finish(outcome("never-stored", "resolved")),
        b.finish(outcome("f3", "failed")),
        // The same run twice: the second finds it ended.
        b.finish(outcome("f3", "resolved")),
    ])
    .await;
    assert!(answers[0].is_ok(), "{:?}", answers[0]);
    let waiting = format!("{:#}", answers[1].as_ref().unwrap_err());
    assert!(waiting.contains("waiting"), "{waiting}");
    assert!(answers[2].is_ok(), "{:?}", answers[2]);
    let never = format!("{:#}", answers[3].as_ref().unwrap_err());
    assert!(never.contains("never-stored"), "{never}");
    assert!(answers[4].is_ok(), "{:?}", answers[4]);
    let twice = format!("{:#}", answers[5].as_ref().unwrap_err());
    assert!(twice.contains("f3"), "{twice}");
    // A holder's outcomes together: its own run written, another runner's refused (false).
    let held = futures::future::join_all([
        b.finish_held(outcome("held", "resolved"), "runner-b"),
        b.finish_held(outcome("held", "resolved"), "runner-a"),
    ])
    .await;
    assert!(!held[0].as_ref().unwrap(), "runner-b does not hold it");
    assert!(held[1].as_ref().unwrap(), "runner-a holds it");

    let f1 = b.get("f1").await.unwrap().unwrap();
    assert_eq!(f1.run.status, "resolved");
    assert_eq!(f1.timeline.len(), 2);
    assert_eq!(f1.artifacts.len(), 1);
    assert_eq!(f1.artifacts[0].text, "hello");
    let f2 = b.get("f2").await.unwrap().unwrap();
    assert_eq!(f2.run.status, "mitigated");
    assert_eq!(f2.timeline.len(), 1);
    assert!(f2.artifacts.is_empty());
    assert_eq!(status(b, "f3").await, "failed");
    assert_eq!(status(b, "held").await, "resolved");
    assert_eq!(status(b, "waiting").await, "queued");
    assert!(b.get("waiting").await.unwrap().unwrap().timeline.is_empty());
    // Every slot was given back: the queued run and three more are claimed.
    b.admit(admit(queued("next", "p", 10))).await.unwrap();
    let mut next = claimed_ids(b, "runner-c", 10, &limits(2, &[]), LONG).await;
    next.sort();
    assert_eq!(next, ["next", "waiting"]);
}
