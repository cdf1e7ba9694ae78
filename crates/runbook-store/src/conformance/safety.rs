//! The safety rails' roles: a gated admission (held, suppressed) is recorded and never
//! claimed; a breaker opens once across instances after enough failures and closes by reset or
//! cool-down; ad hoc maintenance windows start, list and end.

use super::*;
use crate::records::{Disposition, Gate};
use crate::safety::{BreakerCheck, BreakerRule, NewWindow};

fn limits() -> SlotLimits {
    SlotLimits {
        default: 16,
        per_playbook: Default::default(),
    }
}

/// Runs of `playbook` that ended with `status` just now.
async fn ended(b: &Arc<dyn Backend>, playbook: &str, statuses: &[&str], tag: &str) {
    for i in 0..statuses.len() {
        let id = format!("{tag}{i}");
        assert_eq!(
            b.admit(admit(queued(&id, playbook, i))).await.unwrap(),
            Admitted::Started
        );
    }
    let claimed = b.claim_queued("me", 100, &limits(), LONG).await.unwrap();
    assert_eq!(claimed.len(), statuses.len());
    for (i, status) in statuses.iter().enumerate() {
        let mut done = outcome(&format!("{tag}{i}"), status);
        done.ended_at = crate::records::now_rfc3339();
        b.finish(done).await.unwrap();
    }
}

fn rule(cool_down: Duration) -> BreakerRule {
    BreakerRule {
        failures: 3,
        within: LONG,
        cool_down,
    }
}

pub(crate) async fn a_gated_admission_is_recorded_with_its_reason_and_never_claimed(s: Subject) {
    let b = &s.backend;
    for (id, gate, status, disposition) in [
        (
            "h",
            Gate::Held("held: breaker of pb".into()),
            "held",
            Disposition::Held,
        ),
        (
            "m",
            Gate::Suppressed("suppressed: window db".into()),
            "suppressed",
            Disposition::Suppressed,
        ),
    ] {
        let mut admission = deduped(queued(id, "pb", 1), &format!("key-{id}"), LONG);
        admission.alert = Some(alert("BotDown", ""));
        admission.cooldown = Some(("fp".into(), LONG));
        admission.gate = gate.clone();
        assert_eq!(b.admit(admission).await.unwrap(), Admitted::Started);
        let run = b.get(id).await.unwrap().unwrap();
        assert_eq!(run.run.status, status);
        assert_eq!(run.reason.as_deref(), gate.reason());
        assert_eq!(run.run.summary, gate.reason().unwrap());
        assert!(run.run.ended_at.is_some());
        // A re-send is deduplicated like any other.
        let again = deduped(
            queued(&format!("{id}2"), "pb", 2),
            &format!("key-{id}"),
            LONG,
        );
        assert_eq!(
            b.admit(again).await.unwrap(),
            Admitted::Deduplicated(id.into())
        );
        let alerts = b.alerts(10).await.unwrap();
        assert!(
            alerts
                .iter()
                .any(|a| a.disposition == disposition && a.run_id.as_deref() == Some(id)),
            "{alerts:?}"
        );
    }
    assert!(
        b.claim_queued("me", 10, &limits(), LONG)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(b.run_counts().await.unwrap(), (0, 0));
    // Gated runs take no cooldown: the next ungated one runs.
    assert_eq!(
        b.admit(cooled(queued("go", "pb", 3), "fp", LONG))
            .await
            .unwrap(),
        Admitted::Started
    );
}

pub(crate) async fn a_breaker_opens_once_across_instances_and_a_reset_closes_it(s: Subject) {
    let b = &s.backend;
    ended(b, "pb", &["failed", "resolved", "escalated"], "a").await;
    // Another playbook's failures are its own.
    ended(b, "other", &["failed", "failed", "failed"], "o").await;
    assert_eq!(
        b.breaker_check("pb", &rule(LONG)).await.unwrap(),
        BreakerCheck::Closed
    );
    ended(b, "pb", &["failed"], "b").await;
    let replicas = [b.clone(), (s.open_again)().await.unwrap()];
    let checks: Vec<_> = (0..20)
        .map(|i| {
            let backend = replicas[i % 2].clone();
            tokio::spawn(async move { backend.breaker_check("pb", &rule(LONG)).await.unwrap() })
        })
        .collect();
    let (mut opened, mut open) = (0, 0);
    for check in checks {
        match check.await.unwrap() {
            BreakerCheck::Opened(state) => {
                opened += 1;
                assert_eq!((state.failures, state.openings), (3, 1));
                assert!(state.open);
            }
            BreakerCheck::Open(state) => {
                open += 1;
                assert!(state.open);
            }
            BreakerCheck::Closed => panic!("closed after three failures"),
        }
    }
    assert_eq!((opened, open), (1, 19));
    let listed = b.breakers().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].open && listed[0].playbook == "pb");
    assert!(b.breaker_reset("pb", "cli:alice").await.unwrap());
    assert!(!b.breaker_reset("pb", "cli:alice").await.unwrap());
    assert!(!b.breaker_reset("never-opened", "cli:alice").await.unwrap());
    let listed = b.breakers().await.unwrap();
    assert!(!listed[0].open);
    assert_eq!(listed[0].reset_by.as_deref(), Some("cli:alice"));
    // Failures before the reset no longer count; three new ones open it again.
    assert_eq!(
        b.breaker_check("pb", &rule(LONG)).await.unwrap(),
        BreakerCheck::Closed
    );
    ended(b, "pb", &["failed", "failed", "escalated"], "c").await;
    match b.breaker_check("pb", &rule(LONG)).await.unwrap() {
        BreakerCheck::Opened(state) => assert_eq!(state.openings, 2),
        other => panic!("{other:?}"),
    }
}

