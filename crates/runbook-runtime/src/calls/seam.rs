//! Where the capabilities meet the tape: `taped!` wraps each WIT host function.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use std::ops::DerefMut;

use super::Calls;
use crate::bindings::CapError;
use crate::tape::{BadFixture, FixtureCall, ReplayMismatch, Tape, encode_error, split_result};

/// Strings a playbook passes are kept whole up to this; longer ones are cut with their length.
const MAX_ARG_STRING_BYTES: usize = 4096;

/// Wraps a capability host function: on replay the recorded answer (after `$gate`, this
/// host's world-free grant check, ran on the recorded call); else the body, whose result is
/// recorded when recording. `$args` is built only when a tape is on. `$state` is the
/// capability's view (`&mut`, dereferencing to the run's `Calls`).
macro_rules! taped {
    ($state:ident, $iface:literal, $func:literal, $t:ty, $args:expr, $gate:expr, $body:block) => {{
        let tape_args: Option<serde_json::Value> = $state.tape.is_some().then(|| $args);
        if let Some(args) = &tape_args
            && let Some(answer) =
                $crate::calls::seam::replay_call::<_, $t>($state, $iface, $func, args, $gate)?
        {
            return Ok(answer);
        }
        let result: wasmtime::Result<Result<$t, CapError>> = async $body.await;
        if let Some(args) = tape_args {
            $state.tape_call($iface, $func, args, &result);
        }
        result
    }};
}
pub(crate) use taped;

/// Why a replayed call gets no recorded answer: this host refuses it (the guest sees the
/// error, as a live call's), or the fixture contradicts itself (the test is a bad fixture).
pub(crate) enum Refusal {
    Cap(CapError),
    Inconsistent(String),
}

impl From<CapError> for Refusal {
    fn from(e: CapError) -> Self {
        Refusal::Cap(e)
    }
}

/// A world-free grant check on a recorded call, on what it reached (its `target`), seeing
/// the capability's view `V` of the run.
pub(crate) type Gate<'a, V> = Box<dyn FnOnce(&V, &FixtureCall) -> Result<(), Refusal> + Send + 'a>;

/// The gate of a call that reaches what its arguments name (a URL, a channel, a group, the
/// engine as a whole): nothing for a fixture to record, so a `target` on it is a forgery.
pub(crate) fn untargeted<'a, V>(
    check: impl FnOnce(&V) -> Result<(), CapError> + Send + 'a,
) -> Gate<'a, V> {
    Box::new(move |state, recorded| {
        if let Some(target) = &recorded.target {
            return Err(Refusal::Inconsistent(format!(
                "this call reaches what its arguments name, yet the fixture records a target \
                 {}",
                crate::tape::shown(target)
            )));
        }
        Ok(check(state)?)
    })
}

/// The gate of a call that reaches something the world resolves (a container, a file): the
/// check sees the recorded target, if any, and must hold it to the arguments.
pub(crate) fn targeted<'a, V>(
    check: impl FnOnce(&V, Option<&Value>) -> Result<(), Refusal> + Send + 'a,
) -> Gate<'a, V> {
    Box::new(move |state, recorded| check(state, recorded.target.as_ref()))
}

/// A value the playbook passed, as a fixture keeps it: long strings cut with their length.
pub(crate) fn arg(value: impl Serialize) -> Value {
    let mut value = serde_json::to_value(value).unwrap_or(Value::Null);
    cap_strings(&mut value);
    value
}

fn cap_strings(value: &mut Value) {
    match value {
        Value::String(s) if s.len() > MAX_ARG_STRING_BYTES => {
            *s = crate::text::echo(s).into_owned();
        }
        Value::Array(items) => items.iter_mut().for_each(cap_strings),
        Value::Object(map) => map.values_mut().for_each(cap_strings),
        _ => {}
    }
}

/// Replaying: the fixture's answer to this call, after this host's grant check on what the
/// call reached. `None` when not replaying. A call the fixture does not have ends the run.
pub(crate) fn replay_call<V: DerefMut<Target = Calls>, T: DeserializeOwned>(
    view: &mut V,
    interface: &'static str,
    function: &'static str,
    args: &Value,
    gate: Gate<'_, V>,
) -> wasmtime::Result<Option<Result<T, CapError>>> {
    let recorded = {
        let this: &mut Calls = view;
        let Some(Tape::Replaying(replayer)) = &mut this.tape else {
            return Ok(None);
        };
        let recorded = match replayer.answer(interface, function, args, &this.context.run_id) {
            Ok(call) => call.clone(),
            Err(mismatch) => {
                let diff = mismatch.diff();
                replayer.mismatch.get_or_insert(mismatch);
                return Err(ReplayMismatch(diff).into());
            }
        };
        this.begin_call()?;
        recorded
    };
    let allowed = gate(view, &recorded);
    {
        let this: &mut Calls = view;
        let Some(Tape::Replaying(replayer)) = &mut this.tape else {
            unreachable!("replaying above");
        };
        let answer = match allowed {
            Err(Refusal::Inconsistent(why)) => {
                let problem = format!(
                    "fixture inconsistent: call #{} {interface}.{function}: {why}",
                    replayer.made
                );
                replayer.bad.get_or_insert(problem.clone());
                return Err(BadFixture(problem).into());
            }
            Err(Refusal::Cap(denied)) => Err(denied),
            Ok(()) => {
                let decoded = split_result(&recorded.result).and_then(|r| match r {
                    Err(e) => Ok(Err(e)),
                    // TOML has no null: `ok = {}` stands for a call with no value.
                    Ok(value) => serde_json::from_value::<T>(value.clone())
                        .or_else(|e| match value {
                            Value::Object(map) if map.is_empty() => {
                                serde_json::from_value(Value::Null)
                            }
                            _ => Err(e),
                        })
                        .map(Ok)
                        .map_err(|e| {
                            format!(
                                "the result of {interface}.{function} (call #{}): {e}",
                                replayer.made
                            )
                        }),
                });
                match decoded {
                    Ok(answer) => answer,
                    Err(problem) => {
                        replayer.bad.get_or_insert(problem.clone());
                        return Err(BadFixture(problem).into());
                    }
                }
            }
        };
        let (kind, detail) = match &answer {
            Ok(_) => ("ok", Some("replayed".to_string())),
            Err(e) => (e.kind(), Some(e.detail().to_string())),
        };
        this.timeline.call(
            interface,
            function,
            args.clone(),
            kind,
            detail,
            Duration::ZERO,
        );
        Ok(Some(answer))
    }
}

impl Calls {
    /// Recording: the call with its full result or error (a trap is not a result).
    pub(crate) fn tape_call<T: Serialize>(
        &mut self,
        interface: &str,
        function: &str,
        args: Value,
        result: &wasmtime::Result<Result<T, CapError>>,
    ) {
        let target = self.recorded_target.take();
        let Some(Tape::Recording(calls)) = &mut self.tape else {
            return;
        };
        let result = match result {
            Ok(Ok(value)) => json!({ "ok": serde_json::to_value(value).unwrap_or(Value::Null) }),
            Ok(Err(e)) => encode_error(e),
            Err(_) => return,
        };
        calls.push(FixtureCall {
            interface: interface.to_string(),
            function: function.to_string(),
            args,
            result,
            target,
            group: None,
        });
    }
}
