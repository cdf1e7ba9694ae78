use super::*;

fn action(playbook: &str, container: &str) -> Action {
    Action {
        run_id: "run-1".into(),
        playbook: playbook.into(),
        action: "docker.restart".into(),
        container: Some(container.into()),
    }
}

fn safety(store: &Arc<Store>, budgets: Vec<BudgetConfig>) -> Safety {
    Safety::new(budgets, "node-a".into(), Decider::Store(store.clone()))
}

#[tokio::test]
async fn the_fourth_restart_of_a_container_within_the_hour_is_over_budget() {
    let store = crate::store::open_in_memory().unwrap();
    let rails = safety(&store, effective(&[]).unwrap());
    for _ in 0..3 {
        assert_eq!(rails.gate(&action("bot-down", "bot")).await, Verdict::Go);
    }
    match rails.gate(&action("web-down", "bot")).await {
        Verdict::OverBudget {
            budget,
            message,
            key,
            frees_in_secs,
        } => {
            assert_eq!(budget, "restarts");
            assert_eq!(key, "bot");
            // The window is an hour: the first use frees up in just under it.
            let secs = frees_in_secs.unwrap();
            assert!((3500..=3600).contains(&secs), "{secs}");
            assert!(
                message.starts_with(
                    "over budget restarts (3 per container within 1h): 3 used for bot; frees up in "
                ),
                "{message}"
            );
        }
        other => panic!("expected over budget, got {other:?}"),
    }
    // Another container has its own count; a playbook the default budget does not name
    // counts nothing.
    assert_eq!(rails.gate(&action("bot-down", "web")).await, Verdict::Go);
    for _ in 0..5 {
        assert_eq!(rails.gate(&action("my-playbook", "bot")).await, Verdict::Go);
    }
    let uses = store
        .budget_uses(&[("restarts".into(), Duration::from_secs(3600))])
        .await
        .unwrap();
    assert_eq!(
        uses.iter()
            .map(|u| (u.key.as_str(), u.used))
            .collect::<Vec<_>>(),
        [("bot", 3), ("web", 1)]
    );
}

#[tokio::test]
async fn budgets_key_on_what_they_count_per() {
    let store = crate::store::open_in_memory().unwrap();
    let budget = |name: &str, per: Per| BudgetConfig {
        name: name.into(),
        actions: vec!["docker.restart".into()],
        per,
        max: 1,
        within: Duration::from_secs(60),
        playbooks: Vec::new(),
    };
    let rails = safety(&store, vec![budget("per-node", Per::Node)]);
    let takes = rails.takes(&action("p", "bot"), "node-a");
    assert_eq!(takes[0].key, "node-a");
    let rails = safety(&store, vec![budget("per-playbook", Per::Playbook)]);
    assert_eq!(rails.takes(&action("p", "bot"), "n")[0].key, "p");
    let rails = safety(&store, vec![budget("global", Per::Global)]);
    assert_eq!(rails.gate(&action("p", "bot")).await, Verdict::Go);
    assert!(matches!(
        rails.gate(&action("q", "other")).await,
        Verdict::OverBudget { .. }
    ));
}

#[tokio::test]
async fn a_frozen_store_freezes_every_call_and_counts_nothing() {
    let store = crate::store::open_in_memory().unwrap();
    store
        .set_freeze(Some(Freeze {
            by: "alice".into(),
            reason: "migration".into(),
            since: "2026-12-07T04:00:00Z".into(),
        }))
        .await
        .unwrap();
    let rails = safety(&store, effective(&[]).unwrap());
    for _ in 0..5 {
        assert_eq!(
            rails.gate(&action("bot-down", "bot")).await,
            Verdict::Frozen {
                reason: "migration".into()
            }
        );
    }
    assert!(
        store
            .budget_uses(&[("restarts".into(), Duration::from_secs(3600))])
            .await
            .unwrap()
            .is_empty()
    );
    store.set_freeze(None).await.unwrap();
    // A new reader sees it at once; one that read it sees it within the cache's second.
    let fresh = safety(&store, effective(&[]).unwrap());
    assert_eq!(fresh.gate(&action("bot-down", "bot")).await, Verdict::Go);
    tokio::time::sleep(FREEZE_CACHE).await;
    assert_eq!(rails.gate(&action("bot-down", "bot")).await, Verdict::Go);
}
