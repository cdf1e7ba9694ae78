//! One module per WIT interface; each implements that interface's generated `Host` trait on
//! its own view of the run (`DockerView`: the run's `Calls` and the Docker engine, and so on;
//! `report` needs only `Calls`), does its own grant check first, and records every call in the
//! timeline. None of them names `RunState`: the run's state (above) composes them.

pub mod approval;
pub mod docker;
pub mod fs_read;
pub mod http;
pub mod notify;
pub mod report;

/// Runs a capability call's host-side work so that a panic in it (a bug in the host or in a
/// crate it uses, reached with a string the playbook chose) becomes a `failed` call the
/// playbook sees, instead of unwinding through the guest and ending the run.
pub(crate) async fn panic_to_failed<T>(
    call: &str,
    work: impl Future<Output = Result<T, crate::bindings::CapError>>,
) -> Result<T, crate::bindings::CapError> {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            Err(crate::bindings::CapError::Failed(format!(
                "host error: panic in {call}: {}",
                crate::panics::panic_message(&*panic)
            )))
        })
}

#[cfg(test)]
mod tests {
    use crate::bindings::CapError;

    #[tokio::test]
    async fn a_panicking_capability_call_becomes_a_failed_call() {
        async fn lists() -> Result<Vec<String>, CapError> {
            panic!("glob too big")
        }
        let result = super::panic_to_failed("docker.list-containers", lists()).await;
        match result {
            Err(CapError::Failed(detail)) => assert_eq!(
                detail,
                "host error: panic in docker.list-containers: glob too big"
            ),
            other => panic!("expected a failed call, got {other:?}"),
        }
    }
}
