//! The contract's bounds on what waits and what a node writes: queued runs counted by who
//! waits for them (so one class cannot fill another's bound), and a node's live events held
//! to the run's timeline cap in the transaction that writes them.

use super::fleet::{AGENT_A, for_node, live_event, live_events, timeline};
use super::*;
use crate::Appended;

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

pub(crate) async fn live_events_stop_at_the_timeline_cap(s: Subject) {
    let b = &s.backend;
    let wide = limits(100, &[]);
    b.admit(admit(for_node("a1", "node-a", 1))).await.unwrap();
    b.claim_for_node("node-a", AGENT_A, 1, &wide, LONG)
        .await
        .unwrap();
    let one = live_event("e0").len();
    // Each event is checked against the cap before it is added, as a local timeline's are.
    let cap = 2 * one;
    assert_eq!(
        b.append_events("a1", AGENT_A, 0, live_events(&["e0", "e1"]), cap)
            .await
            .unwrap(),
        Appended::Stored
    );
    // A retry of the same numbers replaces them: it is not counted twice.
    assert_eq!(
        b.append_events("a1", AGENT_A, 0, live_events(&["e0", "e1"]), cap)
            .await
            .unwrap(),
        Appended::Stored
    );
    let full = b
        .append_events("a1", AGENT_A, 2, live_events(&["e2", "e3", "e4"]), cap - 1)
        .await
        .unwrap();
    let Appended::Full(why) = full else {
        panic!("not full: {full:?}")
    };
    assert!(
        why.contains(&format!("more than {} bytes of timeline", cap - 1)),
        "{why}"
    );
    assert_eq!(timeline(b, "a1").await, ["e0", "e1"]);
    // Within the cap, the next events fit (the cap is the run's, over every upload).
    assert_eq!(
        b.append_events("a1", AGENT_A, 2, live_events(&["e2"]), 10 * one)
            .await
            .unwrap(),
        Appended::Stored
    );
    assert_eq!(timeline(b, "a1").await, ["e0", "e1", "e2"]);
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
