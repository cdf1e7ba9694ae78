//! How a run ends: the caps on what its outcome may put in the store, the one-line reason for a
//! trap or a limit, and the guard that marks a run `failed` whatever happens inside the host.

use super::*;

/// Caps on what a playbook's outcome puts in the store and in every notification and view.
pub const MAX_SUMMARY_BYTES: usize = 4 << 10;
pub const MAX_ACTIONS: usize = 100;
pub const MAX_ACTION_BYTES: usize = 1 << 10;
/// The failure reason carries what the guest printed (a panic message): kept, but capped.
const MAX_REASON_BYTES: usize = 8 << 10;

pub(super) fn outcome_size_problem(
    outcome: &crate::bindings::runbook::host::types::Outcome,
) -> Option<String> {
    if outcome.summary.len() > MAX_SUMMARY_BYTES {
        return Some(format!(
            "a summary of {} bytes (at most {MAX_SUMMARY_BYTES})",
            outcome.summary.len()
        ));
    }
    if outcome.actions.len() > MAX_ACTIONS {
        return Some(format!(
            "{} actions (at most {MAX_ACTIONS})",
            outcome.actions.len()
        ));
    }
    outcome
        .actions
        .iter()
        .find(|a| a.len() > MAX_ACTION_BYTES)
        .map(|a| {
            format!(
                "an action of {} bytes (at most {MAX_ACTION_BYTES})",
                a.len()
            )
        })
}

/// Runs `work`, the execution of run `run_id`, so that whatever happens inside the host the
/// run ends in the store: an error or a panic marks it `failed` with "host error: …" (a run
/// left `running` would be taken for lost by the next host).
pub async fn guard_run(
    store: Option<&RunStore>,
    run_id: &str,
    work: impl Future<Output = Result<RunRecord>>,
) -> Result<RunRecord> {
    let reason = match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(Ok(record)) => return Ok(record),
        Ok(Err(e)) => format!("host error: {e:#}"),
        Err(panic) => format!("host error: panic: {}", panic_message(&*panic)),
    };
    if let Some(store) = store
        && let Err(e) = store.end_unfinished(run_id, "failed", &reason).await
    {
        tracing::warn!("run {run_id}: recording that it failed: {e:#}");
    }
    anyhow::bail!("run {run_id} failed: {reason}")
}

/// One line saying why a run trapped: a limit by name, or the trap plus what the guest printed
/// (a Rust panic message, say).
pub(super) fn trap_reason(error: &wasmtime::Error, guest_output: &str) -> String {
    if let Some(limit) = error.downcast_ref::<LimitExceeded>() {
        return limit.to_string();
    }
    if error.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::StackOverflow) {
        return "limit exceeded: wasm call stack (recursion too deep)".into();
    }
    let trap = error
        .downcast_ref::<wasmtime::Trap>()
        .map(|t| format!("trap: {t}"))
        .unwrap_or_else(|| format!("{error:#}"));
    let printed = guest_output.trim();
    if printed.is_empty() {
        trap
    } else {
        let last: Vec<&str> = printed.lines().rev().take(3).collect();
        let last: Vec<&str> = last.into_iter().rev().collect();
        format!("{trap}; the playbook printed: {}", last.join(" | "))
    }
}

pub(super) fn failed(reason: String) -> (&'static str, String, Vec<String>, Option<String>) {
    let reason = crate::text::truncate_owned(reason, MAX_REASON_BYTES);
    (
        "failed",
        format!("run failed: {reason}"),
        Vec::new(),
        Some(reason),
    )
}

/// A playbook that returned an error after a budget refused one of its actions (`refused`, the
/// budget's message): escalated, the summary naming the budget and when it frees.
pub(super) fn escalated(
    refused: &str,
    reason: String,
) -> (&'static str, String, Vec<String>, Option<String>) {
    let reason = crate::text::truncate_owned(reason, MAX_REASON_BYTES);
    (
        "escalated",
        crate::text::truncate_owned(format!("escalated: {refused}"), MAX_SUMMARY_BYTES),
        Vec::new(),
        Some(reason),
    )
}
