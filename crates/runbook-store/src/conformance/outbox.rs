//! The `Outbox` role: channel order, exclusive leases, once keys, the console's retry.

use super::*;

pub(crate) fn due(claim: Claim) -> Box<crate::records::OutboxRow> {
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
    b.mark_retry(m1, BRIEF, "500").await.unwrap();
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

pub(crate) async fn a_failed_message_can_be_retried_once(s: Subject) {
    let b = &s.backend;
    let id = b
        .enqueue(message("run-1", "ops", "first", "trigger"), None)
        .await
        .unwrap();
    // Pending: nothing to retry.
    assert!(!b.outbox_retry(id).await.unwrap());
    let head = due(b.claim_head("ops", LONG).await.unwrap());
    assert_eq!(head.id, id);
    b.mark_failed(id, "410 gone").await.unwrap();
    assert_eq!(b.outbox_row(id).await.unwrap().unwrap().state, "failed");

    assert!(b.outbox_retry(id).await.unwrap());
    // Twice (two clicks, two replicas): the second finds it pending already.
    assert!(!b.outbox_retry(id).await.unwrap());
    let row = b.outbox_row(id).await.unwrap().unwrap();
    assert_eq!((row.state.as_str(), row.attempts), ("pending", 1));
    // Due now, and no lease left from the failed attempt.
    let again = due(b.claim_head("ops", LONG).await.unwrap());
    assert_eq!((again.id, again.attempts), (id, 2));
    b.mark_delivered(id).await.unwrap();
    assert!(!b.outbox_retry(id).await.unwrap());
    assert!(!b.outbox_retry(id + 1000).await.unwrap());
}

/// A row its queuer delivers at once (a file append) is held from the insert: no worker of
/// any instance takes it while the lease lasts, a repeat of its once key is not held again,
/// and a queuer that died before marking it leaves it to a worker once the lease ends.
pub(crate) async fn a_held_message_is_left_to_workers_only_when_its_lease_ends(s: Subject) {
    let (b, other) = (&s.backend, (s.open_again)().await.unwrap());
    let held = message("run-6", "file", "held", "trigger");
    let (id, new) = b
        .enqueue_held(held.clone(), Some("audit-1-file".into()), LONG)
        .await
        .unwrap();
    assert!(new);
    assert!(matches!(
        other.claim_head("file", LONG).await.unwrap(),
        Claim::Wait(_)
    ));
    // The same event queued again (another replica, a sweep): the same row, not held anew.
    assert_eq!(
        other
            .enqueue_held(held.clone(), Some("audit-1-file".into()), LONG)
            .await
            .unwrap(),
        (id, false)
    );
    b.mark_delivered(id).await.unwrap();
    assert!(matches!(
        other.claim_head("file", LONG).await.unwrap(),
        Claim::Empty
    ));
    assert_eq!(
        b.enqueue_held(held.clone(), Some("audit-1-file".into()), LONG)
            .await
            .unwrap(),
        (id, false)
    );

    // A holder that died: the row is a worker's once the lease runs out, as attempt 2.
    let (orphan, _) = b
        .enqueue_held(held, Some("audit-2-file".into()), SHORT)
        .await
        .unwrap();
    let taken = eventually_some("the holder's lease runs out", || {
        let other = other.clone();
        async move {
            match other.claim_head("file", LONG).await.unwrap() {
                Claim::Due(row) => Some((row.id, row.attempts)),
                _ => None,
            }
        }
    })
    .await;
    assert_eq!(taken, (orphan, 2));
}
