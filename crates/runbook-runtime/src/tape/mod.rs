//! The tape of a run's capability calls: recording them as a fixture, or answering them from
//! one (`Tape`, `Replayer`), the fixture's format and its world check. Plain data below the
//! capabilities: the seam where calls meet the tape is `calls::seam`, and running a playbook
//! against a fixture (`host test`) is the `replay` module, above the run.

mod fixture;
mod world;

pub use fixture::{
    Expect, ExpectedNotification, FIXTURE_ARTIFACT, Fixture, FixtureCall, FixtureFormat,
    FixtureIncident,
};

use serde_json::{Value, json};

use crate::bindings::CapError;

/// A string in an expected call's arguments that matches any value (or a missing one).
pub const ANY: &str = "$any";

/// What a run does with its capability calls besides performing them.
pub enum Tape {
    /// `host run --record`: every call, in order.
    Recording(Vec<FixtureCall>),
    /// `host test`: every call is answered from the fixture.
    Replaying(Replayer),
}

/// The playbook made a call the fixture did not expect (or not at that point).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Mismatch {
    /// 1-based number of the playbook's call.
    pub call: usize,
    /// The next call the fixture expected; `None` when it expected no more.
    pub expected: Option<Value>,
    pub actual: Value,
}

/// A value as a diff shows it: at most a few hundred bytes.
pub(crate) fn shown(value: &Value) -> String {
    const MAX: usize = 300;
    let text = value.to_string();
    if text.len() <= MAX {
        return text;
    }
    let cut = (0..=MAX)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}…[{} bytes in all]", &text[..cut], text.len())
}

impl Mismatch {
    /// Expected vs actual, one line each, then each differing argument by its path.
    pub fn diff(&self) -> String {
        let line = |v: &Value| {
            format!(
                "{}.{} {}",
                v["interface"].as_str().unwrap_or("?"),
                v["function"].as_str().unwrap_or("?"),
                shown(&v["args"])
            )
        };
        let mut out = format!("call #{} does not match the fixture\n", self.call);
        match &self.expected {
            Some(expected) => out += &format!("- expected: {}\n", line(expected)),
            None => out += "- expected: no more calls\n",
        }
        out += &format!("+ actual:   {}\n", line(&self.actual));
        if let Some(expected) = self.expected.as_ref().filter(|e| {
            e["interface"] == self.actual["interface"] && e["function"] == self.actual["function"]
        }) {
            let mut diffs = Vec::new();
            differing(&expected["args"], &self.actual["args"], "args", &mut diffs);
            for (path, want, got) in diffs.iter().take(20) {
                out += &format!("  {path}: expected {}, got {}\n", shown(want), shown(got));
            }
        }
        out
    }
}

/// Where expected and actual arguments differ, by path (`args.message.body`), down to the
/// first level where they are not both objects or equal-length arrays.
fn differing(expected: &Value, actual: &Value, path: &str, out: &mut Vec<(String, Value, Value)>) {
    if args_match(expected, actual) {
        return;
    }
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let mut keys: Vec<&String> = e.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let null = Value::Null;
                let (want, got) = (e.get(key).unwrap_or(&null), a.get(key).unwrap_or(&null));
                differing(want, got, &format!("{path}.{key}"), out);
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (i, (want, got)) in e.iter().zip(a).enumerate() {
                differing(want, got, &format!("{path}[{i}]"), out);
            }
        }
        _ => out.push((path.to_string(), expected.clone(), actual.clone())),
    }
}

/// Stands for the run's id in recorded arguments (a playbook puts it in messages).
pub const RUN_ID: &str = "${run_id}";

/// The recorded run id, wherever it appears in a string, as `${run_id}`.
pub(crate) fn abstract_run_id(value: &mut Value, run_id: &str) {
    match value {
        Value::String(s) if !run_id.is_empty() && s.contains(run_id) => {
            *s = s.replace(run_id, RUN_ID);
        }
        Value::Array(items) => items.iter_mut().for_each(|v| abstract_run_id(v, run_id)),
        Value::Object(map) => map.values_mut().for_each(|v| abstract_run_id(v, run_id)),
        _ => {}
    }
}

