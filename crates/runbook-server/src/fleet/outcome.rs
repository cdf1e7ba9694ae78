//! What the store keeps of a node's outcome: the same caps and gates a local run's outcome
//! passes, and what only the node can say kept as its word.

use serde_json::json;

use crate::caps::report::{NotKept, admit_artifact};
use crate::records::{Artifact, RunOutcome};
use crate::run::{MAX_ACTION_BYTES, MAX_ACTIONS, MAX_SUMMARY_BYTES};
use crate::state::LimitExceeded;
use crate::timeline::{Event, EventKind};
use runbook_runtime::fleet::{END_STATUSES, FinishUpload};

const MAX_REASON_BYTES: usize = 8 << 10;

/// The caps on what a run puts in the store. Not per-playbook settings: a node's own
/// host.toml can lower them for its runs, never raise what this server keeps.
pub(super) fn record_caps() -> crate::policy::Limits {
    crate::policy::Limits::default()
}

/// What the store keeps of a node's outcome: its timeline and artifacts through the gates a
/// local run's pass (`timeline::admit`, `report::admit_artifact`), the artifacts' hashes and
/// sizes computed here from the bytes received, and what only the node can know (its grants
/// and timings) kept as reported by that node. Over a cap, the run ends `failed` naming the
/// limit, as a local run does.
pub(super) fn node_outcome(id: &str, upload: FinishUpload) -> RunOutcome {
    let caps = record_caps();
    let node = upload.agent.node.clone();
    let mut over: Option<String> = None;
    let mut stored = 0;
    let mut events = Vec::with_capacity(upload.events.len());
    for event in upload.events {
        if let Some(why) = crate::timeline::over_cap(stored, caps.max_timeline_bytes) {
            over = Some(why);
            break;
        }
        let (_, json) = crate::timeline::admit(event);
        stored += json.len();
        events.push(json);
    }
    let mut total = 0;
    let mut artifacts = Vec::new();
    for artifact in upload.artifacts {
        let data = artifact.text.into_bytes();
        match admit_artifact(
            artifact.name,
            artifact.content_type,
            &data,
            &mut total,
            caps.max_artifact_bytes,
        ) {
            Ok(kept) => artifacts.push(kept),
            Err(NotKept::Invalid(e)) => {
                tracing::warn!("run {id}: node {node} sent an artifact no run may attach: {e}")
            }
            Err(NotKept::OverCap(why)) => {
                over.get_or_insert(why);
                break;
            }
        }
    }
    // The timeline's artifact events say what the server stored, not what the node claimed.
    let events = events
        .into_iter()
        .map(|json| with_stored_artifact(json, &artifacts))
        .collect();
    let (status, summary, reason) = match over {
        Some(why) => {
            let reason = format!("{}; reported by node {node}", LimitExceeded(why));
            (
                "failed".to_string(),
                format!("run failed: {reason}"),
                Some(reason),
            )
        }
        None => (upload.status, upload.summary, upload.reason),
    };
    RunOutcome {
        run_id: id.to_string(),
        status,
        summary,
        actions: upload.actions,
        reason,
        ended_at: upload.ended_at,
        timings: reported_by(&node, upload.timings),
        grants: reported_by(&node, upload.grants),
        events,
        artifacts,
    }
}

/// Longest grants or timings a node's report may take in the store.
const MAX_REPORTED_ITEMS: usize = 256;

/// What only the node can say, capped and labelled as its word: `{"reported_by_node": …}`.
fn reported_by(node: &str, value: serde_json::Value) -> serde_json::Value {
    let mut value = crate::text::cap_json(value, MAX_REASON_BYTES, MAX_REPORTED_ITEMS);
    match &mut value {
        serde_json::Value::Object(map) => {
            map.insert("reported_by_node".into(), json!(node));
            value
        }
        other => json!({ "reported_by_node": node, "report": other }),
    }
}

/// An artifact event (JSON) with the hash and size of the artifact the server stored under
/// that name; one it did not store says so (size 0, no hash).
fn with_stored_artifact(json: String, artifacts: &[Artifact]) -> String {
    let Ok(Event {
        at,
        offset_ms,
        kind: EventKind::Artifact {
            name, content_type, ..
        },
    }) = serde_json::from_str::<Event>(&json)
    else {
        return json;
    };
    let stored = artifacts.iter().find(|a| a.name == name);
    let event = Event {
        at,
        offset_ms,
        kind: EventKind::Artifact {
            bytes: stored.map_or(0, |a| a.bytes),
            sha256: stored.map(|a| a.sha256.clone()).unwrap_or_default(),
            name,
            content_type,
        },
    };
    serde_json::to_string(&event).expect("an event serializes")
}

/// What the store would refuse to show people: the same caps a local run's outcome has.
pub(super) fn outcome_problem(upload: &FinishUpload) -> Result<(), String> {
    if !END_STATUSES.contains(&upload.status.as_str()) {
        return Err(format!(
            "status {:?} is not one a run ends with ({})",
            crate::text::echo(&upload.status),
            END_STATUSES.join(", ")
        ));
    }
    if upload.summary.len() > MAX_SUMMARY_BYTES
        || upload.actions.len() > MAX_ACTIONS
        || upload.actions.iter().any(|a| a.len() > MAX_ACTION_BYTES)
        || upload
            .reason
            .as_ref()
            .is_some_and(|r| r.len() > MAX_REASON_BYTES)
        || upload.ended_at.len() > 64
    {
        return Err("the outcome is over the caps of a run's summary, actions or reason".into());
    }
    humantime::parse_rfc3339(&upload.ended_at)
        .map_err(|e| format!("ended_at is not RFC 3339: {e}"))?;
    Ok(())
}
