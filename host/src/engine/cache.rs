//! The on-disk compile cache, trusted only when it proves itself. A `.cwasm` is native code the
//! host maps and runs with a playbook's grants, so the directory must be private to this user,
//! and an entry is used only when its record, an HMAC-SHA256 under a per-cache secret, binds it
//! to the wasm being loaded: (source sha256, cwasm sha256, engine compatibility hash). An entry
//! that fails the check is never deserialized; the caller recompiles and rewrites it.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const KEY_FILE: &str = "cache.key";
const KEY_LEN: usize = 32;
/// Binds records to this scheme: a MAC of another format never verifies here.
const RECORD_DOMAIN: &[u8] = b"runbook-host compile cache record v1\0";
/// A compiled component is a few times its wasm; nothing legitimate comes near this.
const MAX_ENTRY_BYTES: u64 = 2 << 30;

pub struct CompileCache {
    dir: PathBuf,
    key: [u8; KEY_LEN],
}

/// What the cache holds for a component.
pub enum Lookup {
    /// Verified against its record: safe to deserialize.
    Trusted(Vec<u8>),
    /// Nothing cached yet.
    Absent,
    /// Something is there that this host cannot vouch for (why, in words).
    Untrusted(String),
}

impl CompileCache {
    /// Creates the directory (0700) if needed, refuses one that others can write, and loads
    /// (or creates) the cache's secret.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| anyhow::anyhow!("creating compile cache {}: {e}", dir.display()))?;
        check_private_dir(dir)?;
        let key = load_or_create_key(&dir.join(KEY_FILE))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            key,
        })
    }

    /// Where the compiled form of `wasm_sha256` for this engine configuration lives.
    pub fn entry_path(&self, wasm_sha256: &[u8; 32], compat: u64) -> PathBuf {
        self.dir
            .join(format!("{}-{compat:016x}.cwasm", hex::encode(wasm_sha256)))
    }

    pub fn lookup(&self, entry: &Path, wasm_sha256: &[u8; 32], compat: u64) -> Lookup {
        let cwasm = match read_private_file(entry, MAX_ENTRY_BYTES) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Absent,
            Err(e) => return Lookup::Untrusted(format!("unreadable: {e}")),
        };
        let record = match read_private_file(&record_path(entry), 256) {
            Ok(record) => record,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Lookup::Untrusted("it has no record".into());
            }
            Err(e) => return Lookup::Untrusted(format!("its record is unreadable: {e}")),
        };
        let Ok(tag) = hex::decode(record.trim_ascii()) else {
            return Lookup::Untrusted("its record is malformed".into());
        };
        if self
            .mac(wasm_sha256, &Sha256::digest(&cwasm).into(), compat)
            .verify_slice(&tag)
            .is_err()
        {
            return Lookup::Untrusted(
                "it does not match its record (substituted, or written for another component)"
                    .into(),
            );
        }
        Lookup::Trusted(cwasm)
    }

    /// Writes the entry and then its record, each atomically (a crash in between leaves an
    /// unrecorded entry, which is recompiled).
    pub fn store(
        &self,
        entry: &Path,
        wasm_sha256: &[u8; 32],
        compat: u64,
        cwasm: &[u8],
    ) -> std::io::Result<()> {
        write_atomically(entry, cwasm)?;
        let tag = self
            .mac(wasm_sha256, &Sha256::digest(cwasm).into(), compat)
            .finalize()
            .into_bytes();
        write_atomically(&record_path(entry), hex::encode(tag).as_bytes())
    }

    fn mac(&self, wasm_sha256: &[u8; 32], cwasm_sha256: &[u8; 32], compat: u64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key size");
        mac.update(RECORD_DOMAIN);
        mac.update(wasm_sha256);
        mac.update(cwasm_sha256);
        mac.update(&compat.to_be_bytes());
        mac
    }
}

fn record_path(entry: &Path) -> PathBuf {
    let mut name = entry.as_os_str().to_owned();
    name.push(".hmac");
    PathBuf::from(name)
}

