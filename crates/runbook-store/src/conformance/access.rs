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
