//! API tokens and the audit trail: a token is found by its hash only, expires on the store's
//! clock, is revoked once for every instance; audit events come back in order, capped.

use super::*;
use crate::access::{AuditAct, NewAudit, NewToken, Role, token_from, token_hash};

fn new_token(name: &str, role: Role, expires_in: Option<Duration>) -> (String, NewToken) {
    let mut random = [0u8; 32];
    random[..name.len().min(32)].copy_from_slice(&name.as_bytes()[..name.len().min(32)]);
    let token = token_from(random);
    let new = NewToken {
        hash: token_hash(&token),
        name: name.into(),
        role,
        created_by: "cli:alice".into(),
        expires_in,
    };
    (token, new)
}

pub(crate) async fn tokens_are_found_by_hash_expire_and_revoke_for_every_instance(s: Subject) {
    let b = &s.backend;
    let (grafana, new) = new_token("grafana", Role::Viewer, Some(LONG));
    let created = b.token_create(new).await.unwrap();
    assert!(created.id.starts_with("tok-") && created.usable());
    assert_eq!(
        (created.role, created.name.as_str()),
        (Role::Viewer, "grafana")
    );
    let (brief, new) = new_token("brief", Role::Operator, Some(SHORT));
    b.token_create(new).await.unwrap();

    let found = b
        .token_by_hash(&token_hash(&grafana))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, created.id);
    assert!(
        b.token_by_hash(&grafana).await.unwrap().is_none(),
        "the token itself is no key"
    );
    assert_eq!(b.tokens().await.unwrap().len(), 2);

    tokio::time::sleep(SHORT + Duration::from_millis(100)).await;
    let expired = b.token_by_hash(&token_hash(&brief)).await.unwrap().unwrap();
    assert!(expired.expired && !expired.usable());

    let other = (s.open_again)().await.unwrap();
    assert!(other.token_revoke(&created.id, "cli:bob").await.unwrap());
    assert!(
        !b.token_revoke(&created.id, "cli:bob").await.unwrap(),
        "once"
    );
    let revoked = b
        .token_by_hash(&token_hash(&grafana))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_by.as_deref(), Some("cli:bob"));
    assert!(!revoked.usable());
    assert!(!b.token_revoke("tok-none", "cli:bob").await.unwrap());
}

