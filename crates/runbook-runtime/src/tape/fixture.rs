//! The fixture file: an incident, the capability calls in order with their results, and what
//! the run must come to. JSON (`.json`) or TOML (`.toml`); see docs/playbooks.md.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bindings::Alert;

/// Fixture files larger than this are refused (a recorded run is far smaller).
pub const MAX_FIXTURE_BYTES: u64 = 64 << 20;

/// How a fixture file is written: TOML when its name ends in `.toml`, else JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixtureFormat {
    Json,
    Toml,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// The playbook it was recorded from (informative: `host test` names the playbook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playbook: Option<String>,
    #[serde(default)]
    pub incident: FixtureIncident,
    #[serde(default)]
    pub calls: Vec<FixtureCall>,
    #[serde(default)]
    pub expect: Expect,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureIncident {
    /// cli, webhook or alert [default: alert when there is one, else cli].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<Alert>,
    #[serde(default)]
    pub dry_run: bool,
    /// When the run started (ms since the Unix epoch): the replay's wall clock starts there.
    /// Absent: the real clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_clock_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureCall {
    pub interface: String,
    pub function: String,
    #[serde(default)]
    pub args: Value,
    /// `{"ok": value}` or `{"error": {"kind": "denied", "detail": "…"}}`.
    pub result: Value,
    /// What the call reached as the world named it (docker: the container's name and
    /// labels): the grant is checked on this when replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Value>,
    /// Consecutive calls with the same group match in any order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl FixtureCall {
    /// The call as a mismatch shows it.
    pub fn shown(&self) -> Value {
        serde_json::json!({ "interface": self.interface, "function": self.function, "args": self.args })
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// resolved, mitigated, escalated, no-action or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// A regular expression the summary must match (anywhere; anchor it with ^…$).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The actions, exactly and in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<String>>,
    /// The notifications sent, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Vec<ExpectedNotification>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExpectedNotification {
    pub channel: String,
    /// A regular expression the title must match; absent: any title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
}

impl Fixture {
    /// Reads a fixture file; TOML when its name ends in `.toml`, else JSON. The error is
    /// what makes it a bad fixture (exit 2).
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        use std::io::Read;
        let file = std::fs::File::open(path)?;
        let mut text = String::new();
        file.take(MAX_FIXTURE_BYTES + 1).read_to_string(&mut text)?;
        if text.len() as u64 > MAX_FIXTURE_BYTES {
            anyhow::bail!("larger than {} MiB", MAX_FIXTURE_BYTES >> 20);
        }
        let format = if path.extension().is_some_and(|e| e == "toml") {
            FixtureFormat::Toml
        } else {
            FixtureFormat::Json
        };
        Fixture::parse(&text, format)
    }

    /// A fixture's text in the given format (serde's checks only: see `validate`).
    pub fn parse(text: &str, format: FixtureFormat) -> anyhow::Result<Self> {
        let parsed: anyhow::Result<Self> = match format {
            FixtureFormat::Toml => toml::from_str(text).map_err(Into::into),
            FixtureFormat::Json => serde_json::from_str(text).map_err(Into::into),
        };
        parsed.map_err(for_terminal)
    }

    /// Checks what serde cannot: the expectations' patterns compile, results have a known shape.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.validate_raw().map_err(for_terminal)
    }

    fn validate_raw(&self) -> anyhow::Result<()> {
        if let Some(s) = &self.expect.summary {
            regex::Regex::new(s).map_err(|e| anyhow::anyhow!("expect.summary: {e}"))?;
        }
        for n in self.expect.notifications.iter().flatten() {
            if let Some(t) = &n.title {
                regex::Regex::new(t)
                    .map_err(|e| anyhow::anyhow!("expect.notifications title: {e}"))?;
            }
        }
        for (i, call) in self.calls.iter().enumerate() {
            let _kind = super::split_result(&call.result).map_err(|e| {
                anyhow::anyhow!("calls[{i}] ({}.{}): {e}", call.interface, call.function)
            })?;
        }
        super::world::check(&self.calls).map_err(anyhow::Error::msg)
    }
}

/// The name a recorded run's fixture is kept under with the run (`host runs export --fixture`).
pub const FIXTURE_ARTIFACT: &str = "fixture.json";

impl Fixture {
    pub fn to_json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)? + "\n")
    }

    /// The fixture as an artifact of its run.
    pub fn artifact(&self) -> anyhow::Result<crate::records::Artifact> {
        use sha2::Digest;
        let text = self.to_json()?;
        Ok(crate::records::Artifact {
            name: FIXTURE_ARTIFACT.into(),
            content_type: "application/json".into(),
            sha256: format!("{:x}", sha2::Sha256::digest(text.as_bytes())),
            bytes: text.len(),
            text,
        })
    }
}

/// A fixture error quotes the file (a TOML error its line, a bad pattern itself, a call's
/// names): it goes to a terminal (`host test`), so no control character of the file's rides in it.
fn for_terminal(e: anyhow::Error) -> anyhow::Error {
    anyhow::anyhow!("{}", crate::text::escape_keeping_lines(&format!("{e:#}")))
}
