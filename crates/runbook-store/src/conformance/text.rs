//! The contract's text: what one backend takes, the other takes, and both give back the same
//! string. A NUL (which PostgreSQL's `text` refuses) in every kind of text the store keeps
//! comes back as `text::for_store` writes it (`\u{0}`), never as an error.
//! Keys (dedup, cooldown, once, replay) of any length are keys.

use super::*;
use crate::Appended;

const ODD: &str = "a\0b \u{1b}[31m \u{202e} é";

const KEPT: &str = "a\\u{0}b \u{1b}[31m \u{202e} é";

fn event(message: &str) -> String {
    serde_json::json!({
        "at": "2026-11-25T10:00:01.000Z", "offset_ms": 1.0,
        "event": "log", "level": "info", "message": message,
    })
    .to_string()
}

pub(crate) async fn nul_and_odd_bytes_are_kept_alike_in_every_text(s: Subject) {
    let b = &s.backend;
    // A run and its alert: parameters, labels, keys.
    let mut run = queued("r1", "pb", 1);
    run.params = serde_json::json!({ "target": ODD, ODD: "key" });
    run.alert = Some(serde_json::json!({ "labels": { "instance": ODD } }));
    let mut record = alert("NulLabel", "");
    record.labels = serde_json::json!({ "alertname": "NulLabel", "instance": ODD });
    record.fingerprint = format!("fp-{ODD}");
    let admitted = b
        .admit(Admit {
            alert: Some(record),
            ..deduped(run, &format!("pb|{ODD}"), LONG)
        })
        .await
        .unwrap();
    assert_eq!(admitted, Admitted::Started);
    // Alerts recorded apart (a rejected one names its problem).
    let mut rejected = alert(ODD, "rejected");
    rejected.detail = Some(format!("bad: {ODD}"));
    b.record_alerts(vec![rejected]).await.unwrap();
    let alerts = b.alerts(10).await.unwrap();
    let started = alerts.iter().find(|a| a.alertname == "NulLabel").unwrap();
    assert_eq!(started.labels["instance"], KEPT);
    assert_eq!(started.fingerprint, format!("fp-{KEPT}"));
    let refused = alerts
        .iter()
        .find(|a| a.disposition == crate::Disposition::Rejected)
        .unwrap();
    assert_eq!(refused.alertname, KEPT);
    assert_eq!(refused.detail.as_deref(), Some(&*format!("bad: {KEPT}")));

    // Its outcome: summary, actions, reason, timeline, artifacts, reported JSON.
    assert_eq!(
        claimed_ids(b, "runner-1", 1, &limits(10, &[]), LONG).await,
        ["r1"]
    );
    let mut end = outcome("r1", "failed");
    end.summary = format!("summary {ODD}");
    end.actions = vec![format!("action {ODD}")];
    end.reason = Some(format!("reason {ODD}"));
    end.events = vec![event(ODD)];
    end.grants = serde_json::json!({ "fs-read": [ODD] });
    end.artifacts[0].text = format!("evidence {ODD}");
    b.finish(end).await.unwrap();
    let stored = b.get("r1").await.unwrap().unwrap();
    assert_eq!(stored.run.summary, format!("summary {KEPT}"));
    assert_eq!(
        stored.actions,
        serde_json::json!([format!("action {KEPT}")])
    );
    assert_eq!(stored.reason.as_deref(), Some(&*format!("reason {KEPT}")));
    assert_eq!(stored.params["target"], KEPT);
    assert_eq!(stored.params[KEPT], "key");
    assert_eq!(stored.alert.as_ref().unwrap()["labels"]["instance"], KEPT);
    assert_eq!(stored.grants.as_ref().unwrap()["fs-read"][0], KEPT);
    assert_eq!(stored.artifacts[0].text, format!("evidence {KEPT}"));
    let crate::timeline::EventKind::Log { message: line, .. } = &stored.timeline[0].kind else {
        panic!("{:?}", stored.timeline)
    };
    assert_eq!(line, KEPT);

    // A node's live events.
    b.admit(admit(for_node("a1", "node-a", 2))).await.unwrap();
    b.claim_for_node("node-a", AGENT_A, 1, &limits(10, &[]), LONG)
        .await
        .unwrap();
    let appended = b
        .append_events("a1", AGENT_A, 0, vec![event(ODD)], usize::MAX)
        .await
        .unwrap();
    assert_eq!(appended, Appended::Stored);
    let live = b.get("a1").await.unwrap().unwrap();
    let crate::timeline::EventKind::Log { message: line, .. } = &live.timeline[0].kind else {
        panic!("{:?}", live.timeline)
    };
    assert_eq!(line, KEPT);
    // Ending unfinished with such a reason.
    assert!(b.end_unfinished("a1", "failed", ODD).await.unwrap());
    assert_eq!(
        b.get("a1").await.unwrap().unwrap().reason.as_deref(),
        Some(KEPT)
    );

    // The outbox: payload, keys, errors.
    let mut note = message("r1", "ops", ODD, "trigger");
    note.dedup_key = Some(ODD.into());
    let id = b.enqueue(note, Some(format!("once {ODD}"))).await.unwrap();
    b.mark_failed(id, &format!("refused: {ODD}")).await.unwrap();
    let row = b.outbox_row(id).await.unwrap().unwrap();
    assert_eq!(row.title, KEPT);
    assert_eq!(row.dedup_key.as_deref(), Some(KEPT));
    assert_eq!(
        row.last_error.as_deref(),
        Some(&*format!("refused: {KEPT}"))
    );
    // Looked up by the key as given, or as kept, it is found (a read is normalised too).
    assert!(b.last_for_dedup_key("ops", ODD).await.unwrap().is_some());
    assert!(b.last_for_dedup_key("ops", KEPT).await.unwrap().is_some());
    assert_eq!(
        b.get(&format!("r1{ODD}")).await.unwrap().map(|r| r.run.id),
        None
    );
}