/// Owned by this user and not writable by group or others: whoever can write the cache dir
/// chooses the native code this host runs.
fn check_private_dir(dir: &Path) -> Result<()> {
    let meta = std::fs::metadata(dir)
        .map_err(|e| anyhow::anyhow!("compile cache {}: {e}", dir.display()))?;
    if !meta.is_dir() {
        bail!("compile cache {} is not a directory", dir.display());
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        bail!(
            "compile cache {dir} is owned by uid {owner}, not by this user (uid {me}); whoever \
             owns it chooses the native code this host runs. Fix: `chown {me} {dir} && chmod 700 \
             {dir}`, or use a directory of your own (--cache-dir, cache-dir in host.toml)",
            dir = dir.display(),
            owner = meta.uid(),
        );
    }
    if meta.mode() & 0o022 != 0 {
        bail!(
            "compile cache {dir} is writable by group or others (mode {mode:04o}); whoever can \
             write there chooses the native code this host runs. Fix: `chmod 700 {dir}`, or use \
             a private directory (--cache-dir, cache-dir in host.toml)",
            dir = dir.display(),
            mode = meta.mode() & 0o7777,
        );
    }
    Ok(())
}

/// The cache's secret: 32 random bytes in a 0600 file of this user. Created once, published with
/// a hard link so two hosts starting together agree on one key.
fn load_or_create_key(path: &Path) -> Result<[u8; KEY_LEN]> {
    if !path.exists() {
        let mut key = [0u8; KEY_LEN];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut key))
            .map_err(|e| anyhow::anyhow!("reading /dev/urandom for the cache key: {e}"))?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(&key).and_then(|_| f.sync_all()));
        let published = written.and_then(|_| std::fs::hard_link(&tmp, path));
        let _ = std::fs::remove_file(&tmp);
        match published {
            Ok(()) => return Ok(key),
            // Another host made one first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => bail!("creating the compile cache key {}: {e}", path.display()),
        }
    }
    let fix = format!(
        "Fix: `rm {}` (a new key is made; cached components are recompiled once)",
        path.display()
    );
    let bytes = read_private_file(path, KEY_LEN as u64 + 1)
        .map_err(|e| anyhow::anyhow!("compile cache key {}: {e}. {fix}", path.display()))?;
    bytes.try_into().map_err(|bytes: Vec<u8>| {
        anyhow::anyhow!(
            "compile cache key {} is {} bytes, not {KEY_LEN}. {fix}",
            path.display(),
            bytes.len()
        )
    })
}

/// Reads a regular file of this user that group and others cannot write, opened without
/// following a symlink or blocking on a FIFO, at most `cap` bytes.
fn read_private_file(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    use rustix::fs::OFlags;
    let refuse = |what: String| std::io::Error::new(std::io::ErrorKind::PermissionDenied, what);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(refuse("not a regular file".into()));
    }
    if meta.uid() != rustix::process::geteuid().as_raw() || meta.mode() & 0o022 != 0 {
        return Err(refuse(format!(
            "owned by uid {} with mode {:04o}: not private to this user",
            meta.uid(),
            meta.mode() & 0o7777
        )));
    }
    if meta.len() > cap {
        return Err(refuse(format!("{} bytes, over {cap}", meta.len())));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    drop(file);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_trusted_only_for_the_component_it_was_recorded_for() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(&dir.path().join("c")).unwrap();
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let entry_a = cache.entry_path(&a, 7);
        let entry_b = cache.entry_path(&b, 7);
        cache.store(&entry_a, &a, 7, b"code of a").unwrap();
        cache.store(&entry_b, &b, 7, b"code of b").unwrap();
        assert!(matches!(cache.lookup(&entry_a, &a, 7), Lookup::Trusted(c) if c == b"code of a"));
        assert!(matches!(
            cache.lookup(&entry_a, &a, 8),
            Lookup::Untrusted(_)
        ));
        // b's entry and record copied over a's: the record names b's source.
        std::fs::copy(&entry_b, &entry_a).unwrap();
        assert!(matches!(
            cache.lookup(&entry_a, &a, 7),
            Lookup::Untrusted(_)
        ));
        std::fs::copy(record_path(&entry_b), record_path(&entry_a)).unwrap();
        assert!(matches!(
            cache.lookup(&entry_a, &a, 7),
            Lookup::Untrusted(_)
        ));
        std::fs::remove_file(record_path(&entry_a)).unwrap();
        assert!(
            matches!(cache.lookup(&entry_a, &a, 7), Lookup::Untrusted(m) if m.contains("no record"))
        );
        assert!(matches!(
            cache.lookup(&cache.entry_path(&[3; 32], 7), &[3; 32], 7),
            Lookup::Absent
        ));
        // A second open of the same dir uses the same key.
        let again = CompileCache::open(&dir.path().join("c")).unwrap();
        assert!(matches!(again.lookup(&entry_b, &b, 7), Lookup::Trusted(_)));
    }

    #[test]
    fn a_dir_others_can_write_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = CompileCache::open(&open).err().unwrap().to_string();
        assert!(
            err.contains("mode 0777") && err.contains("chmod 700"),
            "{err}"
        );
    }
}
