//! `host.toml`: where plugins live, the compile cache, notification channels, and per-plugin
//! grants and limits. Unknown keys are errors (with line and column) so a typo never silently
//! widens or narrows a grant.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::caps::notify::ChannelConfig;
use crate::policy::{Grants, Limits};

/// Looked up when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "host.toml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Directories of `*.wasm` playbooks; a file named like a built-in overrides it.
    #[serde(default)]
    pub plugin_dirs: Vec<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    /// The run store (SQLite file).
    pub store: Option<PathBuf>,
    #[serde(default)]
    pub notify: BTreeMap<String, ChannelConfig>,
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginConfig>,
    /// The file this was read from, for messages and relative paths.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PluginConfig {
    /// Replaces the built-in default grants entirely.
    pub grants: Option<Grants>,
    pub deadline_secs: Option<u64>,
    pub memory_mib: Option<usize>,
    pub max_notifications: Option<u64>,
}

impl Config {
    /// Reads `path`; relative paths inside are taken relative to the file's directory.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let mut config: Config =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for dir in &mut config.plugin_dirs {
            *dir = base.join(&*dir);
        }
        for path in [&mut config.cache_dir, &mut config.store]
            .into_iter()
            .flatten()
        {
            *path = base.join(&*path);
        }
        for plugin in config.plugins.values_mut() {
            if let Some(grants) = &mut plugin.grants {
                for root in &mut grants.fs_read {
                    *root = base.join(&*root);
                }
            }
        }
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// `--config` if given, else `./host.toml` if present, else built-in defaults.
    pub fn discover(explicit: Option<&Path>) -> Result<Config> {
        match explicit {
            Some(path) => Config::load(path),
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                Config::load(Path::new(DEFAULT_CONFIG_FILE))
            }
            None => Ok(Config::default()),
        }
    }

    /// The operator's grants for a plugin, else the built-in defaults (built-ins only).
    pub fn grants_for(&self, name: &str, builtin: bool) -> Grants {
        if let Some(grants) = self.plugins.get(name).and_then(|p| p.grants.clone()) {
            return grants;
        }
        if builtin {
            Grants::builtin_default(name).unwrap_or_default()
        } else {
            Grants::default()
        }
    }

    pub fn limits_for(&self, name: &str) -> Limits {
        let mut limits = Limits::default();
        if let Some(plugin) = self.plugins.get(name) {
            if let Some(secs) = plugin.deadline_secs {
                limits.deadline = Duration::from_secs(secs);
            }
            if let Some(mib) = plugin.memory_mib {
                limits.memory_bytes = mib << 20;
            }
            if let Some(n) = plugin.max_notifications {
                limits.max_notifications = n;
            }
        }
        limits
    }
}
