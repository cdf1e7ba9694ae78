//! The `Leases` role: leases renewed by their runner and expiring without it; lost runs
//! told once.

use super::*;

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
