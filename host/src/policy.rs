//! What a playbook may do (grants) and how much (limits). Deny by default: a plugin the
//! operator has not configured gets no grants at all; built-in playbooks carry defaults so
//! `host run disk-full` works with no config, and a config entry replaces those defaults.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Grants {
    /// Directories (and everything under them) the playbook may read.
    #[serde(default)]
    pub fs_read: Vec<PathBuf>,
    /// Notification channels, by name, the playbook may send to.
    #[serde(default)]
    pub notify: Vec<String>,
}

impl Grants {
    /// Default grants of a built-in playbook; `None` for anything else.
    pub fn builtin_default(name: &str) -> Option<Grants> {
        match name {
            // `du -sh /*` and `df -h` of the seed runbook need the whole tree, read-only.
            "disk-full" => Some(Grants {
                fs_read: vec![PathBuf::from("/")],
                notify: vec!["ops".into()],
            }),
            _ => None,
        }
    }
}

/// Per-run limits. Exceeding one ends the run as failed with the limit named.
#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    pub deadline: Duration,
    pub memory_bytes: usize,
    pub max_calls: u64,
    pub max_log_lines: u64,
    pub max_notifications: u64,
    pub max_artifact_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(300),
            memory_bytes: 64 << 20,
            max_calls: 10_000,
            max_log_lines: 10_000,
            max_notifications: 20,
            max_artifact_bytes: 8 << 20,
        }
    }
}
