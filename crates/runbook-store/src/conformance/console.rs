//! What the console reads and does: the runs page's filters and keyset pages, the outbox
//! retry, and the key its CSRF tokens are made with.

use super::*;
use crate::RunFilter;

pub(crate) async fn runs_page_filters_and_keyset_pages(s: Subject) {
    let b = &s.backend;
    // 30 runs: playbooks a/b alternate, every third P1, every fifth for node n1.
    for i in 0..30 {
        let mut run = queued(&format!("r{i:02}"), if i % 2 == 0 { "a" } else { "b" }, i);
        if i % 3 == 0 {
            run.severity = "P1".into();
        }
        if i % 5 == 0 {
            run.node = Some("n1".into());
        }
        if i % 7 == 0 {
            run.trigger = "webhook".into();
        }
        b.admit(admit(run)).await.unwrap();
    }
    // Two runs started in the same millisecond: the id breaks the tie, none is lost between
    // pages.
    for id in ["t1", "t2"] {
        let mut run = queued(id, "a", 40);
        run.started_at = "2026-11-25T10:00:29.000Z".into();
        b.admit(admit(run)).await.unwrap();
    }

    let mut all = Vec::new();
    let mut filter = RunFilter {
        limit: 7,
        ..RunFilter::default()
    };
    loop {
        let runs = b.list_page(&filter).await.unwrap();
        assert!(runs.len() <= 7);
        let Some(last) = runs.last() else { break };
        filter.before = Some((last.started_at.clone(), last.id.clone()));
        all.extend(runs.into_iter().map(|r| r.id));
    }
    // r29, t1 and t2 share 10:00:29.000: by id, descending.
    let mut expected: Vec<String> = vec!["t2".into(), "t1".into()];
    expected.extend((0..30).rev().map(|i| format!("r{i:02}")));
    assert_eq!(all, expected);

    let only = |f: RunFilter| async move {
        let runs = b.list_page(&RunFilter { limit: 100, ..f }).await.unwrap();
        runs.into_iter().map(|r| r.id).collect::<Vec<_>>()
    };
    let ids = |range: &mut dyn Iterator<Item = usize>| -> Vec<String> {
        let mut ids: Vec<String> = range.map(|i| format!("r{i:02}")).collect();
        ids.reverse();
        ids
    };
    assert_eq!(
        only(RunFilter {
            playbook: Some("b".into()),
            severity: Some("P1".into()),
            ..RunFilter::default()
        })
        .await,
        ids(&mut (0..30).filter(|i| i % 2 == 1 && i % 3 == 0))
    );
    assert_eq!(
        only(RunFilter {
            node: Some("n1".into()),
            ..RunFilter::default()
        })
        .await,
        ids(&mut (0..30).filter(|i| i % 5 == 0))
    );
    assert_eq!(
        only(RunFilter {
            trigger: Some("webhook".into()),
            status: Some("queued".into()),
            ..RunFilter::default()
        })
        .await,
        ids(&mut (0..30).filter(|i| i % 7 == 0))
    );
    assert!(
        only(RunFilter {
            status: Some("failed".into()),
            ..RunFilter::default()
        })
        .await
        .is_empty()
    );
    // since inclusive, until exclusive.
    assert_eq!(
        only(RunFilter {
            playbook: Some("b".into()),
            since: Some("2026-11-25T10:00:05.000Z".into()),
            until: Some("2026-11-25T10:00:11.000Z".into()),
            ..RunFilter::default()
        })
        .await,
        ids(&mut [5, 7, 9].into_iter())
    );
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

/// Who asked for a run and how long it executed read back in lists and pages, and who asks
/// travels with the queued run to whoever claims it; an outbox row says when it was last
/// tried and, while pending, when it is tried next.
pub(crate) async fn who_asked_how_long_and_when_tried_read_back(s: Subject) {
    let b = &s.backend;
    let mut run = queued("console-1", "pb", 1);
    run.trigger = "console".into();
    run.by = Some("oncall".into());
    b.admit(admit(run)).await.unwrap();
    b.admit(admit(queued("alert-1", "pb", 2))).await.unwrap();
    let page = b
        .list_page(&RunFilter {
            limit: 10,
            ..RunFilter::default()
        })
        .await
        .unwrap();
    let by: Vec<_> = page
        .iter()
        .map(|r| (r.id.as_str(), r.by.as_deref()))
        .collect();
    assert_eq!(by, [("alert-1", None), ("console-1", Some("oncall"))]);
    assert!(page.iter().all(|r| r.took_ms.is_none()), "not run yet");

    let claimed = b
        .claim_queued("me", 10, &limits(10, &[]), LONG)
        .await
        .unwrap();
    let console = claimed
        .iter()
        .find(|r| r.id == "console-1")
        .expect("claimed");
    assert_eq!(console.by.as_deref(), Some("oncall"));
    b.finish(outcome("console-1", "resolved")).await.unwrap();
    let run = b.get("console-1").await.unwrap().unwrap();
    assert_eq!(
        (run.run.by.as_deref(), run.run.took_ms),
        (Some("oncall"), Some(12.0))
    );
    let listed = b.list(10, Some("pb")).await.unwrap();
    let took: Vec<_> = listed.iter().map(|r| (r.id.as_str(), r.took_ms)).collect();
    assert_eq!(took, [("alert-1", None), ("console-1", Some(12.0))]);

    let id = b
        .enqueue(message("console-1", "ops", "done", "trigger"), None)
        .await
        .unwrap();
    let fresh = b.outbox_row(id).await.unwrap().unwrap();
    assert_eq!(fresh.attempted_at, None);
    let next = fresh.next_attempt_at.expect("a pending row's next attempt");
    assert!(humantime::parse_rfc3339(&next).is_ok(), "{next}");
    due(b.claim_head("ops", LONG).await.unwrap());
    let tried = b.outbox_row(id).await.unwrap().unwrap();
    let at = tried.attempted_at.expect("the attempt's time");
    assert!(humantime::parse_rfc3339(&at).is_ok(), "{at}");
    b.mark_delivered(id).await.unwrap();
    let delivered = b.outbox_row(id).await.unwrap().unwrap();
    assert_eq!(
        delivered.next_attempt_at, None,
        "nothing to try after delivery"
    );
    assert_eq!(delivered.attempted_at, Some(at));
}

pub(crate) async fn a_shared_secret_is_made_once_and_the_same_for_every_instance(s: Subject) {
    let b = &s.backend;
    let other = (s.open_again)().await.unwrap();
    // Two replicas asking at once: one candidate wins, both get it.
    let (one, two) = tokio::join!(
        b.shared_secret("console-csrf", "first"),
        other.shared_secret("console-csrf", "second")
    );
    let (one, two) = (one.unwrap(), two.unwrap());
    assert_eq!(one, two);
    assert!(one == "first" || one == "second", "{one}");
    // Later candidates change nothing; another name is another secret.
    assert_eq!(b.shared_secret("console-csrf", "third").await.unwrap(), one);
    assert_eq!(
        other.shared_secret("another", "fourth").await.unwrap(),
        "fourth"
    );
}
