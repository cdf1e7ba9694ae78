//! The contract's cancel: a queued run (or one on a fleet node) ends `cancelled` at once; a
//! running one keeps running with the request recorded for its runner to find; the first
//! request wins; an ended or unknown run is refused.

use super::*;
use crate::records::{Cancelled, RunStatus};

fn messages(run: &crate::records::StoredRun) -> Vec<String> {
    run.timeline
        .iter()
        .map(|e| {
            serde_json::to_value(e).unwrap()["message"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

pub(crate) async fn a_cancel_ends_queued_runs_and_asks_running_ones_once(s: Subject) {
    let b = &s.backend;
    let other = (s.open_again)().await.unwrap();
    let one = limits(1, &[]);

    // Queued: ended now, with who and a timeline line; it is never claimed.
    b.admit(admit(queued("q", "pb", 1))).await.unwrap();
    assert_eq!(
        other.cancel_run("q", "cli:bob").await.unwrap(),
        Cancelled::Ended {
            playbook: "pb".into()
        }
    );
    let q = b.get("q").await.unwrap().unwrap();
    assert_eq!(q.run.status, "cancelled");
    assert_eq!(q.run.summary, "cancelled by cli:bob");
    assert_eq!(q.reason.as_deref(), Some("cancelled by cli:bob"));
    assert!(q.run.ended_at.is_some());
    assert_eq!(messages(&q), ["cancelled by cli:bob"]);
    assert!(claimed_ids(b, "me", 10, &one, LONG).await.is_empty());
    assert_eq!(b.run_counts().await.unwrap(), (0, 0));
    assert_eq!(
        b.cancel_run("q", "cli:bob").await.unwrap(),
        Cancelled::Over(RunStatus::Cancelled)
    );

    // Running here: the request is recorded for its runner only, on every instance.
    b.admit(admit(queued("r", "pb", 2))).await.unwrap();
    assert_eq!(claimed_ids(b, "me", 10, &one, LONG).await, ["r"]);
    assert!(b.cancel_requests("me").await.unwrap().is_empty());
    assert_eq!(
        other.cancel_run("r", "console:alice").await.unwrap(),
        Cancelled::Asked {
            playbook: "pb".into()
        }
    );
    assert_eq!(status(b, "r").await, "running");
    assert_eq!(
        b.cancel_requests("me").await.unwrap(),
        [("r".to_string(), "console:alice".to_string())]
    );
    assert!(b.cancel_requests("someone-else").await.unwrap().is_empty());
    assert_eq!(
        b.cancel_run("r", "api:token").await.unwrap(),
        Cancelled::AlreadyAsked {
            by: "console:alice".into()
        }
    );
    // Its runner ends it; the request is answered.
    b.finish(outcome("r", "cancelled")).await.unwrap();
    assert_eq!(status(b, "r").await, "cancelled");
    assert!(b.cancel_requests("me").await.unwrap().is_empty());
    assert_eq!(
        b.cancel_run("r", "api:token").await.unwrap(),
        Cancelled::Over(RunStatus::Cancelled)
    );

    // Ended otherwise, or unknown.
    b.admit(admit(queued("done", "pb", 3))).await.unwrap();
    assert_eq!(claimed_ids(b, "me", 10, &one, LONG).await, ["done"]);
    b.finish(outcome("done", "resolved")).await.unwrap();
    assert_eq!(
        b.cancel_run("done", "cli:bob").await.unwrap(),
        Cancelled::Over(RunStatus::Resolved)
    );
    assert_eq!(
        b.cancel_run("nope", "cli:bob").await.unwrap(),
        Cancelled::NotFound
    );
}

pub(crate) async fn a_cancelled_node_run_ends_and_its_agent_no_longer_holds_it(s: Subject) {
    let b = &s.backend;
    let one = limits(1, &[]);
    let agent = "agent/node-a/cancel";
    let run = QueuedRun {
        node: Some("node-a".into()),
        ..queued("n", "pb", 1)
    };
    b.admit(admit(run)).await.unwrap();
    let claimed = b
        .claim_for_node("node-a", agent, 1, &one, LONG)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let live = outcome("n", "resolved").events;
    assert_eq!(
        b.append_events("n", agent, 0, live[..1].to_vec(), NO_CAP)
            .await
            .unwrap(),
        crate::Appended::Stored
    );
    assert_eq!(
        b.cancel_run("n", "api:ops").await.unwrap(),
        Cancelled::Ended {
            playbook: "pb".into()
        }
    );
    let n = b.get("n").await.unwrap().unwrap();
    assert_eq!(n.run.status, "cancelled");
    // The line goes after what the agent had sent.
    assert_eq!(messages(&n), ["looking", "cancelled by api:ops"]);
    // The agent's next heartbeat and upload are refused: it stops the run.
    assert!(
        b.renew_held(agent, &["n".to_string()], LONG)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        b.append_events("n", agent, 1, live[1..].to_vec(), NO_CAP)
            .await
            .unwrap(),
        crate::Appended::NotHeld
    );
    assert!(
        !b.finish_held(outcome("n", "resolved"), agent)
            .await
            .unwrap()
    );
    assert_eq!(status(b, "n").await, "cancelled");
    // Its slot is free for the next run of the playbook.
    b.admit(admit(queued("after", "pb", 2))).await.unwrap();
    assert_eq!(claimed_ids(b, "me", 10, &one, LONG).await, ["after"]);
}
