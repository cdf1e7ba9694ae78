//! The on-disk compile cache, trusted only when it proves itself. A `.cwasm` is native code the
//! host maps and runs with a playbook's grants, so the directory must be private to this user,
//! and an entry is used only when its record, an HMAC-SHA256 under a per-cache secret, binds it
//! to the wasm being loaded: (source sha256, cwasm BLAKE3, engine compatibility hash). An entry
//! that fails the check is never deserialized; the caller recompiles and rewrites it.
//!
//! Hashing a 17 MB Python component, or its 35 MB cwasm, on every `host run` costs more than
//! the run, so the cache also keeps memos, MACed under the same key: per component file
//! (device, inode, size, mtime, ctime) → its sha256, and per entry the same identity → its
//! BLAKE3. A component's memo only says which entry to look up; an entry's memo only says what
//! its bytes hash to, and the record is still checked against that hash. Either memo holds only
//! while the file is the same inode, unchanged since (a write moves the ctime, which no one but
//! the kernel sets), so a forged, transplanted or stale memo cannot bring in other code.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Result, bail};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const KEY_FILE: &str = "cache.key";
const KEY_LEN: usize = 32;
/// Binds records to this scheme: a MAC of another format never verifies here.
const RECORD_DOMAIN: &[u8] = b"runbook-host compile cache record v2\0";
const MEMO_DOMAIN: &[u8] = b"runbook-host compile cache source memo v1\0";
const ENTRY_MEMO_DOMAIN: &[u8] = b"runbook-host compile cache entry memo v1\0";
const DESCRIPTION_DOMAIN: &[u8] = b"runbook-host compile cache description v1\0";
/// A description within the caps of `crate::description` (≈ 340 KB of text) stays under this
/// even with every byte JSON-escaped as `\u00XX`.
const MAX_DESCRIPTION_BYTES: u64 = 4 << 20;
/// Folded into the compatibility hash, so entries of an older record scheme are not looked up
/// (absent, not "untrusted").
pub const FORMAT: &str = "v2";
/// A file changed within this long of being hashed may change again within the same timestamp
/// granule (git's "racily clean" problem): its hash is not memoised.
const SETTLE: Duration = Duration::from_secs(2);
const MAX_MEMO_BYTES: u64 = 512;
/// Below this a cwasm is hashed on this thread; above, on every core (rayon).
const PARALLEL_HASH_BYTES: usize = 1 << 20;
/// A compiled component is a few times its wasm; nothing legitimate comes near this.
const MAX_ENTRY_BYTES: u64 = 2 << 30;

pub struct CompileCache {
    dir: PathBuf,
    key: [u8; KEY_LEN],
    /// `SETTLE`, except in tests that cannot wait for it.
    settle: Duration,
}

