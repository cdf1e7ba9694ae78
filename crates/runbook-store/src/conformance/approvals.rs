//! The contract's approvals: the first decision wins across instances, pending ones are
//! listed, and a question whose run ended while it waited ends `lost`, told once.

use super::*;
use crate::records::{ApprovalRecord, Decision};

fn question(id: &str, run_id: &str) -> ApprovalRecord {
    ApprovalRecord {
        id: id.into(),
        run_id: run_id.into(),
        playbook: "pb".into(),
        group: "oncall".into(),
        title: "Pause web-1?".into(),
        body: "it talks to 203.0.113.9".into(),
        actions: vec!["pause web-1".into()],
        state: "ignored".into(),
        asked_at: "2026-11-25T10:00:00.000Z".into(),
        expires_at: "2026-11-25T10:05:00.000Z".into(),
        answered_by: Some("ignored".into()),
        answered_via: None,
        answered_at: None,
        reason: None,
        messages: Vec::new(),
    }
}

fn decision(state: &'static str, by: &str) -> Decision {
    Decision {
        state,
        by: Some(by.into()),
        via: "cli".into(),
        reason: (state == "rejected").then(|| format!("{by} said no")),
        at: "2026-11-25T10:01:00.000Z".into(),
    }
}

pub(crate) async fn the_first_answer_to_an_approval_wins_across_instances(s: Subject) {
    let b = s.backend.clone();
    b.insert_running(queued("r1", "pb", 1), "me", LONG)
        .await
        .unwrap();
    b.open_approval(question("a1", "r1")).await.unwrap();
    let posted = vec![serde_json::json!({ "channel": "tg", "chat_id": "-100", "message_id": 7 })];
    b.set_approval_messages("a1", posted.clone()).await.unwrap();
    let stored = b.approval("a1").await.unwrap().unwrap();
    assert_eq!(stored.state, "pending");
    assert_eq!(
        stored.answered_by, None,
        "answer fields are not taken from the question"
    );
    assert_eq!(stored.messages, posted);
    assert_eq!(stored.actions, vec!["pause web-1".to_string()]);
    assert_eq!(b.approvals(None).await.unwrap().len(), 1);

    let replicas = [b.clone(), (s.open_again)().await.unwrap()];
    let answers: Vec<_> = (0..10)
        .map(|i| {
            let backend = replicas[i % 2].clone();
            let (state, by) = if i % 2 == 0 {
                ("approved", format!("alice{i}"))
            } else {
                ("rejected", format!("bob{i}"))
            };
            tokio::spawn(async move { backend.decide_approval("a1", decision(state, &by)).await })
        })
        .collect();
    let mut won = Vec::new();
    for answer in answers {
        if let Some(record) = answer.await.unwrap().unwrap() {
            won.push(record);
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    let stored = b.approval("a1").await.unwrap().unwrap();
    assert_eq!(stored, won[0]);
    assert!(matches!(stored.state.as_str(), "approved" | "rejected"));
    assert_eq!(stored.answered_via.as_deref(), Some("cli"));
    assert!(b.approvals(None).await.unwrap().is_empty(), "none pending");
    assert_eq!(b.approvals(Some("r1")).await.unwrap(), vec![stored]);
    assert!(
        b.decide_approval("nope", decision("approved", "x"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(b.approval("nope").await.unwrap().is_none());
}

pub(crate) async fn approvals_of_ended_runs_end_lost_once(s: Subject) {
    let b = s.backend.clone();
    for (run, approval) in [("r1", "a1"), ("r2", "a2")] {
        b.insert_running(queued(run, "pb", 1), "me", LONG)
            .await
            .unwrap();
        b.open_approval(question(approval, run)).await.unwrap();
    }
    assert!(b.orphaned_approvals("t").await.unwrap().is_empty());
    // r1's process died: its run is marked lost; r2 still waits.
    assert!(b.end_unfinished("r1", "lost", "lease ended").await.unwrap());
    let again = (s.open_again)().await.unwrap();
    let (first, second) = tokio::join!(
        b.orphaned_approvals("2026-11-25T10:02:00.000Z"),
        again.orphaned_approvals("2026-11-25T10:02:00.000Z")
    );
    let mut lost: Vec<_> = first.unwrap();
    lost.extend(second.unwrap());
    assert_eq!(lost.len(), 1, "told once: {lost:?}");
    assert_eq!(lost[0].id, "a1");
    assert_eq!(lost[0].state, "lost");
    assert_eq!(lost[0].answered_via.as_deref(), Some("rescuer"));
    let pending: Vec<_> = b.approvals(None).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, "a2");
}
