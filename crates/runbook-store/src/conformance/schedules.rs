//! The contract's schedule firings: one per key across instances, skip while the schedule's
//! run is going, read back newest first with their runs' status.

use super::*;
use crate::records::{Fired, Firing};

fn firing(schedule: &str, at_ms: i64, run_id: &str) -> Firing {
    let mut run = queued(run_id, "pb", 1);
    run.trigger = "schedule".into();
    run.alert = None;
    Firing {
        schedule: schedule.into(),
        at_ms,
        catch_up: false,
        run,
        gate: Default::default(),
    }
}

pub(crate) async fn each_firing_is_recorded_and_run_once_across_instances(s: Subject) {
    let replicas = [s.backend.clone(), (s.open_again)().await.unwrap()];
    let tries: Vec<_> = (0..40)
        .map(|i| {
            let backend = replicas[i % 2].clone();
            tokio::spawn(async move {
                backend
                    .fire(firing("tick", 1_000, &format!("r{i}")))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut started = 0;
    for t in tries {
        match t.await.unwrap() {
            Fired::Started => started += 1,
            Fired::AlreadyFired => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(started, 1);
    assert_eq!(s.backend.list(100, None).await.unwrap().len(), 1);
    assert_eq!(s.backend.run_counts().await.unwrap(), (1, 0));
    // Another schedule's firing at the same time is its own.
    assert_eq!(
        s.backend.fire(firing("other", 1_000, "o1")).await.unwrap(),
        Fired::Started
    );
}

pub(crate) async fn a_firing_while_the_schedules_run_is_going_is_skipped_and_recorded(s: Subject) {
    let b = &s.backend;
    let limits = SlotLimits {
        default: 4,
        per_playbook: Default::default(),
    };
    assert_eq!(
        b.fire(firing("slow", 1_000, "a")).await.unwrap(),
        Fired::Started
    );
    // Queued still: skipped.
    assert_eq!(
        b.fire(firing("slow", 2_000, "b")).await.unwrap(),
        Fired::Skipped("a".into())
    );
    // Running: skipped.
    assert_eq!(
        b.claim_queued("me", 4, &limits, LONG).await.unwrap().len(),
        1
    );
    assert_eq!(
        b.fire(firing("slow", 3_000, "c")).await.unwrap(),
        Fired::Skipped("a".into())
    );
    // Ended: the next firing runs.
    b.finish(outcome("a", "resolved")).await.unwrap();
    assert_eq!(
        b.fire(firing("slow", 4_000, "d")).await.unwrap(),
        Fired::Started
    );
    // A skipped firing stays recorded: firing it again is no run.
    assert_eq!(
        b.fire(firing("slow", 2_000, "e")).await.unwrap(),
        Fired::AlreadyFired
    );

    let firings = b.firings("slow", 10).await.unwrap();
    let seen: Vec<_> = firings
        .iter()
        .map(|f| {
            (
                f.at_ms,
                f.outcome.as_str(),
                f.run_id.as_deref(),
                f.skipped_for.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (4_000, "queued", Some("d"), None),
            (3_000, "skipped", None, Some("a")),
            (2_000, "skipped", None, Some("a")),
            (1_000, "resolved", Some("a"), None),
        ]
    );
    assert_eq!(firings[0].at, "1970-01-01T00:00:04.000Z");
    assert_eq!(b.firings("slow", 1).await.unwrap().len(), 1);
    assert!(b.firings("none", 10).await.unwrap().is_empty());
}
