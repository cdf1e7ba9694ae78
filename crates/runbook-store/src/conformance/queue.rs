//! The `RunQueue` role: admission (dedup, cooldown), claims and slots, finishing, the
//! counts the server's bounds read, and claimers woken by a new run.

use super::*;

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
        alerts
            .iter()
            .filter(|a| a.disposition == crate::Disposition::Started)
            .count(),
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
    let short = |id: &str, seq| deduped(queued(id, "pb", seq), "short", BRIEF);
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
    let brief = |id: String| cooled(queued(&id, "r", 2), "fpx", BRIEF);
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

/// A new run wakes every claimer waiting at that moment (a server's claim loop and the held
/// polls of fleet agents wait together), not only one of them.
pub(crate) async fn every_waiting_claimer_wakes_on_a_new_run(s: Subject) {
    let b = s.backend.clone();
    let long = Duration::from_secs(30);
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                b.wait_for_queued(long).await;
                started.elapsed()
            })
        })
        .collect();
    // Every waiter is parked before the run is admitted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.admit(admit(queued("wake", "pb", 1))).await.unwrap();
    for waiter in waiters {
        let waited = waiter.await.unwrap();
        assert!(waited < long, "a waiter slept through the admission");
    }
}

pub(crate) async fn queued_runs_are_counted_by_who_waits_for_them(s: Subject) {
    let b = &s.backend;
    assert_eq!(b.queue_depths(None).await.unwrap(), Default::default());
    b.admit(admit(queued("l1", "pb", 1))).await.unwrap();
    b.admit(admit(for_node("a1", "node-a", 2))).await.unwrap();
    b.admit(admit(for_node("a2", "node-a", 3))).await.unwrap();
    b.admit(admit(for_node("b1", "node-b", 4))).await.unwrap();
    let depths = b.queue_depths(Some("node-a")).await.unwrap();
    assert_eq!((depths.local, depths.nodes, depths.node), (1, 3, 2));
    assert_eq!(b.queue_depths(Some("node-c")).await.unwrap().node, 0);
    assert_eq!(b.queue_depths(None).await.unwrap().node, 0);
    // A claimed run no longer waits.
    let wide = limits(100, &[]);
    b.claim_for_node("node-a", AGENT_A, 1, &wide, LONG)
        .await
        .unwrap();
    let depths = b.queue_depths(Some("node-a")).await.unwrap();
    assert_eq!((depths.local, depths.nodes, depths.node), (1, 2, 1));
}

pub(crate) async fn a_run_says_when_it_began_running(s: Subject) {
    let b = &s.backend;
    b.admit(admit(queued("l1", "pb", 1))).await.unwrap();
    b.admit(admit(for_node("a1", "node-a", 2))).await.unwrap();
    let since =
        |id: &'static str| async move { b.get(id).await.unwrap().unwrap().run.running_since };
    // Waiting: not running yet (the console says what it waits for, and counts no run time).
    assert_eq!(since("l1").await, None);
    assert_eq!(since("a1").await, None);
    let wide = limits(100, &[]);
    assert_eq!(claimed_ids(b, "runner-1", 1, &wide, LONG).await, ["l1"]);
    b.claim_for_node("node-a", AGENT_A, 1, &wide, LONG)
        .await
        .unwrap();
    for id in ["l1", "a1"] {
        let run = b.get(id).await.unwrap().unwrap().run;
        let began = run.running_since.expect("running since its claim");
        // Accepted (the fixture's time) before it began running (the store's clock, now).
        assert!(began > run.started_at, "{began} <= {}", run.started_at);
    }
    // A run started at once (the CLI's) began when it was accepted.
    b.insert_running(queued("c1", "pb", 3), "runner-1", LONG)
        .await
        .unwrap();
    let run = b.get("c1").await.unwrap().unwrap().run;
    assert_eq!(run.running_since.as_deref(), Some(&*run.started_at));
}
