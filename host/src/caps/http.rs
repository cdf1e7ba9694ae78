//! The `http` capability. The origin-granted implementation is the next issue's work; until
//! then every call is recorded and answers `unavailable`.

use serde_json::json;

use crate::bindings::CapError;
use crate::bindings::runbook::host::http::{self, ProbeResult, Request, Response};
use crate::state::RunState;

type CallResult<T> = wasmtime::Result<Result<T, CapError>>;

impl http::Host for RunState {
    async fn send(&mut self, req: Request) -> CallResult<Response> {
        self.not_implemented(
            "http",
            "send",
            json!({ "method": req.method, "url": req.url }),
        )
    }

    async fn probe(&mut self, url: String, timeout_ms: Option<u32>) -> CallResult<ProbeResult> {
        self.not_implemented(
            "http",
            "probe",
            json!({ "url": url, "timeout-ms": timeout_ms }),
        )
    }
}
