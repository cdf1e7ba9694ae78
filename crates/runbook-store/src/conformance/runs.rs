//! The contract's runs: admission (dedup, cooldown), claims and slots, leases.

use super::*;

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
    assert_eq!(claimed_ids(b, "keeper", 1, &limits, BRIEF).await, ["kept"]);
    assert_eq!(
        claimed_ids(b, "dying", 1, &limits, SHORT).await,
        ["dropped"]
    );
    assert_eq!(b.renew_leases("keeper", BRIEF).await.unwrap(), 1);
    assert_eq!(b.renew_leases("nobody", SHORT).await.unwrap(), 0);
    assert_eq!(b.run_counts().await.unwrap(), (0, 2));
    eventually("the unrenewed lease expires", || async move {
        b.renew_leases("keeper", BRIEF).await.unwrap();
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
    // Both instances expire at once: each run is counted lost once.
    let (first, second) = (&replicas[0], &replicas[1]);
    eventually("every run is lost", || async move {
        let (one, two) = tokio::join!(first.expire_leases(), second.expire_leases());
        let expired = one.unwrap() + two.unwrap();
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