pub(crate) async fn a_breaker_closes_after_its_cool_down(s: Subject) {
    let b = &s.backend;
    ended(b, "pb", &["failed", "failed", "failed"], "a").await;
    assert!(matches!(
        b.breaker_check("pb", &rule(SHORT)).await.unwrap(),
        BreakerCheck::Opened(_)
    ));
    tokio::time::sleep(SHORT + Duration::from_millis(100)).await;
    // Closed, and what it counted when it opened does not open it again.
    assert_eq!(
        b.breaker_check("pb", &rule(SHORT)).await.unwrap(),
        BreakerCheck::Closed
    );
    assert!(!b.breakers().await.unwrap()[0].open);
}

pub(crate) async fn maintenance_windows_start_list_and_end(s: Subject) {
    let b = &s.backend;
    let window = |duration| NewWindow {
        matchers: vec![r#"instance="web01""#.into()],
        nodes: vec!["web01".into()],
        reason: Some("disk swap".into()),
        by: "cli:alice".into(),
        duration,
    };
    let long = b.window_start(window(LONG)).await.unwrap();
    let short = b.window_start(window(SHORT)).await.unwrap();
    assert_ne!(long.id, short.id);
    assert!(long.active && long.id.starts_with("mw-"));
    assert_eq!(long.matchers, vec![r#"instance="web01""#.to_string()]);
    assert_eq!(long.reason.as_deref(), Some("disk swap"));
    let other = (s.open_again)().await.unwrap();
    assert_eq!(other.windows(false).await.unwrap().len(), 2);
    tokio::time::sleep(SHORT + Duration::from_millis(100)).await;
    let now: Vec<_> = b.windows(false).await.unwrap();
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].id, long.id);
    assert!(other.window_end(&long.id, "cli:bob").await.unwrap());
    assert!(!b.window_end(&long.id, "cli:bob").await.unwrap());
    assert!(!b.window_end("mw-none", "cli:bob").await.unwrap());
    assert!(b.windows(false).await.unwrap().is_empty());
    let recent = b.windows(true).await.unwrap();
    assert_eq!(recent.len(), 2);
    let ended = recent.iter().find(|w| w.id == long.id).unwrap();
    assert!(!ended.active);
    assert_eq!(ended.ended_by.as_deref(), Some("cli:bob"));
}
