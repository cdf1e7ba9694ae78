//! Registry playbooks (`[plugins.X] source = "oci://…"`): pinned to a manifest digest by
//! host.lock (resolved and written on first use), pulled once into the artifact store, held
//! to the `[trust]` keys, and only then compiled, from bytes checked against the digest.

use std::path::PathBuf;
use std::sync::Arc;

use super::*;
use crate::catalog::Pinned;
use crate::oci::{self, ArtifactRef, ArtifactStore, Stored};

/// Hands over an artifact when the registry cannot be reached (a fleet node asks its server).
#[async_trait::async_trait]
pub trait ArtifactFallback: Send + Sync {
    /// The manifest, the component and the signatures of `digest`, as the other party has them;
    /// everything is checked here before it is stored.
    async fn artifact(&self, digest: &str)
    -> Result<(Vec<u8>, Vec<u8>, Vec<oci::SignatureRecord>)>;
}

impl Host {
    /// Where pulled artifacts are kept: beside the compile cache.
    pub fn artifact_store(&self) -> ArtifactStore {
        let base = self
            .cache_dir
            .clone()
            .or_else(crate::engine::default_cache_dir)
            .unwrap_or_else(|| std::env::temp_dir().join("runbook-host-components"));
        ArtifactStore::new(base.join("oci"))
    }

    /// `host agent`: where artifacts come from when the registry does not answer.
    pub fn use_artifact_fallback(&self, fallback: std::sync::Arc<dyn ArtifactFallback>) {
        let _ = self.artifact_fallback.set(fallback);
    }

    /// The registry playbooks of the config, each with its locked digest when it has one.
    pub fn registry_entries(&self) -> Vec<(String, Pinned)> {
        let sources = self.config.registry_sources();
        if sources.is_empty() {
            return Vec::new();
        }
        // An unreadable lock pins nothing here; loading the playbook then says why.
        let lock = self.pins().unwrap_or_default();
        sources
            .into_iter()
            .map(|(name, source)| {
                let digest = source
                    .digest
                    .clone()
                    .or_else(|| lock.digest(&name, &source.to_string()).map(str::to_string));
                let pinned = Pinned {
                    source,
                    digest,
                    signer: None,
                };
                (name, pinned)
            })
            .collect()
    }

    /// host.lock as this process pins by: read on first use, then kept until `reload_pins`.
    fn pins(&self) -> Result<Arc<oci::lock::LockFile>> {
        if let Some(pins) = &*self.pins.read().unwrap() {
            return Ok(pins.clone());
        }
        let lock = Arc::new(self.read_lock()?);
        Ok(self.pins.write().unwrap().get_or_insert(lock).clone())
    }

    /// host.lock as it is on disk now (checked; not yet used).
    pub fn read_lock(&self) -> Result<oci::lock::LockFile> {
        match self.config.lock_path() {
            Some(path) => oci::lock::LockFile::read(&path),
            None => Ok(Default::default()),
        }
    }

    /// `host serve` on SIGHUP: runs from now on use `lock` (read by `read_lock`). Returns the
    /// registry playbooks whose digest changed, whose loaded copies are to be dropped.
    pub fn reload_pins(&self, lock: oci::lock::LockFile) -> Vec<String> {
        let old = self.pins().unwrap_or_default();
        let changed = self
            .config
            .registry_sources()
            .into_iter()
            .filter(|(name, source)| {
                let source = source.to_string();
                old.digest(name, &source) != lock.digest(name, &source)
            })
            .map(|(name, _)| name)
            .collect();
        *self.pins.write().unwrap() = Some(Arc::new(lock));
        changed
    }

    /// The digest `name`'s source is locked to; resolved through the registry and written to
    /// host.lock when the lock has none for this source.
    pub async fn pin(&self, name: &str, source: &ArtifactRef) -> Result<String> {
        if let Some(digest) = &source.digest {
            return Ok(digest.clone());
        }
        let key = source.to_string();
        if let Some(digest) = self.pins()?.digest(name, &key) {
            return Ok(digest.to_string());
        }
        let _one_at_a_time = self.pinning.lock().await;
        // Another process (or `host lock`) may have pinned it since: its pin is kept.
        let mut lock = self.read_lock()?;
        let digest = match lock.digest(name, &key) {
            Some(digest) => digest.to_string(),
            None => {
                let options = oci::options_for(&self.config.registries, &source.registry);
                let digest = oci::resolve(source, &options).await?;
                let locked = oci::lock::Locked {
                    source: key.clone(),
                    digest: digest.clone(),
                };
                match self.config.lock_path() {
                    Some(path) => {
                        lock.plugins.insert(name.to_string(), locked);
                        lock.write(&path)?;
                        tracing::info!("{name}: {source} locked to {digest} in {}", path.display());
                    }
                    None => {
                        tracing::warn!("{name}: {source} is {digest} (no host.toml: not locked)")
                    }
                }
                digest
            }
        };
        // Only this pin joins the ones in use; others changed on disk wait for a SIGHUP.
        let mut pins = self.pins.write().unwrap();
        let mut updated = pins.as_deref().cloned().unwrap_or_default();
        updated.plugins.insert(
            name.to_string(),
            oci::lock::Locked {
                source: key,
                digest: digest.clone(),
            },
        );
        *pins = Some(Arc::new(updated));
        Ok(digest)
    }