/// Expected arguments match actual ones: equal, with `"$any"` matching anything anywhere.
pub fn args_match(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::String(s), _) if s == ANY => true,
        (Value::Object(e), Value::Object(a)) => {
            e.iter()
                .all(|(k, v)| args_match(v, a.get(k).unwrap_or(&Value::Null)))
                && a.keys().all(|k| e.contains_key(k) || a[k].is_null())
        }
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(e, a)| args_match(e, a))
        }
        (Value::Number(e), Value::Number(a)) => e.as_f64() == a.as_f64(),
        _ => expected == actual,
    }
}

/// A fixture being replayed: which calls were answered, and the first mismatch.
pub struct Replayer {
    calls: Vec<FixtureCall>,
    used: Vec<bool>,
    pub(crate) made: usize,
    pub mismatch: Option<Mismatch>,
    /// A recorded result that cannot answer its call: the fixture is bad (exit 2).
    pub bad: Option<String>,
    /// Where the guest's wall clock starts (ms since the Unix epoch); `None`: the real one.
    pub wall_clock_ms: Option<u64>,
}

impl Replayer {
    pub fn new(calls: Vec<FixtureCall>) -> Self {
        let used = vec![false; calls.len()];
        Self {
            calls,
            used,
            made: 0,
            mismatch: None,
            bad: None,
            wall_clock_ms: None,
        }
    }

    /// The recorded call that answers this one: the next in order, or any unused one of the
    /// `group` the next belongs to.
    pub(crate) fn answer(
        &mut self,
        interface: &str,
        function: &str,
        args: &Value,
        run_id: &str,
    ) -> Result<&FixtureCall, Mismatch> {
        self.made += 1;
        let mut args = args.clone();
        abstract_run_id(&mut args, run_id);
        let args = &args;
        let actual =
            serde_json::json!({ "interface": interface, "function": function, "args": args });
        let Some(first) = self.used.iter().position(|u| !u) else {
            return Err(Mismatch {
                call: self.made,
                expected: None,
                actual,
            });
        };
        let group = self.calls[first].group.clone();
        let candidates: Vec<usize> = match &group {
            None => vec![first],
            Some(g) => (first..self.calls.len())
                .take_while(|&i| self.calls[i].group.as_ref() == Some(g))
                .filter(|&i| !self.used[i])
                .collect(),
        };
        let found = candidates.into_iter().find(|&i| {
            let c = &self.calls[i];
            c.interface == interface && c.function == function && args_match(&c.args, args)
        });
        match found {
            Some(i) => {
                self.used[i] = true;
                Ok(&self.calls[i])
            }
            None => Err(Mismatch {
                call: self.made,
                expected: Some(self.calls[first].shown()),
                actual,
            }),
        }
    }

    /// Recorded calls the playbook never made.
    pub fn unused(&self) -> Vec<Value> {
        self.calls
            .iter()
            .zip(&self.used)
            .filter(|(_, used)| !**used)
            .map(|(c, _)| c.shown())
            .collect()
    }
}

/// The replay found a call the fixture does not have: the run ends here (a trap).
#[derive(Debug, thiserror::Error)]
#[error("replay mismatch: {0}")]
pub struct ReplayMismatch(pub String);

/// The fixture's recorded result cannot be the answer to this call.
#[derive(Debug, thiserror::Error)]
#[error("bad fixture: {0}")]
pub struct BadFixture(pub String);

/// `{"ok": v}` or `{"error": {"kind", "detail"}}` as the recorded result's two halves.
pub(crate) fn split_result(result: &Value) -> Result<Result<Value, CapError>, String> {
    let Some(map) = result.as_object().filter(|m| m.len() == 1) else {
        return Err("result must be {\"ok\": …} or {\"error\": {\"kind\", \"detail\"}}".into());
    };
    if let Some(ok) = map.get("ok") {
        return Ok(Ok(ok.clone()));
    }
    let Some(error) = map.get("error") else {
        return Err("result must be {\"ok\": …} or {\"error\": {\"kind\", \"detail\"}}".into());
    };
    let detail = error["detail"].as_str().unwrap_or_default().to_string();
    let error = match error["kind"].as_str() {
        Some("denied") => CapError::Denied(detail),
        Some("not-found") => CapError::NotFound(detail),
        Some("invalid") => CapError::Invalid(detail),
        Some("unavailable") => CapError::Unavailable(detail),
        Some("timeout") => CapError::Timeout(detail),
        Some("failed") => CapError::Failed(detail),
        Some("over-budget") => CapError::OverBudget(crate::bindings::OverBudgetInfo {
            budget: error["budget"].as_str().unwrap_or_default().to_string(),
            key: error["key"].as_str().unwrap_or_default().to_string(),
            frees_in_secs: error["frees_in_secs"].as_u64().unwrap_or_default(),
            message: detail,
        }),
        _ => {
            return Err(
                "error.kind must be denied, not-found, invalid, unavailable, timeout, \
                 failed or over-budget"
                    .into(),
            );
        }
    };
    Ok(Err(error))
}

