//! Loading a playbook: find it by name (or, from the CLI, a path), compile it or load it from the
//! cache, link it, and ask it to describe itself under a deadline and size caps of its own.

use super::ending::trap_reason;
use super::execute::new_store;
use super::*;

impl Host {
    /// Finds a playbook by name (a built-in or a plugin-dir entry, never a path), loads and
    /// links it and asks it to describe itself.
    pub async fn prepare(&self, name: &str) -> Result<Prepared> {
        let entry = self.entry(name).await.map_err(UsageError::from)?;
        self.prepare_entry(&entry).await
    }

    /// Every playbook, each under the name its describe() gives (one rule for every language
    /// and file name: grants, routes, `host run` and the store all use it). A file's name
    /// comes from the compile cache's record when it has one; else the file is loaded and
    /// described (compiled once, then cached).
    pub async fn playbooks(&self) -> Vec<CatalogEntry> {
        self.catalog
            .index(self.named_files().await, self.registry_entries())
    }

    /// Every plugin-dir file in precedence order with the name its describe() gives (`None`:
    /// it cannot be described). Files not named yet are described side by side: one slow
    /// describe() costs its deadline, not the sum of all of them.
    pub async fn named_files(&self) -> Vec<(std::path::PathBuf, Option<String>)> {
        let files = self.catalog.files();
        let names = futures::future::join_all(files.iter().map(|path| self.file_name_of(path)));
        files.iter().cloned().zip(names.await).collect()
    }

    /// The describe() name of a plugin-dir file: this process's memo, the compile cache's
    /// record, else the file loaded and described.
    async fn file_name_of(&self, path: &std::path::Path) -> Option<String> {
        let identity = file_identity(path);
        let memo = || self.file_names.lock().unwrap().get(path).cloned();
        if let (Some(known), Some(identity)) = (memo(), identity)
            && known.identity == identity
        {
            return known.name;
        }
        let name = match self.engine.recorded_name(path) {
            Some(name) => Some(name),
            None => self
                .prepare_path(crate::catalog::stem(path), path)
                .await
                .ok()
                .map(|p| p.description.name),
        };
        if let Some(identity) = identity {
            let named = NamedFile {
                identity,
                name: name.clone(),
            };
            self.file_names
                .lock()
                .unwrap()
                .insert(path.to_path_buf(), named);
        }
        name
    }

    /// The catalog entry of a playbook name (see `playbooks`).
    pub async fn entry(&self, name: &str) -> Result<CatalogEntry, crate::catalog::FindError> {
        crate::catalog::check_name(name)?;
        Catalog::entry_in(name, self.playbooks().await)
    }

    pub async fn prepare_entry(&self, entry: &CatalogEntry) -> Result<Prepared> {
        match &entry.origin {
            Origin::File(path) => return self.prepare_path(entry.name.clone(), path).await,
            Origin::Registry(pinned) => return self.prepare_registry(&entry.name, pinned).await,
            Origin::BuiltIn => {}
        }
        let source = self.catalog.load(entry).map_err(UsageError::from)?;
        self.prepare_source(source).await
    }

    /// A component file named by the operator on the command line; nothing else loads paths.
    pub async fn prepare_file(&self, path: &std::path::Path) -> Result<Prepared> {
        self.prepare_path(crate::catalog::stem(path), path).await
    }

    /// A component file: checked as the catalog checks it, then loaded through the compile
    /// cache's memo, which spares reading and hashing an unchanged file. Named by its
    /// describe() (`name`, its file name, only until it has described itself).
    async fn prepare_path(&self, name: String, path: &std::path::Path) -> Result<Prepared> {
        let origin = Origin::File(path.to_path_buf());
        // A file carries no signature: where signatures are required, it is not compiled.
        if !self.with_policy(|c| c.trust_keys_for(&name).is_empty()) {
            anyhow::bail!(
                "playbook {name} ({origin}): refused: [trust] requires a signature, and a \
                 plugin-dir file carries none; publish it to a registry and sign it \
                 (`host push`, `host sign`)"
            );
        }
        let cap = self.config.max_component_mib().saturating_mul(1 << 20);
        let file = crate::catalog::open_component(path, cap).map_err(UsageError::from)?;
        let (pre, load) = self
            .engine
            .prepare_file(&file, path, cap)
            .with_context(|| format!("playbook {name} ({origin})"))?;
        let source = PluginSource {
            name,
            origin,
            wasm: Default::default(),
        };
        self.describe_prepared(source, pre, load).await
    }

    pub async fn prepare_source(&self, source: PluginSource) -> Result<Prepared> {
        let (pre, load) = self
            .engine
            .prepare(&source.wasm, &source.name)
            .with_context(|| format!("playbook {} ({})", source.name, source.origin))?;
        self.describe_prepared(source, pre, load).await
    }

    /// The description recorded in the compile cache when it holds a verified one (a Python
    /// component's second instantiation costs more than the rest of its run), else describe().
    pub(super) async fn describe_prepared(
        &self,
        source: PluginSource,
        pre: VersionedPre<RunState>,
        mut load: LoadReport,
    ) -> Result<Prepared> {
        let description = match self.engine.recorded_description(&load) {
            Some(recorded) => {
                load.describe = "recorded";
                recorded
            }
            None => {
                let described = self.describe(&pre).await.with_context(|| {
                    format!(
                        "playbook {} ({}): describe() failed",
                        source.name, source.origin
                    )
                })?;
                self.engine.record_description(&load, &described);
                described
            }
        };
        let mut source = source;
        // A registry playbook keeps the name host.toml gives it.
        let registry = matches!(source.origin, Origin::Registry(_));
        if !registry && crate::catalog::check_name(&description.name).is_ok() {
            source.name = description.name.clone();
        }
        Ok(Prepared {
            source,
            pre,
            load,
            description,
        })
    }

    /// describe() gets a deadline of its own, short, enforced both ways: the epoch deadline
    /// stops a guest spinning on the CPU, the timeout one parked in a host or WASI call. What it
    /// returns is held to the description caps.
    async fn describe(&self, pre: &VersionedPre<RunState>) -> Result<Description> {
        let limits = Limits {
            deadline: description::DESCRIBE_DEADLINE,
            ..Limits::default()
        };
        let state = RunState::new(
            Arc::new(Grants::default()),
            limits.clone(),
            true,
            Timeline::new(None),
            self.services(),
        );
        // Dropped after the store, which gives its instance back to the pool.
        let _slot = self.engine.instance_slot().await;
        let mut store = new_store(&self.engine, state);
        let called = tokio::time::timeout(limits.deadline, async {
            let playbook = pre.instantiate_async(&mut store).await?;
            playbook.call_describe(&mut store).await
        })
        .await;
        let description = match called {
            Ok(Ok(description)) => description,
            Ok(Err(trap)) => anyhow::bail!(trap_reason(&trap, &store.data().guest_output())),
            Err(_) => anyhow::bail!(
                "limit exceeded: describe() did not answer within its deadline of {}s",
                limits.deadline.as_secs()
            ),
        };
        description::check(&description)?;
        Ok(description)
    }
}

/// What `Host::playbooks` learnt of a file, and the file's state when it did.
#[derive(Clone, PartialEq)]
pub(super) struct NamedFile {
    identity: (u64, u64, i64, i64, i64, i64),
    name: Option<String>,
}

fn file_identity(path: &std::path::Path) -> Option<(u64, u64, i64, i64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ))
}
