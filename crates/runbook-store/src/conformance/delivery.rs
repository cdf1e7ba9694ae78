//! The contract's replay ids, outbox, reads and schema.

use super::*;

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

    assert!(b.first_delivery("msg_4", BRIEF).await.unwrap());
    assert!(!b.first_delivery("msg_4", BRIEF).await.unwrap());
    eventually("the replay window ends", || async move {
        b.first_delivery("msg_4", BRIEF).await.unwrap()
    })
    .await;
}

// ---- the outbox -----------------------------------------------------------------------------

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

/// `len` bytes that do not compress (an index entry is bounded whatever the compression).
fn noise(seed: &str, len: usize) -> String {
    use sha2::Digest;
    let mut out = String::new();
    let mut block = sha2::Sha256::digest(seed.as_bytes());
    while out.len() < len {
        out.push_str(&hex::encode(block));
        block = sha2::Sha256::digest(block);
    }
    out.truncate(len);
    out
}

/// Dedup keys, cooldown keys (alert fingerprints), webhook ids and once-keys come from the
/// outside: a 10 KB one is still a key, and two that share a long prefix are two keys.
pub(crate) async fn keys_of_any_length_are_keys(s: Subject) {
    let b = &s.backend;
    let long = noise("a", 10_000);
    let sibling = format!("{}{}", &long[..9_000], noise("b", 1_000));
    let dedup = |id: &str, key: &str| deduped(queued(id, "pb", 1), key, LONG);
    assert_eq!(
        b.admit(dedup("k1", &long)).await.unwrap(),
        Admitted::Started
    );
    assert_eq!(
        b.admit(dedup("k2", &long)).await.unwrap(),
        Admitted::Deduplicated("k1".into())
    );
    assert_eq!(
        b.admit(dedup("k3", &sibling)).await.unwrap(),
        Admitted::Started
    );
    let cool = |id: &str, key: &str| cooled(queued(id, "pb", 2), key, LONG);
    assert_eq!(b.admit(cool("k4", &long)).await.unwrap(), Admitted::Started);
    assert_eq!(
        b.admit(cool("k5", &long)).await.unwrap(),
        Admitted::Cooldown
    );
    assert_eq!(
        b.admit(cool("k6", &sibling)).await.unwrap(),
        Admitted::Started
    );

    assert!(b.first_delivery(&long, LONG).await.unwrap());
    assert!(!b.first_delivery(&long, LONG).await.unwrap());
    assert!(b.first_delivery(&sibling, LONG).await.unwrap());

    let mut trigger = message("k1", "ops", "long", "trigger");
    trigger.dedup_key = Some(long.clone());
    let first = b
        .enqueue(trigger.clone(), Some(long.clone()))
        .await
        .unwrap();
    assert_eq!(
        b.enqueue(trigger.clone(), Some(long.clone()))
            .await
            .unwrap(),
        first
    );
    assert_ne!(
        b.enqueue(trigger, Some(sibling.clone())).await.unwrap(),
        first
    );
    let last = b.last_for_dedup_key("ops", &long).await.unwrap().unwrap();
    assert_eq!(last.dedup_key.as_deref(), Some(long.as_str()));
    assert!(
        b.last_for_dedup_key("ops", &sibling)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(b.get("k1").await.unwrap().unwrap().dedup_key, Some(long));
}

pub(crate) async fn a_newer_schema_is_refused(s: Subject) {
    (s.set_schema_version)(99).await.unwrap();
    let err = (s.open_again)().await.err().expect("a newer schema opened");
    assert!(format!("{err:#}").contains("schema version 99"), "{err:#}");
}
