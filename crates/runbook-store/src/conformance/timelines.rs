//! The `Timelines` role: runs, alerts and deliveries read back; the console's runs page with
//! its filters and keyset pages; a live stream's cursor reads only the events after it,
//! bounded, in number order, with the status of the same moment.

use super::*;
use crate::RunFilter;

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

fn event(message: &str) -> String {
    serde_json::json!({
        "at": "2026-11-25T10:00:01.000Z", "offset_ms": 1.0,
        "event": "log", "level": "info", "message": message,
    })
    .to_string()
}

fn messages(page: &crate::EventsPage) -> Vec<(usize, String)> {
    page.events
        .iter()
        .map(|(seq, text)| {
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            (*seq, value["message"].as_str().unwrap().to_string())
        })
        .collect()
}

pub(crate) async fn events_after_reads_from_the_cursor_bounded(s: Subject) {
    let b = &s.backend;
    assert_eq!(b.events_after("nope", 0, 10).await.unwrap(), None);
    b.admit(admit(queued("r1", "pb", 1))).await.unwrap();
    let page = b.events_after("r1", 0, 10).await.unwrap().unwrap();
    assert_eq!((page.status.as_str(), page.events.len()), ("queued", 0));
    assert!(page.live());
    let claimed = b
        .claim_queued(crate::this_runner(), 1, &limits(10, &[]), LONG)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let runner = crate::this_runner();
    let all: Vec<String> = (0..7).map(|i| event(&format!("e{i}"))).collect();
    assert_eq!(
        b.append_events("r1", runner, 0, all, usize::MAX)
            .await
            .unwrap(),
        crate::Appended::Stored
    );
    // From the cursor, at most `limit`, in order; past the end, nothing.
    let page = b.events_after("r1", 2, 3).await.unwrap().unwrap();
    assert_eq!(page.status, "running");
    assert_eq!(
        messages(&page),
        [(2, "e2".into()), (3, "e3".into()), (4, "e4".into())]
    );
    let page = b.events_after("r1", 5, 100).await.unwrap().unwrap();
    assert_eq!(messages(&page), [(5, "e5".into()), (6, "e6".into())]);
    assert!(
        b.events_after("r1", 7, 100)
            .await
            .unwrap()
            .unwrap()
            .events
            .is_empty()
    );
    assert!(
        b.events_after("r1", usize::MAX, 100)
            .await
            .unwrap()
            .unwrap()
            .events
            .is_empty()
    );
    // Another run's events are not this one's.
    b.admit(admit(queued("r2", "pb", 2))).await.unwrap();
    assert!(
        b.events_after("r2", 0, 100)
            .await
            .unwrap()
            .unwrap()
            .events
            .is_empty()
    );

    // Ended: the status says so and the final timeline is what is read.
    b.finish(outcome("r1", "resolved")).await.unwrap();
    let page = b.events_after("r1", 1, 100).await.unwrap().unwrap();
    assert_eq!(page.status, "resolved");
    assert!(!page.live());
    assert_eq!(messages(&page), [(1, "restarted".into())]);
}
