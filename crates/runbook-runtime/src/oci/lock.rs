//! `host.lock`, next to host.toml: the manifest digest each `[plugins.X] source` resolved to.
//! A tag is resolved once, when the lock has no entry for that source; from then on every run
//! uses the locked digest, whatever the tag points at, until `host lock --update`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub const LOCK_FILE: &str = "host.lock";
const HEADER: &str = "# Written by `host lock` (and by the first run of a [plugins.X] source):\n\
                      # the digest each registry source resolved to. Runs use these digests;\n\
                      # `host lock --update` resolves the tags again. Commit it with host.toml.\n";

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LockFile {
    #[serde(default)]
    pub plugins: BTreeMap<String, Locked>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Locked {
    /// The source as host.toml gives it; an entry for another source no longer applies.
    pub source: String,
    /// The manifest's digest.
    pub digest: String,
}

impl LockFile {
    /// Next to the config file.
    pub fn path_for(config: &Path) -> PathBuf {
        config.parent().unwrap_or(Path::new(".")).join(LOCK_FILE)
    }

    /// The lock at `path`; empty when there is none.
    pub fn read(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e).context(format!("reading {}", path.display())),
        };
        let lock: Self =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        for (name, locked) in &lock.plugins {
            super::reference::check_digest(&locked.digest)
                .map_err(|e| anyhow::anyhow!("{}: [plugins.{name}] digest: {e}", path.display()))?;
        }
        Ok(lock)
    }

    /// The locked digest of plugin `name`, if locked for this `source`.
    pub fn digest(&self, name: &str, source: &str) -> Option<&str> {
        self.plugins
            .get(name)
            .filter(|l| l.source == source)
            .map(|l| l.digest.as_str())
    }

    /// Written whole and renamed into place: a reader sees the old lock or the new one.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = format!(
            "{HEADER}\n{}",
            toml::to_string(self).context("encoding the lock")?
        );
        let temp = path.with_extension(format!("lock.{}.tmp", std::process::id()));
        std::fs::write(&temp, text).with_context(|| format!("writing {}", temp.display()))?;
        std::fs::rename(&temp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}
