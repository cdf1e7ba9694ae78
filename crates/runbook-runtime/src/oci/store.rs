//! Pulled artifacts on this machine, one private directory per manifest digest:
//! `<dir>/<hex>/manifest.json`, `component.wasm` (the layer) and `signatures.json` (what was
//! found beside it in the registry). An entry appears whole (built in a temporary directory and
//! renamed) or not at all. Every read re-checks what can be checked cheaply and fails closed:
//! the manifest is read through a cap and must still hash to its digest, the component must be
//! a regular file of the layer's size, and the signatures must parse within their caps. An
//! entry that fails is `Damaged`, never read as "absent" or "unsigned"; `host pull` replaces it.
//! The component's bytes are checked against the layer digest before every compile
//! (`PlaybookEngine::prepare_file_pinned`), so a changed file is refused, not run.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::manifest::Descriptor;
use super::registry::MAX_MANIFEST_BYTES;
use super::sign::SignatureRecord;

const MANIFEST_FILE: &str = "manifest.json";
const COMPONENT_FILE: &str = "component.wasm";
const SIGNATURES_FILE: &str = "signatures.json";

pub struct ArtifactStore {
    dir: PathBuf,
}

/// An artifact present on this machine.
#[derive(Debug, Clone)]
pub struct Stored {
    pub manifest_digest: String,
    /// The manifest's exact bytes (their SHA-256 is `manifest_digest`; capped by the pull).
    pub manifest: Vec<u8>,
    pub layer: Descriptor,
    pub component: PathBuf,
    pub signatures: Vec<SignatureRecord>,
}

/// A stored artifact whose files are not what was stored (truncated, edited, replaced,
/// unreadable): it is not used, whatever it still holds.
#[derive(Debug)]
pub struct Damaged {
    pub file: PathBuf,
    pub digest: String,
    pub why: String,
    /// The reference to pull it again by, when the caller knows it.
    pub reference: Option<String>,
}

impl std::fmt::Display for Damaged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}: the stored artifact {} is damaged and is not used; ",
            self.file.display(),
            self.why,
            self.digest
        )?;
        match &self.reference {
            Some(r) => write!(
                f,
                "run `host pull {r}` to fetch it again (the damaged copy is replaced)"
            ),
            None => write!(
                f,
                "run `host pull` with its reference to fetch it again, or delete {}",
                self.file.parent().unwrap_or(&self.file).display()
            ),
        }
    }
}

impl std::error::Error for Damaged {}

/// `Damaged` with the reference that would fetch it again, for any error that is one.
pub fn name_reference(e: anyhow::Error, reference: &impl std::fmt::Display) -> anyhow::Error {
    match e.downcast::<Damaged>() {
        Ok(mut damaged) => {
            damaged.reference = Some(reference.to_string());
            damaged.into()
        }
        Err(e) => e,
    }
}

impl ArtifactStore {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry_dir(&self, manifest_digest: &str) -> Result<PathBuf> {
        super::reference::check_digest(manifest_digest).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(self.dir.join(&manifest_digest["sha256:".len()..]))
    }

    /// The artifact of `manifest_digest` when it is here, its files re-checked (`Damaged` when
    /// one fails). `cap` is the component size cap: a layer over it is refused as at the pull.
    pub fn get(&self, manifest_digest: &str, cap: u64) -> Result<Option<Stored>> {
        let dir = self.entry_dir(manifest_digest)?;
        if !dir.try_exists().unwrap_or(true) {
            return Ok(None);
        }
        let damaged = |file: &str, why: String| Damaged {
            file: dir.join(file),
            digest: manifest_digest.to_string(),
            why,
            reference: None,
        };
        let manifest = read_capped(&dir.join(MANIFEST_FILE), MAX_MANIFEST_BYTES as u64)
            .map_err(|why| damaged(MANIFEST_FILE, why))?;
        let actual = super::registry::sha256_digest(&manifest);
        if actual != manifest_digest {
            return Err(damaged(MANIFEST_FILE, format!("its bytes hash to {actual}")).into());
        }
        let layer = match super::manifest::wasm_layer(&manifest, u64::MAX) {
            Ok(layer) => layer,
            Err(e) => return Err(damaged(MANIFEST_FILE, format!("{e:#}")).into()),
        };
        // Not damage: the cap may have been lowered since the pull.
        super::manifest::check_cap(&layer, cap)?;
        let component = dir.join(COMPONENT_FILE);
        match std::fs::symlink_metadata(&component) {
            Ok(meta) if meta.is_file() && meta.len() == layer.size => {}
            Ok(meta) if meta.is_file() => {
                let why = format!("{} bytes, where the layer has {}", meta.len(), layer.size);
                return Err(damaged(COMPONENT_FILE, why).into());
            }
            Ok(_) => return Err(damaged(COMPONENT_FILE, "not a regular file".into()).into()),
            Err(e) => return Err(damaged(COMPONENT_FILE, e.to_string()).into()),
        }
        let signatures = read_capped(&dir.join(SIGNATURES_FILE), super::sign::MAX_RECORDS_BYTES)
            .and_then(|bytes| super::sign::parse_records(&bytes))
            .map_err(|why| damaged(SIGNATURES_FILE, why))?;
        Ok(Some(Stored {
            manifest_digest: manifest_digest.to_string(),
            manifest,
            layer,
            component,
            signatures,
        }))
    }

