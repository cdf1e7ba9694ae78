//! The `Budgets` role: a budget's last use goes to one caller across instances, a spent
//! budget says when it frees up and frees when its window passes, several budgets are taken
//! all or nothing, and the freeze switch is the same for every instance.

use super::*;
use crate::backend::{BudgetAnswer, BudgetTake, Freeze};

fn take(budget: &str, key: &str, max: u32, within: Duration) -> BudgetTake {
    BudgetTake {
        budget: budget.into(),
        key: key.into(),
        max,
        within,
    }
}

pub(crate) async fn a_budget_gives_its_uses_once_across_instances(s: Subject) {
    let replicas = [s.backend.clone(), (s.open_again)().await.unwrap()];
    let restarts = take("restarts", "bot", 3, LONG);
    let takes: Vec<_> = (0..24)
        .map(|i| {
            let backend = replicas[i % 2].clone();
            let restarts = restarts.clone();
            tokio::spawn(async move {
                backend
                    .take_budgets(&[restarts], &format!("run-{i}"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut taken = 0;
    for t in takes {
        match t.await.unwrap() {
            BudgetAnswer::Taken => taken += 1,
            BudgetAnswer::Over {
                budget,
                key,
                used,
                frees_in,
            } => {
                assert_eq!(
                    (budget.as_str(), key.as_str(), used),
                    ("restarts", "bot", 3)
                );
                assert!(frees_in <= LONG && frees_in > LONG / 2, "{frees_in:?}");
            }
        }
    }
    assert_eq!(taken, 3);
    // Another key, another budget name: their own counts.
    let b = &s.backend;
    let other = take("restarts", "web", 3, LONG);
    assert_eq!(
        b.take_budgets(&[other], "r").await.unwrap(),
        BudgetAnswer::Taken
    );
    let uses = replicas[1]
        .budget_uses(&[("restarts".into(), LONG), ("none".into(), LONG)])
        .await
        .unwrap();
    let summary: Vec<_> = uses.iter().map(|u| (u.key.as_str(), u.used)).collect();
    assert_eq!(summary, [("bot", 3), ("web", 1)]);
    assert!(
        uses.iter()
            .all(|u| u.budget == "restarts" && u.frees_in <= LONG)
    );
}

pub(crate) async fn a_spent_budget_frees_when_its_window_passes(s: Subject) {
    let b = &s.backend;
    let brief = take("stops", "global", 1, BRIEF);
    assert_eq!(
        b.take_budgets(std::slice::from_ref(&brief), "r1")
            .await
            .unwrap(),
        BudgetAnswer::Taken
    );
    assert!(matches!(
        b.take_budgets(std::slice::from_ref(&brief), "r2")
            .await
            .unwrap(),
        BudgetAnswer::Over { used: 1, .. }
    ));
    eventually("the window passes", || {
        let brief = brief.clone();
        async move { b.take_budgets(&[brief], "r3").await.unwrap() == BudgetAnswer::Taken }
    })
    .await;
}

pub(crate) async fn several_budgets_are_taken_all_or_nothing(s: Subject) {
    let b = &s.backend;
    let wide = take("per-node", "node-a", 5, LONG);
    let narrow = take("per-container", "bot", 1, LONG);
    assert_eq!(
        b.take_budgets(&[wide.clone(), narrow.clone()], "r1")
            .await
            .unwrap(),
        BudgetAnswer::Taken
    );
    match b.take_budgets(&[wide.clone(), narrow], "r2").await.unwrap() {
        BudgetAnswer::Over { budget, .. } => assert_eq!(budget, "per-container"),
        other => panic!("expected over budget, got {other:?}"),
    }
    // The refused take counted nothing in the budget that had room.
    let uses = b.budget_uses(&[("per-node".into(), LONG)]).await.unwrap();
    assert_eq!(uses.len(), 1);
    assert_eq!(uses[0].used, 1);
    assert_eq!(
        b.take_budgets(&[], "r3").await.unwrap(),
        BudgetAnswer::Taken
    );
}

pub(crate) async fn the_freeze_switch_is_one_for_every_instance(s: Subject) {
    let b = &s.backend;
    let other = (s.open_again)().await.unwrap();
    assert_eq!(other.freeze_state().await.unwrap(), None);
    let freeze = Freeze {
        by: "alice".into(),
        reason: "db migration\0 tonight".into(),
        since: "2026-12-07T04:00:00.000Z".into(),
    };
    b.set_freeze(Some(freeze.clone())).await.unwrap();
    let seen = other.freeze_state().await.unwrap().expect("frozen");
    assert_eq!(
        (seen.by.as_str(), seen.since.as_str()),
        ("alice", freeze.since.as_str())
    );
    assert!(seen.reason.starts_with("db migration"), "{}", seen.reason);
    // A second freeze replaces the reason; unfreezing on any instance ends it for all.
    let again = Freeze {
        reason: "still migrating".into(),
        ..freeze
    };
    other.set_freeze(Some(again)).await.unwrap();
    assert_eq!(
        b.freeze_state().await.unwrap().unwrap().reason,
        "still migrating"
    );
    other.set_freeze(None).await.unwrap();
    assert_eq!(b.freeze_state().await.unwrap(), None);
    b.set_freeze(None).await.unwrap();
}
