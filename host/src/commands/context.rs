//! What the subcommands that load the config share: the config (with --plugin-dir), the compile
//! cache, where runs are stored, and the `Host` built from them. Commands that only write files or
//! ask a server (wit, new, health, completions, man) never build one.

use std::sync::Arc;

use anstream::eprintln;

use super::Globals;
use crate::commands::ConfigError;
use crate::config::Config;
use crate::engine::default_cache_dir;
use crate::run::Host;
use crate::store::{Location, Store, default_store_path};
use crate::style;

pub struct Context {
    pub host: Host,
    /// --store, else the config's `store`, else the default file; `None` only without a home.
    pub store: Option<Location>,
    /// The config's `store-connections` (a PostgreSQL pool's size).
    pub connections: Option<usize>,
    /// The config's `admission-batch` (admissions per PostgreSQL transaction).
    pub admission_batch: Option<usize>,
}

impl Context {
    /// For a command run once: instances on demand, and a notice before a slow first compile.
    pub fn load(globals: Globals) -> anyhow::Result<Self> {
        Self::build(globals, false)
    }

    /// `host serve` and `host agent` run playbooks over and over: an instance pool up front.
    pub fn for_service(globals: Globals) -> anyhow::Result<Self> {
        Self::build(globals, true)
    }

    /// The config (--config, else ./host.toml, else defaults) with --plugin-dir added, the
    /// compile cache (none with --no-cache) and the store's location, then the `Host`.
    fn build(globals: Globals, service: bool) -> anyhow::Result<Self> {
        let mut config = Config::discover(globals.config.as_deref())
            .map_err(|e| ConfigError(format!("{e:#}")))?;
        config.plugin_dirs.extend(globals.plugin_dirs);
        let cache_dir = if globals.no_cache {
            None
        } else {
            globals
                .cache_dir
                .or_else(|| config.cache_dir.clone())
                .or_else(default_cache_dir)
        };
        let connections = config.store_connections;
        let admission_batch = config.admission_batch;
        let store = globals
            .store
            .or_else(|| config.store.clone())
            .map(|s| Location::parse(&s))
            .or_else(|| default_store_path().map(Location::Sqlite));
        let host = if service {
            Host::for_server(config, cache_dir)?
        } else {
            let host = Host::new(config, cache_dir)?;
            // Seconds for a Python playbook: said before the silence, not after it.
            host.engine.on_first_compile(|name| {
                eprintln!("compiling {name} (first run; cached afterwards)…");
            });
            host
        };
        Ok(Self {
            host,
            store,
            connections,
            admission_batch,
        })
    }

    /// Where runs are stored, for the commands that cannot work without them.
    pub fn store_location(&self) -> anyhow::Result<&Location> {
        self.store
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no run store: pass --store FILE|URL"))
    }

    /// The run store, opened (created and migrated if new); an error if there is none.
    pub async fn open_store(&self) -> anyhow::Result<Arc<Store>> {
        crate::store::open_tuned(
            self.store_location()?,
            self.connections,
            self.admission_batch,
        )
        .await
    }

    /// `host run` and `host notify` work without a store: when it cannot be opened they say so
    /// and go on, unstored.
    pub async fn attach_store_if_any(&mut self) {
        let Some(location) = &self.store else { return };
        match crate::store::open_tuned(location, self.connections, self.admission_batch).await {
            Ok(store) => self.host.store = Some(store),
            Err(e) => eprintln!(
                "{} runs and notifications will not be stored: {e:#}",
                style::warning()
            ),
        }
    }
}
