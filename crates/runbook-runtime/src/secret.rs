//! A secret named in host.toml: an environment variable or a file, never the value inlined.
//! Below `config`, `notify` and `approval`, which all hold secrets and load them when used (a
//! rotated file applies at once); errors name the variable or file, never the value.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secret {
    pub env: Option<String>,
    pub file: Option<PathBuf>,
}

impl Secret {
    /// The value; errors name the variable or file, never the value.
    pub fn load(&self) -> Result<String> {
        match (&self.env, &self.file) {
            (Some(var), None) => std::env::var(var)
                .map_err(|_| anyhow::anyhow!("secret: environment variable {var} is not set")),
            (None, Some(path)) => Ok(std::fs::read_to_string(path)
                .with_context(|| format!("secret: reading {}", path.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_string()),
            _ => anyhow::bail!("a secret needs exactly one of `env` or `file`"),
        }
    }
}