/// `len` bytes that do not compress (an index entry is bounded whatever the compression).
fn noise(seed: &str, len: usize) -> String {
    use sha2::Digest;
    let mut out = String::new();
    let mut block = sha2::Sha256::digest(seed.as_bytes());
    while out.len() < len {
        out.push_str(&hex::encode(block));
        block = sha2::Sha256::digest(block);
    }
    out.truncate(len);
    out
}

/// Dedup keys, cooldown keys (alert fingerprints), webhook ids and once-keys come from the
/// outside: a 10 KB one is still a key, and two that share a long prefix are two keys.
pub(crate) async fn keys_of_any_length_are_keys(s: Subject) {
    let b = &s.backend;
    let long = noise("a", 10_000);
    let sibling = format!("{}{}", &long[..9_000], noise("b", 1_000));
    let dedup = |id: &str, key: &str| deduped(queued(id, "pb", 1), key, LONG);
    assert_eq!(
        b.admit(dedup("k1", &long)).await.unwrap(),
        Admitted::Started
    );
    assert_eq!(
        b.admit(dedup("k2", &long)).await.unwrap(),
        Admitted::Deduplicated("k1".into())
    );
    assert_eq!(
        b.admit(dedup("k3", &sibling)).await.unwrap(),
        Admitted::Started
    );
    let cool = |id: &str, key: &str| cooled(queued(id, "pb", 2), key, LONG);
    assert_eq!(b.admit(cool("k4", &long)).await.unwrap(), Admitted::Started);
    assert_eq!(
        b.admit(cool("k5", &long)).await.unwrap(),
        Admitted::Cooldown
    );
    assert_eq!(
        b.admit(cool("k6", &sibling)).await.unwrap(),
        Admitted::Started
    );

    assert!(b.first_delivery(&long, LONG).await.unwrap());
    assert!(!b.first_delivery(&long, LONG).await.unwrap());
    assert!(b.first_delivery(&sibling, LONG).await.unwrap());

    let mut trigger = message("k1", "ops", "long", "trigger");
    trigger.dedup_key = Some(long.clone());
    let first = b
        .enqueue(trigger.clone(), Some(long.clone()))
        .await
        .unwrap();
    assert_eq!(
        b.enqueue(trigger.clone(), Some(long.clone()))
            .await
            .unwrap(),
        first
    );
    assert_ne!(
        b.enqueue(trigger, Some(sibling.clone())).await.unwrap(),
        first
    );
    let last = b.last_for_dedup_key("ops", &long).await.unwrap().unwrap();
    assert_eq!(last.dedup_key.as_deref(), Some(long.as_str()));
    assert!(
        b.last_for_dedup_key("ops", &sibling)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(b.get("k1").await.unwrap().unwrap().dedup_key, Some(long));
}
