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
    /// Directories under which the playbook may only look at metadata: stat, list-dir, usage,
    /// largest and find, never read, tail or grep.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fs_meta: Vec<PathBuf>,
    /// Notification channels, by name, the playbook may send to.
    #[serde(default)]
    pub notify: Vec<String>,
    /// Origins (`scheme://host[:port]`, port `*` for any) the playbook may call over HTTP.
    #[serde(default)]
    pub http: Vec<String>,
    /// Host names of granted origins that may resolve to loopback, private or link-local
    /// addresses (internal services). Others are refused there; `localhost` and IP literals
    /// in `http` need no entry, the operator named the address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_private: Vec<String>,
    /// Docker rules: a call is allowed when one rule covers both its container and its verb.
    #[serde(default)]
    pub docker: Vec<DockerRule>,
    /// Approver groups (`[approvers.<group>]`) the playbook may ask before it acts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approval: Vec<String>,
}

/// Which containers (by name glob or label) a playbook may act on, and how. Globs are checked
/// when the config is read (a bad one is a config error) and matched against the names the
/// engine reports, never against what a playbook passed.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DockerRule {
    /// Container-name globs (`bot-*`); empty with empty `labels` means no container.
    #[serde(default, deserialize_with = "name_globs")]
    pub containers: Vec<String>,
    /// Label selectors, `key` or `key=value`; a container with any of them is covered.
    #[serde(default)]
    pub labels: Vec<String>,
    pub verbs: Vec<DockerVerb>,
    /// Network-name globs `network-disconnect` may act on (with a container this rule
    /// covers); empty means no network.
    #[serde(
        default,
        deserialize_with = "name_globs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub networks: Vec<String>,
}

/// Longest container/network name glob, in a rule or from a playbook (`list-containers`).
pub const MAX_NAME_GLOB_BYTES: usize = 256;

/// A container or network name glob as the host matches it: `*` and `?` never match `/`, so
/// no pattern can reach across a path separator. Errors instead of panicking on patterns
/// whose regex would be too big.
pub fn name_glob(pattern: &str) -> Result<globset::GlobSet, String> {
    if pattern.len() > MAX_NAME_GLOB_BYTES {
        return Err(format!(
            "name glob of {} bytes is longer than {MAX_NAME_GLOB_BYTES}",
            pattern.len()
        ));
    }
    let glob = globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| e.to_string())?;
    globset::GlobSetBuilder::new()
        .add(glob)
        .build()
        .map_err(|e| e.to_string())
}

fn name_globs<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let globs = Vec::<String>::deserialize(deserializer)?;
    for glob in &globs {
        name_glob(glob)
            .map_err(|e| serde::de::Error::custom(format!("docker glob {glob:?}: {e}")))?;
    }
    Ok(globs)
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DockerVerb {
    /// list, inspect, logs, stats and disk-usage.
    Read,
    List,
    Inspect,
    Logs,
    Stats,
    DiskUsage,
    Start,
    Stop,
    Restart,
    Pause,
    Unpause,
    NetworkDisconnect,
    /// Stopped containers, dangling (or unused) images and build cache; not volumes.
    Prune,
    /// Unused volumes: data loss, so never implied by `prune`.
    PruneVolumes,
}

impl DockerVerb {
    /// Whether a granted verb covers a requested one (`read` covers the read-only verbs).
    pub fn covers(self, wanted: DockerVerb) -> bool {
        use DockerVerb::*;
        self == wanted
            || (self == Read && matches!(wanted, List | Inspect | Logs | Stats | DiskUsage))
    }
}

impl Grants {
    /// Default grants of a built-in playbook; `None` for anything else.
    pub fn builtin_default(name: &str) -> Option<Grants> {
        match name {
            // `du -sh /*`, `df -h` and `find` of the seed runbook need the whole tree's
            // metadata and no file's content.
            "disk-full" => Some(Grants {
                fs_meta: vec![PathBuf::from("/")],
                notify: vec!["ops".into()],
                // `docker system df` only; pruning is the operator's call (grant `prune`).
                docker: vec![DockerRule {
                    verbs: vec![DockerVerb::DiskUsage],
                    ..DockerRule::default()
                }],
                ..Grants::default()
            }),
            // The seed runbooks restart the service's container and probe it locally; an
            // operator narrows `containers` to the real names in host.toml.
            "bot-down" | "web-down" => Some(Grants {
                notify: vec!["ops".into()],
                http: vec!["http://127.0.0.1:*".into(), "http://localhost:*".into()],
                docker: vec![DockerRule {
                    containers: vec!["*".into()],
                    verbs: vec![DockerVerb::Read, DockerVerb::Start, DockerVerb::Restart],
                    ..DockerRule::default()
                }],
                ..Grants::default()
            }),
            // Assess and preserve only; containment (pause, stop, network-disconnect) is a
            // grant the operator adds for the containers it may touch.
            "security" => Some(Grants {
                fs_read: vec![PathBuf::from("/var/log")],
                notify: vec!["security".into()],
                docker: vec![DockerRule {
                    containers: vec!["*".into()],
                    verbs: vec![DockerVerb::Read],
                    ..DockerRule::default()
                }],
                ..Grants::default()
            }),
            // Routine checks look and report; none of them restarts anything by default.
            "health-check" => Some(Grants {
                fs_meta: vec![PathBuf::from("/")],
                notify: vec!["ops".into()],
                http: vec!["http://127.0.0.1:*".into(), "http://localhost:*".into()],
                docker: vec![DockerRule {
                    containers: vec!["*".into()],
                    verbs: vec![DockerVerb::Read],
                    ..DockerRule::default()
                }],
                ..Grants::default()
            }),
            // Reads the first 512 bytes of a backup (its archive header), so content, not only
            // metadata, and only under the usual backup directory.
            "backup-verify" => Some(Grants {
                fs_read: vec![PathBuf::from("/var/backups")],
                notify: vec!["ops".into()],
                ..Grants::default()
            }),
            // Samples `docker stats`; `restart=true` also needs the operator's `restart` grant
            // for the containers it may restart.
            "high-memory" => Some(Grants {
                notify: vec!["ops".into()],
                docker: vec![DockerRule {
                    containers: vec!["*".into()],
                    verbs: vec![DockerVerb::Read],
                    ..DockerRule::default()
                }],
                ..Grants::default()
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
    /// http send and probe calls (each redirect hop is part of its call).
    pub max_http_calls: u64,
    /// What the timeline (log lines, steps, recorded calls) may add to the store.
    pub max_timeline_bytes: usize,
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
            max_http_calls: 200,
            max_timeline_bytes: 4 << 20,
        }
    }
}
