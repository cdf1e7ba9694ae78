//! The contract's live reads: a stream's cursor reads only the events after it, bounded, in
//! number order, with the status of the same moment.

use super::*;

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