/// `over-budget` also keeps its budget, key and `frees_in_secs` (a replay hands them back).
pub(crate) fn encode_error(e: &CapError) -> Value {
    match e {
        CapError::OverBudget(info) => json!({ "error": {
            "kind": e.kind(), "detail": e.detail(), "budget": info.budget, "key": info.key,
            "frees_in_secs": info.frees_in_secs,
        } }),
        _ => json!({ "error": { "kind": e.kind(), "detail": e.detail() } }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_over_budget_result_replays_with_its_budget_and_free_up_time() {
        let refused = CapError::OverBudget(crate::bindings::OverBudgetInfo {
            budget: "restarts".into(),
            key: "web-1".into(),
            frees_in_secs: 2463,
            message: "over budget restarts (3 per container within 1h)".into(),
        });
        match split_result(&encode_error(&refused)) {
            Ok(Err(CapError::OverBudget(info))) => {
                assert_eq!(
                    (info.budget.as_str(), info.key.as_str()),
                    ("restarts", "web-1")
                );
                assert_eq!(info.frees_in_secs, 2463);
                assert!(info.message.starts_with("over budget restarts"));
            }
            other => panic!("{other:?}"),
        }
        let unknown = json!({ "error": { "kind": "over-quota", "detail": "x" } });
        assert!(split_result(&unknown).unwrap_err().contains("over-budget"));
    }

    /// Found by the fixture fuzz target: a result whose one key is neither `ok` nor `error`
    /// panicked (`host test` died on the file instead of naming what is wrong with it).
    #[test]
    fn a_result_with_another_single_key_is_refused_not_a_panic() {
        for result in [
            json!({ "okay": 1 }),
            json!({ "": null }),
            json!({ "error ": {} }),
        ] {
            assert!(
                split_result(&result).unwrap_err().contains("must be"),
                "{result}"
            );
        }
    }

    #[test]
    fn any_matches_anything_and_missing_nulls_are_equal() {
        assert!(args_match(
            &json!({"path": "$any", "n": 3}),
            &json!({"path": "/x", "n": 3.0})
        ));
        assert!(args_match(&json!({"a": 1}), &json!({"a": 1, "b": null})));
        assert!(!args_match(&json!({"a": 1}), &json!({"a": 2})));
        assert!(!args_match(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(args_match(
            &json!({"o": {"x": "$any"}}),
            &json!({"o": {"x": [1, 2]}})
        ));
    }

    fn call(function: &str, group: Option<&str>) -> FixtureCall {
        FixtureCall {
            interface: "docker".into(),
            function: function.into(),
            args: json!({}),
            result: json!({"ok": null}),
            target: None,
            group: group.map(String::from),
        }
    }

    #[test]
    fn a_group_matches_in_any_order_and_the_rest_in_order() {
        let mut replay = Replayer::new(vec![
            call("start", Some("g")),
            call("stop", Some("g")),
            call("pause", None),
        ]);
        assert!(replay.answer("docker", "stop", &json!({}), "r1").is_ok());
        assert!(replay.answer("docker", "start", &json!({}), "r1").is_ok());
        let err = replay
            .answer("docker", "restart", &json!({}), "r1")
            .unwrap_err();
        assert!(
            err.diff().contains("expected: docker.pause"),
            "{}",
            err.diff()
        );
        assert!(replay.answer("docker", "pause", &json!({}), "r1").is_ok());
        assert!(replay.unused().is_empty());
        assert!(
            replay
                .answer("docker", "pause", &json!({}), "r1")
                .unwrap_err()
                .expected
                .is_none()
        );
    }
}