/// What the cache holds for a component.
pub enum Lookup {
    /// Verified against its record: safe to deserialize.
    Trusted(VerifiedEntry),
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
        // One name per directory however it was spelled (relative, `..`, a symlink): memos are
        // MACed over the entry's path, so `--cache-dir cache` and its absolute path would
        // otherwise refuse each other's memos, warn of a MAC mismatch and hash 35 MB again.
        let dir = std::fs::canonicalize(dir)
            .map_err(|e| anyhow::anyhow!("compile cache {}: {e}", dir.display()))?;
        let key = load_or_create_key(&dir.join(KEY_FILE))?;
        Ok(Self {
            dir,
            key,
            settle: SETTLE,
        })
    }

    /// Where the compiled form of `wasm_sha256` for this engine configuration lives.
    pub fn entry_path(&self, wasm_sha256: &[u8; 32], compat: u64) -> PathBuf {
        self.dir
            .join(format!("{}-{compat:016x}.cwasm", hex::encode(wasm_sha256)))
    }

    /// Checks the entry against its record: through its memo when the file is the one memoised,
    /// else by hashing all of it (and memoising the hash when the file has settled).
    pub fn lookup(&self, entry: &Path, wasm_sha256: &[u8; 32], compat: u64) -> Lookup {
        let file = match open_private_file(entry, MAX_ENTRY_BYTES) {
            Ok(file) => file,
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
        let identity = match file.metadata() {
            Ok(meta) => FileIdentity::of(&meta),
            Err(e) => return Lookup::Untrusted(format!("unreadable: {e}")),
        };
        let memo = self.read_memo(&entry_memo_path(entry), ENTRY_MEMO_DOMAIN, entry, &identity);
        let memo_refused = match memo {
            MemoLookup::Known(digest) => {
                if self
                    .mac(wasm_sha256, &digest, compat)
                    .verify_slice(&tag)
                    .is_ok()
                {
                    return Lookup::Trusted(VerifiedEntry {
                        file,
                        digest: "memo",
                        memo_refused: None,
                    });
                }
                // A genuine memo of bytes that are not this component's: the full check
                // below says so in its own words.
                None
            }
            MemoLookup::Unknown => None,
            MemoLookup::Untrusted(why) => Some(why),
        };
        // SAFETY: a private file (this user's, mode checked) that this host only ever replaces
        // by rename, never rewrites in place; only this user or root could change the pages.
        let cwasm = match unsafe { memmap2::MmapOptions::new().populate().map(&file) } {
            Ok(map) => map,
            Err(e) => return Lookup::Untrusted(format!("unreadable: {e}")),
        };
        let digest = digest(&cwasm);
        if self
            .mac(wasm_sha256, &digest, compat)
            .verify_slice(&tag)
            .is_err()
        {
            return Lookup::Untrusted(
                "it does not match its record (substituted, or written for another component)"
                    .into(),
            );
        }
        // Memoised only if the file did not change while it was hashed; a memo that cannot be
        // written only costs the next run a hash.
        if file
            .metadata()
            .is_ok_and(|meta| FileIdentity::of(&meta) == identity)
        {
            let _ = self.write_memo(
                &entry_memo_path(entry),
                ENTRY_MEMO_DOMAIN,
                entry,
                &identity,
                &digest,
            );
        }
        Lookup::Trusted(VerifiedEntry {
            file,
            digest: "computed",
            memo_refused,
        })
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
            .mac(wasm_sha256, &digest(cwasm), compat)
            .finalize()
            .into_bytes();
        write_atomically(&record_path(entry), hex::encode(tag).as_bytes())
    }

    /// What describe() answered for the component compiled into `entry`, as `description_store`
    /// recorded it: `Ok(None)` when nothing is recorded, `Err` (why) when the record does not
    /// verify.
    pub fn description_lookup(&self, entry: &Path) -> Result<Option<Vec<u8>>, String> {
        let bytes = match read_private_file(&description_path(entry), MAX_DESCRIPTION_BYTES) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("unreadable: {e}")),
        };
        let Some((tag, description)) = bytes.split_at_checked(64) else {
            return Err("malformed".into());
        };
        let verified = hex::decode(tag).ok().is_some_and(|tag| {
            self.description_mac(entry, description)
                .verify_slice(&tag)
                .is_ok()
        });
        if !verified {
            return Err("it does not match its MAC".into());
        }
        Ok(Some(description.to_vec()))
    }

    /// Records a description (already checked against the caps) for the component compiled
    /// into `entry`; the entry's name carries its wasm's sha256 and the engine's hash.
    pub fn description_store(&self, entry: &Path, description: &[u8]) -> std::io::Result<()> {
        let tag = self
            .description_mac(entry, description)
            .finalize()
            .into_bytes();
        let mut bytes = hex::encode(tag).into_bytes();
        bytes.extend_from_slice(description);
        write_atomically(&description_path(entry), &bytes)
    }

    fn description_mac(&self, entry: &Path, description: &[u8]) -> Hmac<Sha256> {
        use std::os::unix::ffi::OsStrExt;
        let name = entry.file_name().unwrap_or_default().as_bytes();
        let mut mac = self.keyed();
        mac.update(DESCRIPTION_DOMAIN);
        mac.update(&(name.len() as u64).to_be_bytes());
        mac.update(name);
        mac.update(description);
        mac
    }

    fn mac(&self, wasm_sha256: &[u8; 32], cwasm_digest: &[u8; 32], compat: u64) -> Hmac<Sha256> {
        let mut mac = self.keyed();
        mac.update(RECORD_DOMAIN);
        mac.update(wasm_sha256);
        mac.update(cwasm_digest);
        mac.update(&compat.to_be_bytes());
        mac
    }

    fn keyed(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key size")
    }

    /// The sha256 memoised for the component file at `path` if it is still the same file.
    pub fn memo_lookup(&self, path: &Path, file: &FileIdentity) -> MemoLookup {
        self.read_memo(&self.memo_path(path), MEMO_DOMAIN, path, file)
    }

    /// Remembers that the file at `path`, as `file` describes it, hashes to `wasm_sha256`; not
    /// for a file changed moments ago (see `SETTLE`).
    pub fn memo_store(
        &self,
        path: &Path,
        file: &FileIdentity,
        wasm_sha256: &[u8; 32],
    ) -> std::io::Result<()> {
        self.write_memo(&self.memo_path(path), MEMO_DOMAIN, path, file, wasm_sha256)
    }

    /// A memo line is `identity hash tag`, the tag a MAC over the domain, the file's path and
    /// the rest of the line.
    fn read_memo(
        &self,
        memo: &Path,
        domain: &[u8],
        path: &Path,
        file: &FileIdentity,
    ) -> MemoLookup {
        let line = match read_private_file(memo, MAX_MEMO_BYTES) {
            Ok(line) => line,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return MemoLookup::Unknown,
            Err(e) => return MemoLookup::Untrusted(format!("unreadable: {e}")),
        };
        let line = String::from_utf8_lossy(&line);
        let Some((fields, tag)) = line.trim_end().rsplit_once(' ') else {
            return MemoLookup::Untrusted("malformed".into());
        };
        let verified = hex::decode(tag).ok().is_some_and(|tag| {
            self.memo_mac(domain, path, fields)
                .verify_slice(&tag)
                .is_ok()
        });
        if !verified {
            return MemoLookup::Untrusted("it does not match its MAC".into());
        }
        // Another file now (replaced, rewritten, touched): hash it again.
        let Some(hash) = fields.strip_prefix(&file.fields()) else {
            return MemoLookup::Unknown;
        };
        match hex::decode(hash.trim_start())
            .ok()
            .and_then(|h| h.try_into().ok())
        {
            Some(hash) => MemoLookup::Known(hash),
            None => MemoLookup::Untrusted("malformed".into()),
        }
    }

    fn write_memo(
        &self,
        memo: &Path,
        domain: &[u8],
        path: &Path,
        file: &FileIdentity,
        hash: &[u8; 32],
    ) -> std::io::Result<()> {
        if !file.settled(self.settle) {
            return Ok(());
        }
        let fields = format!("{} {}", file.fields(), hex::encode(hash));
        let tag = hex::encode(self.memo_mac(domain, path, &fields).finalize().into_bytes());
        write_atomically(memo, format!("{fields} {tag}\n").as_bytes())
    }

    fn memo_path(&self, path: &Path) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        let name = Sha256::digest(path.as_os_str().as_bytes());
        self.dir.join(format!("{}.memo", hex::encode(&name[..16])))
    }

    fn memo_mac(&self, domain: &[u8], path: &Path, fields: &str) -> Hmac<Sha256> {
        use std::os::unix::ffi::OsStrExt;
        let mut mac = self.keyed();
        mac.update(domain);
        mac.update(&(path.as_os_str().len() as u64).to_be_bytes());
        mac.update(path.as_os_str().as_bytes());
        mac.update(fields.as_bytes());
        mac
    }
}