    /// Hashes the stored component (a pull, not a run: a run checks it as it compiles).
    pub fn check_component(&self, stored: &Stored) -> Result<(), Damaged> {
        let damaged = |why: String| Damaged {
            file: stored.component.clone(),
            digest: stored.manifest_digest.clone(),
            why,
            reference: None,
        };
        let bytes = read_capped(&stored.component, stored.layer.size).map_err(damaged)?;
        let actual = super::registry::sha256_digest(&bytes);
        if actual != stored.layer.digest {
            return Err(damaged(format!(
                "its bytes hash to {actual}, not the layer {}",
                stored.layer.digest
            )));
        }
        Ok(())
    }

    /// Removes an entry (a damaged one, before it is pulled again): renamed away first, so
    /// no reader sees it half deleted.
    pub fn discard(&self, manifest_digest: &str) -> Result<()> {
        let dir = self.entry_dir(manifest_digest)?;
        let away = tempdir_name(&self.dir, "discarded");
        match std::fs::rename(&dir, &away) {
            Ok(()) => std::fs::remove_dir_all(&away)
                .with_context(|| format!("removing {}", away.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", dir.display())),
        }
    }

    /// A new entry: `fill` writes `component.wasm` into the temporary directory it is given.
    pub async fn put<F, Fut>(
        &self,
        manifest_digest: &str,
        manifest: &[u8],
        signatures: &[SignatureRecord],
        fill: F,
    ) -> Result<()>
    where
        F: FnOnce(PathBuf) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let target = self.entry_dir(manifest_digest)?;
        let temp = tempdir_in(&self.dir)?;
        std::fs::write(temp.join(MANIFEST_FILE), manifest)?;
        std::fs::write(
            temp.join(SIGNATURES_FILE),
            super::sign::encode_records(signatures)?,
        )?;
        let filled = fill(temp.join(COMPONENT_FILE)).await;
        if let Err(e) = filled {
            let _ = std::fs::remove_dir_all(&temp);
            return Err(e);
        }
        match std::fs::rename(&temp, &target) {
            Ok(()) => Ok(()),
            // Another process put the same digest first: theirs is as good as ours.
            Err(_) if target.join(MANIFEST_FILE).is_file() => {
                let _ = std::fs::remove_dir_all(&temp);
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&temp);
                Err(e).context(format!("storing {}", target.display()))
            }
        }
    }

    /// Signatures found later (an artifact signed after it was pulled).
    pub fn set_signatures(
        &self,
        manifest_digest: &str,
        signatures: &[SignatureRecord],
    ) -> Result<()> {
        let dir = self.entry_dir(manifest_digest)?;
        let temp = dir.join(format!(".signatures.{}.json", std::process::id()));
        std::fs::write(&temp, super::sign::encode_records(signatures)?)?;
        std::fs::rename(&temp, dir.join(SIGNATURES_FILE))?;
        Ok(())
    }
}

fn tempdir_name(dir: &Path, kind: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    dir.join(format!(
        ".{kind}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

fn tempdir_in(dir: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let path = tempdir_name(dir, "partial");
    let _ = std::fs::remove_dir_all(&path);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    Ok(path)
}

/// A regular file's bytes, refused (with why) when it is missing, a link, a FIFO or a device,
/// or over `cap` bytes, before more than `cap` bytes are read.
fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, String> {
    use rustix::fs::OFlags;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32)
        .open(path)
        .map_err(|e| format!("unreadable ({e})"))?;
    let meta = file.metadata().map_err(|e| format!("unreadable ({e})"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > cap {
        return Err(format!("{} bytes, over the cap of {cap}", meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("unreadable ({e})"))?;
    if bytes.len() as u64 > cap {
        return Err(format!("over the cap of {cap} bytes"));
    }
    Ok(bytes)
}
