//! The contract's fleet: runs for a node are claimed by that node's agent only, share slots
//! with the servers' runs, and are written only while the agent holds them; nodes as last
//! heard from; runs no agent took in time end undeliverable and are told once.
//! A node's live events are held to the run's timeline cap in the transaction that
//! writes them.

use super::*;
use crate::Appended;
use crate::records::undeliverable_reason;

async fn node_claim(
    backend: &Arc<dyn Backend>,
    node: &str,
    runner: &str,
    max: usize,
    limits: &SlotLimits,
    lease: Duration,
) -> Vec<String> {
    let runs = backend
        .claim_for_node(node, runner, max, limits, lease)
        .await
        .unwrap();
    assert!(
        runs.iter().all(|r| r.node.as_deref() == Some(node)),
        "{runs:?}"
    );
    runs.into_iter().map(|r| r.id).collect()
}

pub(crate) async fn node_runs_are_claimed_by_their_node_only(s: Subject) {
    let replicas = [s.backend.clone(), (s.open_again)().await.unwrap()];
    let b = &s.backend;
    let wide = limits(100, &[]);
    b.admit(admit(for_node("a1", "node-a", 1))).await.unwrap();
    b.admit(admit(queued("s1", "pb", 2))).await.unwrap();
    b.admit(admit(for_node("b1", "node-b", 3))).await.unwrap();
    b.admit(admit(for_node("a2", "node-a", 4))).await.unwrap();
    // The servers (either replica) never take a node's runs.
    for replica in &replicas {
        let taken = claimed_ids(replica, "server", 10, &wide, LONG).await;
        assert!(taken.iter().all(|id| id == "s1"), "{taken:?}");
    }
    assert_eq!(status(b, "s1").await, "running");
    assert!(
        node_claim(b, "node-c", AGENT_A, 10, &wide, LONG)
            .await
            .is_empty()
    );
    assert_eq!(
        node_claim(&replicas[1], "node-a", AGENT_A, 10, &wide, LONG).await,
        ["a1", "a2"]
    );
    assert_eq!(
        node_claim(b, "node-b", AGENT_B, 10, &wide, LONG).await,
        ["b1"]
    );
    assert!(
        node_claim(b, "node-a", AGENT_A, 10, &wide, LONG)
            .await
            .is_empty()
    );
    // A CLI run for a node is recorded with it too; every reader gives the node back.
    let mut cli = for_node("c1", "node-b", 5);
    cli.trigger = "cli".into();
    b.insert_running(cli, AGENT_B, LONG).await.unwrap();
    let nodes: Vec<(String, Option<String>)> = b
        .list(10, None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.node))
        .collect();
    let node = |n: &str| Some(n.to_string());
    assert_eq!(
        nodes,
        [
            ("c1".into(), node("node-b")),
            ("a2".into(), node("node-a")),
            ("b1".into(), node("node-b")),
            ("s1".into(), None),
            ("a1".into(), node("node-a")),
        ]
    );
    let a1 = b.get("a1").await.unwrap().unwrap();
    assert_eq!(
        (a1.run.node.as_deref(), a1.run.status.as_str()),
        (Some("node-a"), "running")
    );
    assert_eq!(b.get("s1").await.unwrap().unwrap().run.node, None);
}

pub(crate) async fn slots_count_node_and_server_runs_together(s: Subject) {
    let b = &s.backend;
    let two = limits(2, &[]);
    b.admit(admit(for_node("a1", "node-a", 1))).await.unwrap();
    b.admit(admit(queued("s1", "pb", 2))).await.unwrap();
    b.admit(admit(for_node("b1", "node-b", 3))).await.unwrap();
    b.admit(admit(for_node("a2", "node-a", 4))).await.unwrap();
    b.admit(admit(queued("s2", "pb", 5))).await.unwrap();
    assert_eq!(
        node_claim(b, "node-a", AGENT_A, 10, &two, LONG).await,
        ["a1", "a2"]
    );
    // Both slots of pb are node-a's: neither a server nor node-b gets one.
    assert!(claimed_ids(b, "server", 10, &two, LONG).await.is_empty());
    assert!(
        node_claim(b, "node-b", AGENT_B, 10, &two, LONG)
            .await
            .is_empty()
    );
    // A node run's end frees its slot for a server run, and a server run's for a node.
    assert!(
        b.finish_held(outcome("a1", "resolved"), AGENT_A)
            .await
            .unwrap()
    );
    assert_eq!(claimed_ids(b, "server", 10, &two, LONG).await, ["s1"]);
    assert!(
        node_claim(b, "node-b", AGENT_B, 10, &two, LONG)
            .await
            .is_empty()
    );
    b.finish(outcome("s1", "resolved")).await.unwrap();
    assert_eq!(
        node_claim(b, "node-b", AGENT_B, 10, &two, LONG).await,
        ["b1"]
    );
    assert_eq!(b.run_counts().await.unwrap(), (1, 2));
}