/// A cache entry whose bytes matched its record, still open.
pub struct VerifiedEntry {
    file: File,
    /// "memo" (the entry's memo vouched for its hash: not read) or "computed".
    pub digest: &'static str,
    /// Why the entry's memo was not used, when it did not verify.
    pub memo_refused: Option<String>,
}

impl VerifiedEntry {
    /// The verified file's bytes, mapped read-only (for a loader that cannot map it itself).
    pub fn map(&self) -> std::io::Result<memmap2::Mmap> {
        // SAFETY: as in `lookup`: a private file this host never rewrites in place.
        unsafe { memmap2::Mmap::map(&self.file) }
    }

    /// A path naming exactly the verified file (not whatever the entry's name points to now),
    /// for a loader that maps files itself; `None` without /proc.
    pub fn fd_path(&self) -> Option<PathBuf> {
        let path = PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()));
        path.exists().then_some(path)
    }
}

pub enum MemoLookup {
    Known([u8; 32]),
    /// No memo, or one for a file that is no longer there as it was.
    Unknown,
    Untrusted(String),
}

/// What identifies the content of a file without reading it: replacing it changes the inode,
/// rewriting it changes size or ctime (which no one but the kernel sets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileIdentity {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    fn fields(&self) -> String {
        format!(
            "{} {} {} {}.{:09} {}.{:09}",
            self.dev, self.ino, self.size, self.mtime.0, self.mtime.1, self.ctime.0, self.ctime.1
        )
    }

    fn settled(&self, settle: Duration) -> bool {
        let changed = self.mtime.max(self.ctime);
        let changed = SystemTime::UNIX_EPOCH
            + Duration::new(
                changed.0.max(0) as u64,
                changed.1.clamp(0, 999_999_999) as u32,
            );
        SystemTime::now()
            .duration_since(changed)
            .is_ok_and(|age| age >= settle)
    }
}

/// BLAKE3 of a cwasm: SIMD, and on every core for a big one.
fn digest(bytes: &[u8]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    if bytes.len() >= PARALLEL_HASH_BYTES {
        hasher.update_rayon(bytes);
    } else {
        hasher.update(bytes);
    }
    hasher.finalize().into()
}

fn record_path(entry: &Path) -> PathBuf {
    let mut name = entry.as_os_str().to_owned();
    name.push(".hmac");
    PathBuf::from(name)
}

fn description_path(entry: &Path) -> PathBuf {
    let mut name = entry.as_os_str().to_owned();
    name.push(".describe");
    PathBuf::from(name)
}

fn entry_memo_path(entry: &Path) -> PathBuf {
    let mut name = entry.as_os_str().to_owned();
    name.push(".memo");
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
    let file = open_private_file(path, cap)?;
    let mut bytes = Vec::with_capacity(file.metadata()?.len() as usize);
    file.take(cap).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Opens a regular file of this user that group and others cannot write, without following a
/// symlink or blocking on a FIFO, and no larger than `cap` bytes.
fn open_private_file(path: &Path, cap: u64) -> std::io::Result<File> {
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
    Ok(file)
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

mod facts;
#[cfg(test)]
mod tests;
