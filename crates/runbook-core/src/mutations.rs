//! Which capability calls change the world (the dry-run notion: what a dry run records as
//! "would …"), and what the figures read from a finished run's timeline and its alert: when
//! the first performed mutating call happened, the calls by kind, the alert's name, `startsAt`
//! and instance. No I/O.

use std::collections::BTreeMap;

use serde_json::Value;

/// A call that changes something outside the run: docker start/stop/restart/pause/unpause/
/// prune/network-disconnect, notify, an http request other than GET/HEAD.
pub fn is_mutating(interface: &str, function: &str, args: &Value) -> bool {
    match interface {
        "docker" => matches!(
            function,
            "start" | "stop" | "restart" | "pause" | "unpause" | "prune" | "network-disconnect"
        ),
        "notify" => function == "send",
        "http" => {
            let method = match &args["method"] {
                Value::String(m) => m.to_ascii_uppercase(),
                other => other.to_string().to_ascii_uppercase(),
            };
            function == "send" && !(method.contains("GET") || method.contains("HEAD"))
        }
        _ => false,
    }
}

/// What a finished run's timeline says for the figures: when its first performed mutating
/// call happened, and its performed mutating calls by `interface.function`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actions {
    pub first_at: Option<String>,
    pub kinds: BTreeMap<String, u64>,
}

/// Reads `events` (each a timeline event as JSON text, as the store keeps them).
pub fn actions_of(events: &[String]) -> Actions {
    let mut out = Actions::default();
    for text in events {
        let Ok(event) = serde_json::from_str::<Value>(text) else {
            continue;
        };
        if event["event"] != "call" || event["result"] != "ok" {
            continue;
        }
        let interface = event["interface"].as_str().unwrap_or_default();
        let function = event["function"].as_str().unwrap_or_default();
        if !is_mutating(interface, function, &event["args"]) {
            continue;
        }
        if out.first_at.is_none() {
            out.first_at = event["at"].as_str().and_then(normalize_time);
        }
        *out.kinds
            .entry(format!("{interface}.{function}"))
            .or_default() += 1;
    }
    out
}

/// An RFC 3339 time (UTC `Z`, or no zone) as the store keeps times: milliseconds, `Z`.
/// `None` for anything else: an alert's `startsAt` is the sender's text.
pub fn normalize_time(text: &str) -> Option<String> {
    let time = humantime::parse_rfc3339_weak(text.trim()).ok()?;
    Some(humantime::format_rfc3339_millis(time).to_string())
}

/// What the figures group a run by, from its alert: (alertname, normalized startsAt,
/// instance label), each capped.
pub fn alert_keys(alert: Option<&Value>) -> (Option<String>, Option<String>, Option<String>) {
    let Some(alert) = alert else {
        return (None, None, None);
    };
    let label = |name: &str| {
        alert["labels"][name]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(|s| crate::text::truncate(s, 200).into_owned())
    };
    let starts_at = alert["startsAt"].as_str().and_then(normalize_time);
    // The host stores an alert with its `name`; other senders' JSON has only the label.
    let name = alert["name"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(|s| crate::text::truncate(s, 200).into_owned())
        .or_else(|| label("alertname"));
    (name, starts_at, label("instance"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn performed_mutating_calls_count_and_the_first_is_kept() {
        let call = |at: &str, i: &str, f: &str, result: &str, args: Value| {
            serde_json::json!({"at": at, "offset_ms": 1.0, "event": "call", "interface": i,
                "function": f, "args": args, "result": result, "duration_ms": 1.0})
            .to_string()
        };
        let events = vec![
            call(
                "2026-12-07T03:00:01.000Z",
                "docker",
                "list",
                "ok",
                Value::Null,
            ),
            call(
                "2026-12-07T03:00:02.000Z",
                "docker",
                "restart",
                "would",
                Value::Null,
            ),
            call(
                "2026-12-07T03:00:03.000Z",
                "http",
                "send",
                "ok",
                serde_json::json!({"method": "get"}),
            ),
            call(
                "2026-12-07T03:00:04.123456Z",
                "docker",
                "restart",
                "ok",
                Value::Null,
            ),
            call(
                "2026-12-07T03:00:05.000Z",
                "http",
                "send",
                "ok",
                serde_json::json!({"method": "post"}),
            ),
            "not json".into(),
        ];
        let actions = actions_of(&events);
        assert_eq!(
            actions.first_at.as_deref(),
            Some("2026-12-07T03:00:04.123Z")
        );
        assert_eq!(
            actions.kinds.into_iter().collect::<Vec<_>>(),
            [("docker.restart".into(), 1), ("http.send".into(), 1)]
        );
    }

    #[test]
    fn alert_times_are_normalized_or_dropped() {
        let alert = serde_json::json!({"labels": {"alertname": "A", "instance": "n1:9100"},
            "startsAt": "2026-12-07T03:00:00.123456789Z"});
        assert_eq!(
            alert_keys(Some(&alert)),
            (
                Some("A".into()),
                Some("2026-12-07T03:00:00.123Z".into()),
                Some("n1:9100".into())
            )
        );
        let bad = serde_json::json!({"labels": {}, "startsAt": "yesterday"});
        assert_eq!(alert_keys(Some(&bad)), (None, None, None));
    }
}