pub(crate) async fn renew_held_answers_only_runs_still_held(s: Subject) {
    let b = &s.backend;
    let wide = limits(100, &[]);
    for (i, id) in ["kept", "dropped", "late"].into_iter().enumerate() {
        b.admit(admit(for_node(id, "node-a", i))).await.unwrap();
    }
    assert_eq!(
        node_claim(b, "node-a", AGENT_A, 1, &wide, BRIEF).await,
        ["kept"]
    );
    assert_eq!(
        node_claim(b, "node-a", AGENT_A, 1, &wide, SHORT).await,
        ["dropped"]
    );
    let ids = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // Another runner (node-a's agent restarted) holds none of them.
    assert!(
        b.renew_held(AGENT_A_AGAIN, &ids(&["kept", "dropped"]), LONG)
            .await
            .unwrap()
            .is_empty()
    );
    // "dropped" is not renewed: its lease ends and it is lost; it is absent from the answer.
    eventually("the unrenewed lease expires", || async move {
        let held = b.renew_held(AGENT_A, &ids(&["kept"]), BRIEF).await.unwrap();
        assert_eq!(held, ["kept"]);
        b.expire_leases().await.unwrap();
        status(b, "dropped").await == "lost"
    })
    .await;
    let asked = ids(&["dropped", "kept", "nowhere", "kept"]);
    assert_eq!(b.renew_held(AGENT_A, &asked, LONG).await.unwrap(), ["kept"]);
    // Renewed for LONG: expiry leaves it running.
    assert_eq!(b.expire_leases().await.unwrap(), 0);
    assert_eq!(status(b, "kept").await, "running");

    // A lease that ran out is not revived by a late renewal, even before the rescuer looked.
    assert_eq!(
        node_claim(b, "node-a", AGENT_A, 1, &wide, SHORT).await,
        ["late"]
    );
    tokio::time::sleep(SHORT + Duration::from_millis(200)).await;
    assert!(
        b.renew_held(AGENT_A, &ids(&["late"]), LONG)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(status(b, "late").await, "running");
    assert_eq!(b.expire_leases().await.unwrap(), 1);
    assert_eq!(status(b, "late").await, "lost");

    // A run that ended is not held either.
    assert!(
        b.finish_held(outcome("kept", "resolved"), AGENT_A)
            .await
            .unwrap()
    );
    assert!(
        b.renew_held(AGENT_A, &ids(&["kept"]), LONG)
            .await
            .unwrap()
            .is_empty()
    );
}

pub(crate) async fn append_events_only_while_held(s: Subject) {
    let b = &s.backend;
    let wide = limits(100, &[]);
    b.admit(admit(for_node("a1", "node-a", 1))).await.unwrap();
    // Not claimed yet: nobody holds it.
    assert_eq!(
        b.append_events("a1", AGENT_A, 0, live_events(&["early"]), NO_CAP)
            .await
            .unwrap(),
        Appended::NotHeld
    );
    assert_eq!(
        node_claim(b, "node-a", AGENT_A, 1, &wide, LONG).await,
        ["a1"]
    );
    assert_eq!(
        b.append_events("a1", AGENT_A, 0, live_events(&["e0", "e1"]), NO_CAP)
            .await
            .unwrap(),
        Appended::Stored
    );
    assert_eq!(timeline(b, "a1").await, ["e0", "e1"]);
    // A retry from 1 replaces event 1 and adds event 2.
    assert_eq!(
        b.append_events("a1", AGENT_A, 1, live_events(&["e1", "e2"]), NO_CAP)
            .await
            .unwrap(),
        Appended::Stored
    );
    assert_eq!(timeline(b, "a1").await, ["e0", "e1", "e2"]);
    // Later numbers first still read back in number order.
    assert_eq!(
        b.append_events("a1", AGENT_A, 4, live_events(&["e4"]), NO_CAP)
            .await
            .unwrap(),
        Appended::Stored
    );
    assert_eq!(
        b.append_events("a1", AGENT_A, 3, live_events(&["e3"]), NO_CAP)
            .await
            .unwrap(),
        Appended::Stored
    );
    assert_eq!(timeline(b, "a1").await, ["e0", "e1", "e2", "e3", "e4"]);
    // A stale runner (node-a's agent restarted) writes nothing, not even past the end.
    assert_eq!(
        b.append_events(
            "a1",
            AGENT_A_AGAIN,
            1,
            live_events(&["stale", "stale"]),
            NO_CAP
        )
        .await
        .unwrap(),
        Appended::NotHeld
    );
    assert_eq!(
        b.append_events("a1", AGENT_B, 9, live_events(&["other"]), NO_CAP)
            .await
            .unwrap(),
        Appended::NotHeld
    );
    assert_eq!(timeline(b, "a1").await, ["e0", "e1", "e2", "e3", "e4"]);
    assert_eq!(status(b, "a1").await, "running");

    // A run lost after its lease ended takes no more events from its old holder.
    b.admit(admit(for_node("a2", "node-a", 2))).await.unwrap();
    assert_eq!(
        node_claim(b, "node-a", AGENT_A, 1, &wide, SHORT).await,
        ["a2"]
    );
    assert_eq!(
        b.append_events("a2", AGENT_A, 0, live_events(&["before"]), NO_CAP)
            .await
            .unwrap(),
        Appended::Stored
    );
    eventually("a2 is lost", || async move {
        b.expire_leases().await.unwrap();
        status(b, "a2").await == "lost"
    })
    .await;
    assert_eq!(
        b.append_events("a2", AGENT_A, 1, live_events(&["after"]), NO_CAP)
            .await
            .unwrap(),
        Appended::NotHeld
    );
    assert_eq!(timeline(b, "a2").await, ["before"]);
}

pub(crate) async fn finish_held_by_the_holder_replaces_live_events(s: Subject) {
    let b = &s.backend;
    let one = limits(1, &[]);
    b.admit(admit(for_node("a1", "node-a", 1))).await.unwrap();
    b.admit(admit(for_node("a2", "node-a", 2))).await.unwrap();
    assert_eq!(
        node_claim(b, "node-a", AGENT_A, 10, &one, LONG).await,
        ["a1"]
    );
    let live = live_events(&["live0", "live1", "live2"]);
    assert_eq!(
        b.append_events("a1", AGENT_A, 0, live, NO_CAP)
            .await
            .unwrap(),
        Appended::Stored
    );

    // A stale runner is refused and writes nothing: the run, its events, its slot stay.
    assert!(
        !b.finish_held(outcome("a1", "resolved"), AGENT_A_AGAIN)
            .await
            .unwrap()
    );
    let a1 = b.get("a1").await.unwrap().unwrap();
    assert_eq!(a1.run.status, "running");
    assert_eq!((a1.run.ended_at, a1.artifacts.len()), (None, 0));
    assert_eq!(timeline(b, "a1").await, ["live0", "live1", "live2"]);
    assert!(
        node_claim(b, "node-a", AGENT_A, 10, &one, LONG)
            .await
            .is_empty()
    );

    // The holder's outcome is written as `finish` writes it; its timeline replaces the live one.
    assert!(
        b.finish_held(outcome("a1", "resolved"), AGENT_A)
            .await
            .unwrap()
    );
    let a1 = b.get("a1").await.unwrap().unwrap();
    assert_eq!(
        (a1.run.status.as_str(), a1.run.summary.as_str()),
        ("resolved", "a1 resolved")
    );
    assert_eq!(a1.run.ended_at.as_deref(), Some("2026-11-25T10:00:02.000Z"));
    assert_eq!(a1.actions, serde_json::json!(["restarted bot"]));
    assert_eq!(a1.grants, Some(serde_json::json!({ "docker": ["bot"] })));
    assert_eq!(
        a1.artifacts
            .iter()
            .map(|a| a.text.as_str())
            .collect::<Vec<_>>(),
        ["hello"]
    );
    assert_eq!(timeline(b, "a1").await, ["looking", "restarted"]);
    // Once: a second outcome is refused and changes nothing.
    assert!(
        !b.finish_held(outcome("a1", "failed"), AGENT_A)
            .await
            .unwrap()
    );
    assert_eq!(status(b, "a1").await, "resolved");
    // Its slot is free.
    assert_eq!(
        node_claim(b, "node-a", AGENT_A, 10, &one, SHORT).await,
        ["a2"]
    );

    // A lost run's late outcome from its old holder is refused.
    eventually("a2 is lost", || async move {
        b.expire_leases().await.unwrap();
        status(b, "a2").await == "lost"
    })
    .await;
    assert!(
        !b.finish_held(outcome("a2", "resolved"), AGENT_A)
            .await
            .unwrap()
    );
    let a2 = b.get("a2").await.unwrap().unwrap();
    assert_eq!((a2.run.status.as_str(), a2.artifacts.len()), ("lost", 0));
}

pub(crate) async fn nodes_are_listed_with_their_runs(s: Subject) {
    let replicas = [s.backend.clone(), (s.open_again)().await.unwrap()];
    let b = &s.backend;
    assert!(b.nodes().await.unwrap().is_empty());
    b.node_seen("node-b", "session-b1", "1.0.0").await.unwrap();
    replicas[1]
        .node_seen("node-a", "session-a1", "1.0.0")
        .await
        .unwrap();
    for (i, (id, node)) in [
        ("a1", "node-a"),
        ("a2", "node-a"),
        ("b1", "node-b"),
        ("c1", "node-c"),
    ]
    .into_iter()
    .enumerate()
    {
        b.admit(admit(for_node(id, node, i))).await.unwrap();
    }
    b.admit(admit(queued("s1", "pb", 9))).await.unwrap();
    assert_eq!(
        claimed_ids(b, "server", 10, &limits(100, &[]), LONG).await,
        ["s1"]
    );
    assert_eq!(
        node_claim(b, "node-a", AGENT_A, 1, &limits(100, &[]), LONG).await,
        ["a1"]
    );
    let nodes = b.nodes().await.unwrap();
    // Never-seen node-c is not listed; the server's run counts for no node.
    let counts: Vec<_> = nodes
        .iter()
        .map(|n| (n.name.as_str(), n.session.as_str(), n.in_flight, n.queued))
        .collect();
    assert_eq!(
        counts,
        [
            ("node-a", "session-a1", 1, 1),
            ("node-b", "session-b1", 0, 1)
        ]
    );
    for node in &nodes {
        assert!(
            (0.0..5.0).contains(&node.seen_secs_ago),
            "{}",
            node.seen_secs_ago
        );
        humantime::parse_rfc3339(&node.last_seen).unwrap();
        humantime::parse_rfc3339(&node.connected_at).unwrap();
    }
    let first = nodes[0].clone();

    // The same session heard again: a new version and last_seen, the same connected_at.
    tokio::time::sleep(Duration::from_millis(20)).await;
    b.node_seen("node-a", "session-a1", "1.0.1").await.unwrap();
    let again = b.nodes().await.unwrap()[0].clone();
    assert_eq!(
        (again.version.as_str(), again.connected_at.as_str()),
        ("1.0.1", first.connected_at.as_str())
    );
    assert!(again.last_seen > first.last_seen, "{again:?} {first:?}");
    // A new session (the agent restarted) is the node's from now, connected now.
    tokio::time::sleep(Duration::from_millis(20)).await;
    replicas[1]
        .node_seen("node-a", "session-a2", "1.0.1")
        .await
        .unwrap();
    let restarted = b.nodes().await.unwrap()[0].clone();
    assert_eq!(restarted.session, "session-a2");
    assert!(
        restarted.connected_at > first.connected_at,
        "{restarted:?} {first:?}"
    );
    assert_eq!(b.nodes().await.unwrap().len(), 2);
}

pub(crate) async fn undelivered_node_runs_end_after_the_wait_and_are_told_once(s: Subject) {
    let replicas = [s.backend.clone(), (s.open_again)().await.unwrap()];
    let b = &s.backend;
    let wide = limits(100, &[]);
    let wait = Duration::from_secs(1);
    b.admit(admit(for_node("old", "node-a", 1))).await.unwrap();
    b.admit(admit(for_node("taken", "node-a", 2)))
        .await
        .unwrap();
    b.admit(admit(queued("server", "pb", 3))).await.unwrap();
    assert_eq!(
        node_claim(b, "node-a", AGENT_A, 1, &wide, LONG).await,
        ["old"]
    );
    b.admit(admit(for_node("old2", "node-b", 4))).await.unwrap();
    assert_eq!(b.expire_undelivered(LONG).await.unwrap(), 0);
    tokio::time::sleep(wait + Duration::from_millis(100)).await;
    b.admit(admit(for_node("young", "node-b", 5)))
        .await
        .unwrap();
    // Only node runs still queued and older than the wait; the server's queued run and the
    // running one are untouched.
    assert_eq!(replicas[1].expire_undelivered(wait).await.unwrap(), 2);
    assert_eq!(status(b, "old").await, "running");
    assert_eq!(status(b, "server").await, "queued");
    assert_eq!(status(b, "young").await, "queued");
    for (id, node) in [("taken", "node-a"), ("old2", "node-b")] {
        let run = b.get(id).await.unwrap().unwrap();
        let reason = undeliverable_reason(node, wait);
        assert_eq!(run.run.status, "undeliverable");
        assert_eq!(run.run.summary, format!("run undeliverable: {reason}"));
        assert_eq!(run.reason, Some(reason));
        humantime::parse_rfc3339(run.run.ended_at.as_deref().unwrap()).unwrap();
    }
    // An undeliverable run is never claimed afterwards, by its node or a server.
    assert!(
        node_claim(b, "node-b", AGENT_B, 10, &wide, LONG)
            .await
            .len()
            == 1
    );
    assert_eq!(status(b, "young").await, "running");
    assert!(claimed_ids(b, "srv", 10, &wide, LONG).await == ["server"]);
    assert_eq!(b.expire_undelivered(Duration::ZERO).await.unwrap(), 0);

    // Told once, across instances, oldest first; never mixed with lost runs.
    let (one, two) = tokio::join!(
        replicas[0].take_undeliverable_unnotified(10),
        replicas[1].take_undeliverable_unnotified(10)
    );
    let mut told: Vec<_> = one.unwrap().into_iter().chain(two.unwrap()).collect();
    told.sort_by(|a, b| a.started_at.cmp(&b.started_at));
    let told: Vec<_> = told
        .iter()
        .map(|r| (r.id.as_str(), r.node.as_deref()))
        .collect();
    assert_eq!(told, [("taken", Some("node-a")), ("old2", Some("node-b"))]);
    assert!(
        b.take_undeliverable_unnotified(10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(b.take_lost_unnotified(10).await.unwrap().is_empty());
    // And a lost node run is told as lost, not as undeliverable.
    b.admit(admit(for_node("gone", "node-c", 6))).await.unwrap();
    assert_eq!(
        node_claim(b, "node-c", "agent/node-c/x", 1, &wide, SHORT).await,
        ["gone"]
    );
    eventually("gone is lost", || async move {
        b.expire_leases().await.unwrap();
        status(b, "gone").await == "lost"
    })
    .await;
    assert!(
        b.take_undeliverable_unnotified(10)
            .await
            .unwrap()
            .is_empty()
    );
    let lost = b.take_lost_unnotified(10).await.unwrap();
    assert_eq!(
        lost.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["gone"]
    );
}

pub(crate) async fn undeliverable_runs_free_their_dedup_and_cooldown_keys(s: Subject) {
    let b = &s.backend;
    let key = |id: &str, seq| deduped(for_node(id, "node-a", seq), "k", LONG);
    assert_eq!(b.admit(key("d1", 1)).await.unwrap(), Admitted::Started);
    assert_eq!(
        b.admit(key("d2", 2)).await.unwrap(),
        Admitted::Deduplicated("d1".into())
    );
    let cool = |id: &str, seq| cooled(for_node(id, "node-b", seq), "fp", LONG);
    assert_eq!(b.admit(cool("c1", 3)).await.unwrap(), Admitted::Started);
    assert_eq!(b.admit(cool("c2", 4)).await.unwrap(), Admitted::Cooldown);
    assert_eq!(b.expire_undelivered(Duration::ZERO).await.unwrap(), 2);
    assert_eq!(status(b, "d1").await, "undeliverable");
    // The alert's next delivery starts a new run (still for its node).
    assert_eq!(b.admit(key("d3", 5)).await.unwrap(), Admitted::Started);
    assert_eq!(b.admit(cool("c3", 6)).await.unwrap(), Admitted::Started);
    assert_eq!(
        b.get("d3").await.unwrap().unwrap().run.node.as_deref(),
        Some("node-a")
    );
    assert_eq!(
        b.admit(key("d4", 7)).await.unwrap(),
        Admitted::Deduplicated("d3".into())
    );
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
