//! The `report` capability: the playbook's own log lines, steps and evidence, bounded per run.

use sha2::{Digest, Sha256};

use crate::bindings::CapError;
use crate::bindings::runbook::host::report::{self, Level, StepStatus};
use crate::calls::{Calls, LimitExceeded};
use crate::records::Artifact;
use crate::timeline::EventKind;

/// Longest single log line or step detail kept.
const MAX_TEXT: usize = 8 << 10;

impl Calls {
    fn count_log_line(&mut self) -> wasmtime::Result<()> {
        self.check_timeline_size()?;
        self.counters.logs += 1;
        if self.counters.logs > self.limits.max_log_lines {
            return Err(LimitExceeded(format!(
                "more than {} log lines and steps in one run",
                self.limits.max_log_lines
            ))
            .into());
        }
        Ok(())
    }
}

impl report::Host for Calls {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        self.count_log_line()?;
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.timeline.log(level, bounded(message));
        Ok(())
    }

    async fn step(
        &mut self,
        name: String,
        status: StepStatus,
        detail: String,
    ) -> wasmtime::Result<()> {
        self.count_log_line()?;
        let status = match status {
            StepStatus::Started => "started",
            StepStatus::Ok => "ok",
            StepStatus::Warning => "warning",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        };
        self.timeline.record(EventKind::Step {
            name: bounded(name),
            status: status.to_string(),
            detail: bounded(detail),
        });
        Ok(())
    }

    async fn attach(
        &mut self,
        name: String,
        content_type: String,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), CapError>> {
        match admit_artifact(
            name,
            content_type,
            &data,
            &mut self.counters.artifact_bytes,
            self.limits.max_artifact_bytes,
        ) {
            Ok(artifact) => {
                self.timeline.record(artifact.event());
                self.artifacts.push(artifact);
                Ok(Ok(()))
            }
            Err(NotKept::Invalid(e)) => Ok(Err(e)),
            Err(NotKept::OverCap(why)) => Err(LimitExceeded(why).into()),
        }
    }
}

/// Why a piece of evidence is not kept.
#[derive(Debug)]
pub enum NotKept {
    /// A name or content type no artifact may have.
    Invalid(CapError),
    /// The run's artifacts are over their cap: the limit's message (the run ends failed).
    OverCap(String),
}

/// The gate every artifact passes, whoever reports it: a playbook's `attach` here and a
/// node's outcome (server/fleet.rs) call this one function. Labels are checked, `total`
/// (the run's artifact bytes so far) is counted against `max`, and the hash and size are
/// computed from `data` itself, never taken from whoever sent it.
pub fn admit_artifact(
    name: String,
    content_type: String,
    data: &[u8],
    total: &mut usize,
    max: usize,
) -> Result<Artifact, NotKept> {
    check_artifact_labels(&name, &content_type).map_err(NotKept::Invalid)?;
    *total = total.saturating_add(data.len());
    if *total > max {
        return Err(NotKept::OverCap(format!(
            "more than {max} bytes of artifacts in one run"
        )));
    }
    Ok(Artifact {
        name,
        content_type,
        sha256: hex::encode(Sha256::digest(data)),
        bytes: data.len(),
        text: String::from_utf8_lossy(data).into_owned(),
    })
}

/// Longest artifact name and content type: they are labels, shown in lists and file names.
pub const MAX_ARTIFACT_NAME_BYTES: usize = 128;
pub const MAX_CONTENT_TYPE_BYTES: usize = 100;

fn check_artifact_labels(name: &str, content_type: &str) -> Result<(), CapError> {
    if name.is_empty() || name.len() > MAX_ARTIFACT_NAME_BYTES {
        return Err(CapError::Invalid(format!(
            "artifact name of {} bytes; 1 to {MAX_ARTIFACT_NAME_BYTES}",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) || name.contains('/') || name == "." || name == ".." {
        return Err(CapError::Invalid(format!(
            "artifact name {:?}: no control characters or `/`",
            crate::text::echo(name)
        )));
    }
    // type/subtype with optional parameters, the shape of a Content-Type header.
    let valid_type = content_type.len() <= MAX_CONTENT_TYPE_BYTES
        && content_type.split_once('/').is_some_and(|(t, rest)| {
            let subtype = rest.split(';').next().unwrap_or_default().trim();
            !t.is_empty() && !subtype.is_empty()
        })
        && content_type
            .chars()
            .all(|c| c.is_ascii_graphic() || c == ' ');
    if !valid_type {
        return Err(CapError::Invalid(format!(
            "artifact content type {:?}: expected type/subtype (e.g. text/plain), at most {MAX_CONTENT_TYPE_BYTES} bytes",
            crate::text::echo(content_type)
        )));
    }
    Ok(())
}

fn bounded(mut text: String) -> String {
    if text.len() > MAX_TEXT {
        let mut cut = MAX_TEXT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(" …[truncated]");
    }
    text
}