pub(crate) async fn audit_events_come_back_in_order_and_capped(s: Subject) {
    let b = &s.backend;
    let before = crate::records::now_ms() - 1000;
    let first = b
        .audit_append(NewAudit {
            act: AuditAct::Freeze,
            actor: "alice".into(),
            proof: "basic".into(),
            source: "127.0.0.1".into(),
            target: None,
            detail: Some(format!("why\0{}", "x".repeat(5000))),
        })
        .await
        .unwrap();
    let second = b
        .audit_append(NewAudit {
            act: AuditAct::TokenCreated,
            actor: "cli:bob".into(),
            proof: "cli".into(),
            source: "cli@box".into(),
            target: Some("tok-1".into()),
            detail: None,
        })
        .await
        .unwrap();
    assert!(second.id > first.id);
    assert!(first.detail.as_ref().unwrap().len() <= crate::access::MAX_AUDIT_TEXT);
    let all = b.audit_since(before, 100).await.unwrap();
    assert_eq!(all, vec![first.clone(), second.clone()]);
    assert_eq!(b.audit_since(before, 1).await.unwrap(), vec![second]);
    assert!(
        b.audit_since(crate::records::now_ms() + 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub(crate) async fn a_session_ends_for_every_instance_and_a_sign_in_is_taken_once(s: Subject) {
    use crate::access::{NewSession, PendingLogin};
    let b = &s.backend;
    let session = |hash: &str, ttl| NewSession {
        hash: hash.into(),
        subject: "alice".into(),
        name: "Alice\0".into(),
        groups: vec!["sre-all".into(), "db-oncall".into()],
        ttl,
    };
    b.session_create(session("h-alice", LONG)).await.unwrap();
    b.session_create(session("h-brief", SHORT)).await.unwrap();
    let other = (s.open_again)().await.unwrap();
    let found = other.session_by_hash("h-alice").await.unwrap().unwrap();
    assert_eq!(found.subject, "alice");
    assert_eq!(found.groups, ["sre-all", "db-oncall"]);
    assert!(!found.name.contains('\0'));
    assert!(b.session_by_hash("h-none").await.unwrap().is_none());
    tokio::time::sleep(SHORT + Duration::from_millis(100)).await;
    assert!(
        b.session_by_hash("h-brief").await.unwrap().is_none(),
        "expired"
    );
    // Ended on one instance: gone on the other.
    assert!(other.session_delete("h-alice").await.unwrap());
    assert!(b.session_by_hash("h-alice").await.unwrap().is_none());
    assert!(!b.session_delete("h-alice").await.unwrap());

    let login = |state: &str, ttl| PendingLogin {
        state_hash: state.into(),
        nonce: format!("nonce-{state}"),
        pkce_verifier: "v".repeat(43),
        return_to: "/ui/runs".into(),
        ttl,
    };
    b.login_begin(login("s1", LONG)).await.unwrap();
    b.login_begin(login("s2", SHORT)).await.unwrap();
    let taken = other.login_take("s1").await.unwrap().unwrap();
    assert_eq!(
        (taken.nonce.as_str(), taken.return_to.as_str()),
        ("nonce-s1", "/ui/runs")
    );
    assert!(b.login_take("s1").await.unwrap().is_none(), "once only");
    tokio::time::sleep(SHORT + Duration::from_millis(100)).await;
    assert!(b.login_take("s2").await.unwrap().is_none(), "expired");
    assert!(b.login_take("nope").await.unwrap().is_none());
}

/// Events with no outbox row for a sink (their process died before queueing them) are found,
/// oldest first, bounded by the window and the limit; a queued one is not.
pub(crate) async fn audit_events_not_yet_queued_to_a_sink_are_found(s: Subject) {
    let b = &s.backend;
    let before = crate::records::now_ms() - 1000;
    let mut ids = Vec::new();
    for i in 0..3 {
        let event = b
            .audit_append(NewAudit {
                act: AuditAct::Freeze,
                actor: format!("alice-{i}"),
                proof: "basic".into(),
                source: "127.0.0.1".into(),
                target: None,
                detail: None,
            })
            .await
            .unwrap();
        ids.push(event.id);
    }
    let unshipped = |sink: &'static str, limit| async move {
        b.audit_unshipped(sink, before, limit)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(unshipped("audit-file", 10).await, ids);
    assert_eq!(unshipped("audit-file", 2).await, ids[..2]);
    let queued = |id: i64, sink: &str| {
        (
            NewMessage {
                run_id: Some(String::new()),
                channel: sink.into(),
                kind: "file".into(),
                payload: serde_json::json!({ "title": "audit: freeze" }),
                dedup_key: Some(format!("audit-{id}")),
                event_action: Some("trigger".into()),
                created_at: "2026-11-25T10:00:00.000Z".into(),
            },
            Some(format!("audit-{id}-{sink}")),
        )
    };
    let (message, key) = queued(ids[0], "audit-file");
    b.enqueue(message, key).await.unwrap();
    let (message, key) = queued(ids[2], "other-sink");
    b.enqueue(message, key).await.unwrap();
    assert_eq!(unshipped("audit-file", 10).await, ids[1..]);
    assert_eq!(unshipped("other-sink", 10).await, ids[..2]);
    // A sink name long enough that the outbox keeps its key as a digest.
    let long: &'static str = Box::leak("s".repeat(300).into_boxed_str());
    let (message, key) = queued(ids[1], long);
    b.enqueue(message, key).await.unwrap();
    assert_eq!(unshipped(long, 10).await, [ids[0], ids[2]]);
    // Outside the window: nothing.
    assert!(
        b.audit_unshipped("audit-file", crate::records::now_ms() + 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