    /// Loads a registry playbook: the digest pinned (or named by the server), the artifact from
    /// the store or pulled, its signature held to `name`'s trusted keys, then compiled from
    /// bytes whose SHA-256 is the layer digest.
    pub async fn prepare_registry(&self, name: &str, pinned: &Pinned) -> Result<Prepared> {
        let digest = match &pinned.digest {
            Some(digest) => digest.clone(),
            None => self.pin(name, &pinned.source).await?,
        };
        let reference = pinned.source.pinned(&digest);
        let at = || format!("playbook {name} ({reference})");
        let mut stored = self.artifact(&reference).await.with_context(at)?;
        let keys = self.with_policy(|c| c.trust_keys_for(name).to_vec());
        let signer = self
            .check_trust(&reference, &mut stored, &keys)
            .await
            .with_context(at)?;
        let cap = self.config.max_component_mib().saturating_mul(1 << 20);
        let file = crate::catalog::open_component(&stored.component, cap)
            .map_err(UsageError::from)
            .with_context(at)?;
        let expected = layer_sha256(&stored)?;
        let (pre, load) = self
            .engine
            .prepare_file_pinned(&file, &stored.component, cap, expected)
            .map_err(|e| match e.downcast::<crate::engine::PinMismatch>() {
                Ok(mismatch) => oci::Damaged {
                    file: stored.component.clone(),
                    digest: stored.manifest_digest.clone(),
                    why: format!(
                        "its bytes hash to {}, not the layer {}",
                        mismatch.actual, stored.layer.digest
                    ),
                    reference: Some(reference.to_string()),
                }
                .into(),
                Err(e) => e,
            })
            .with_context(at)?;
        let source = PluginSource {
            name: name.to_string(),
            origin: Origin::Registry(Pinned {
                source: pinned.source.clone(),
                digest: Some(digest),
                signer,
            }),
            wasm: Default::default(),
        };
        self.describe_prepared(source, pre, load).await
    }

    /// The artifact of a pinned reference: stored here, else pulled from its registry, else
    /// (a fleet node cut off from the registry) handed over by the server and checked.
    async fn artifact(&self, reference: &ArtifactRef) -> Result<Stored> {
        let store = self.artifact_store();
        let cap = self.config.max_component_mib().saturating_mul(1 << 20);
        let options = oci::options_for(&self.config.registries, &reference.registry);
        let pulled = oci::fetch(&store, reference, &options, cap).await;
        let Some(fallback) = self.artifact_fallback.get() else {
            return pulled;
        };
        match pulled {
            Ok(stored) => Ok(stored),
            // Wrong bytes from the registry, or a damaged stored copy, are refused, not
            // routed around.
            Err(e)
                if e.chain()
                    .any(|c| c.is::<oci::registry::Refused>() || c.is::<oci::Damaged>()) =>
            {
                Err(e)
            }
            Err(e) => {
                let digest = reference.digest.clone().unwrap_or_default();
                tracing::warn!("{reference}: {e:#}; asking the server for {digest}");
                let (manifest, component, signatures) =
                    fallback.artifact(&digest).await.with_context(|| {
                        format!("the registry failed ({e:#}), and so did the server")
                    })?;
                oci::store_handed(&store, &digest, &manifest, &component, &signatures, cap).await
            }
        }
    }

    /// The trusted key that signed the artifact; `None` when `keys` is empty (no signature
    /// required). A signature this host verified before (a MACed fact in the compile cache)
    /// is not verified again; else the signatures stored with the artifact are tried, then the
    /// registry's, once.
    async fn check_trust(
        &self,
        reference: &ArtifactRef,
        stored: &mut Stored,
        keys: &[PathBuf],
    ) -> Result<Option<String>> {
        if keys.is_empty() {
            return Ok(None);
        }
        let trusted = oci::load_keys(keys)?;
        let digest = stored.manifest_digest.clone();
        if let Some(known) = trusted
            .iter()
            .find(|k| self.engine.knows_signature(&digest, &k.fingerprint()))
        {
            return Ok(Some(known.name.clone()));
        }
        let verified = match oci::sign::verify(&digest, &stored.signatures, &trusted) {
            Ok(key) => Ok(key),
            Err(_) => {
                let options = oci::options_for(&self.config.registries, &reference.registry);
                let store = self.artifact_store();
                if let Err(e) = oci::refresh_signatures(&store, reference, &options, stored).await {
                    tracing::warn!("{reference}: signatures could not be read again: {e:#}");
                }
                oci::sign::verify(&digest, &stored.signatures, &trusted)
            }
        };
        match verified {
            Ok(key) => {
                self.engine.remember_signature(&digest, &key.fingerprint());
                Ok(Some(key.name.clone()))
            }
            Err(e) => Err(anyhow::anyhow!("refused before compiling: {e}")),
        }
    }

    /// A node runs the playbook the server named by digest: the node's own `[plugins.X]`
    /// grants, limits and trust apply; the bytes must be the ones the server named.
    pub async fn prepare_named_digest(&self, name: &str, origin: &str) -> Result<Prepared> {
        let pinned = Pinned::parse(origin)
            .filter(|p| p.digest.is_some())
            .with_context(|| format!("the server named no digest for {name} ({origin:?})"))?;
        self.prepare_registry(
            name,
            &Pinned {
                signer: None,
                ..pinned
            },
        )
        .await
    }
}

fn layer_sha256(stored: &Stored) -> Result<[u8; 32]> {
    let hex = stored
        .layer
        .digest
        .strip_prefix("sha256:")
        .context("the layer digest is not sha256")?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex, &mut out).context("the layer digest is not hex")?;
    Ok(out)
}
