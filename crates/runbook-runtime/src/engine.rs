//! The process's one wasmtime Engine: configuration, the on-disk compile cache and the epoch
//! ticker that enforces deadlines. Compiling is the slow part of starting a playbook (tens of
//! milliseconds for Rust, seconds for Python), so a component is compiled once per
//! (wasm hash, engine configuration) and deserialized afterwards, but only from a private
//! directory and only when the entry's HMAC record proves it belongs to that wasm (`cache`).
//! `host serve` allocates instances from a pool (`pool`); one-shot commands on demand.

use std::fs::File;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy};

use self::cache::{CompileCache, FileIdentity, Lookup, MemoLookup, VerifiedEntry};
use self::pool::Slots;
pub use self::pool::{InstanceSlot, PoolPlan};
use crate::bindings::{Description, VersionedPre};
use crate::description;
use crate::state::RunState;

mod cache;
mod pool;

/// One epoch tick. Deadlines are checked at this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// A pinned component whose bytes are not the ones it was pinned to (refused uncompiled).
#[derive(Debug, thiserror::Error)]
#[error("its bytes hash to {actual}, not the digest it was pinned to: refused")]
pub struct PinMismatch {
    pub actual: String,
}

pub struct PlaybookEngine {
    engine: Engine,
    linker: Linker<RunState>,
    cache: CacheState,
    /// Set when instances come from the pool.
    pool: Option<(PoolPlan, Slots)>,
    /// Told the component's label before a compile the cache will keep (a Python one takes
    /// seconds, which must not pass in silence); the log's info line by default.
    compile_notice: std::sync::OnceLock<CompileNotice>,
}

type CompileNotice = Box<dyn Fn(&str) + Send + Sync>;

/// Where instances' memories, tables and stacks come from.
#[derive(Debug, Clone, Copy)]
pub enum Allocation {
    /// mmap per instance: nothing reserved up front (one-shot commands).
    OnDemand,
    /// A pool reserved at start-up, copy-on-write memory images (`host serve`); falls back to
    /// on-demand, saying so, when the address space for it cannot be reserved.
    Pooled(PoolPlan),
}

/// How a component got into memory, reported in `--json` timings.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// "hit" (deserialized from the cache), "miss" (compiled, then cached) or "off".
    pub cache: &'static str,
    /// "memo" (the file's hash came from the cache's memo: the file was not read) or "computed".
    pub wasm_hash: &'static str,
    /// For a hit: "memo" (the compiled entry's hash came from its memo) or "computed" (all of
    /// it was hashed); "none" when nothing was loaded from the cache.
    pub entry_hash: &'static str,
    /// "recorded" (the cache's authenticated record of what describe() answered) or "called".
    pub describe: &'static str,
    pub compile_ms: f64,
    pub load_ms: f64,
    /// Cache hits and misses of this process so far.
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub cache_file: Option<PathBuf>,
}

struct CacheState {
    dir: Option<CompileCache>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl PlaybookEngine {
    /// `cache_dir: None` disables the on-disk cache (every load compiles).
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self> {
        Self::with_allocation(cache_dir, Allocation::OnDemand)
    }

    pub fn with_allocation(cache_dir: Option<PathBuf>, allocation: Allocation) -> Result<Self> {
        let (engine, pool) = match allocation {
            Allocation::OnDemand => (new_engine(None)?, None),
            Allocation::Pooled(plan) => match new_engine(Some(&plan)) {
                Ok(engine) => {
                    tracing::info!(
                        "instance pool: {} slots × {} MiB of linear memory ({} MiB cap), \
                         copy-on-write memory images",
                        plan.slots,
                        plan.memory_bytes >> 20,
                        plan.memory_cap_bytes() >> 20
                    );
                    (engine, Some((plan, Slots::new(&plan))))
                }
                Err(e) => {
                    tracing::warn!(
                        "the instance pool ({} slots of {} MiB) could not be reserved: \
                         {e:#}; instances are allocated on demand (slower start per run)",
                        plan.slots,
                        plan.memory_bytes >> 20
                    );
                    (new_engine(None)?, None)
                }
            },
        };
        start_epoch_ticker(&engine);

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        crate::state::add_to_linker(&mut linker)?;

        let cache = cache_dir.as_deref().map(CompileCache::open).transpose()?;
        Ok(Self {
            engine,
            linker,
            cache: CacheState {
                dir: cache,
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
            },
            pool,
            compile_notice: std::sync::OnceLock::new(),
        })
    }

    /// Where "compiling NAME (first run; cached afterwards)…" goes instead of the log (the CLI
    /// prints it on stderr). Set once.
    pub fn on_first_compile(&self, notice: impl Fn(&str) + Send + Sync + 'static) {
        let _ = self.compile_notice.set(Box::new(notice));
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The pool's plan when instances come from one (`None`: on demand).
    pub fn pool(&self) -> Option<&PoolPlan> {
        self.pool.as_ref().map(|(plan, _)| plan)
    }

    /// Waits for a free pool slot; hold it until the store is dropped. Immediate on demand.
    pub async fn instance_slot(&self) -> InstanceSlot {
        match &self.pool {
            Some((_, slots)) => slots.acquire().await,
            None => InstanceSlot::unbounded(),
        }
    }

    /// Compiles (or loads from the cache) and links a component against the playbook world.
    /// Errors name what is wrong with the file: not wasm, a core module, the wrong world.
    /// `label` names it in the compile notice.
    pub fn prepare(
        &self,
        wasm: &[u8],
        label: &str,
    ) -> Result<(VersionedPre<RunState>, LoadReport)> {
        check_is_component(wasm)?;
        let loaded = self.load(wasm, Sha256::digest(wasm).into(), label)?;
        self.link(loaded)
    }

    /// `prepare` for a component file the catalog opened and checked (`catalog::open_component`).
    /// When the cache's memo knows the file's hash and holds a trusted entry for it, the file
    /// is not read past its header: a 17 MB Python component is not hashed on every run.
    pub fn prepare_file(
        &self,
        file: &File,
        path: &Path,
        cap: u64,
    ) -> Result<(VersionedPre<RunState>, LoadReport)> {
        self.prepare_file_checked(file, path, cap, None)
    }

    /// `prepare_file` for a component whose SHA-256 is known in advance (a registry layer's
    /// digest): bytes with another hash are refused before they are compiled or loaded.
    pub fn prepare_file_pinned(
        &self,
        file: &File,
        path: &Path,
        cap: u64,
        expected_sha256: [u8; 32],
    ) -> Result<(VersionedPre<RunState>, LoadReport)> {
        self.prepare_file_checked(file, path, cap, Some(expected_sha256))
    }

    fn prepare_file_checked(
        &self,
        file: &File,
        path: &Path,
        cap: u64,
        expected: Option<[u8; 32]>,
    ) -> Result<(VersionedPre<RunState>, LoadReport)> {
        let mismatch = |actual: &[u8; 32]| {
            anyhow::Error::from(PinMismatch {
                actual: format!("sha256:{}", hex::encode(actual)),
            })
        };
        let mut header = [0u8; 8];
        let read = file
            .read_at(&mut header, 0)
            .with_context(|| format!("reading {}", path.display()))?;
        check_is_component(&header[..read])?;
        let before = FileIdentity::of(&file.metadata()?);
        let memo_key = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        // The entry already looked up (and found missing or untrusted) through the memo.
        let mut looked_up = None;
        if let Some(cache) = &self.cache.dir {
            match cache.memo_lookup(&memo_key, &before) {
                MemoLookup::Known(wasm_sha256) => {
                    if expected.is_some_and(|e| e != wasm_sha256) {
                        return Err(mismatch(&wasm_sha256));
                    }
                    if let Some(mut loaded) = self.cached(cache, &wasm_sha256) {
                        loaded.1.wasm_hash = "memo";
                        return self.link(loaded);
                    }
                    looked_up = Some(wasm_sha256);
                }
                MemoLookup::Unknown => {}
                MemoLookup::Untrusted(why) => tracing::warn!(
                    "compile cache memo for {} not used: {why}; hashing the file",
                    path.display()
                ),
            }
        }
        let wasm = crate::catalog::read_open_component(file, path, cap)?;
        check_is_component(&wasm)?;
        let wasm_sha256: [u8; 32] = Sha256::digest(&wasm).into();
        if expected.is_some_and(|e| e != wasm_sha256) {
            return Err(mismatch(&wasm_sha256));
        }
        // Memoised only if the file did not change while it was read.
        if let Some(cache) = &self.cache.dir
            && FileIdentity::of(&file.metadata()?) == before
            && let Err(e) = cache.memo_store(&memo_key, &before, &wasm_sha256)
        {
            tracing::warn!("compile cache memo not written: {e:#}");
        }
        let label = path.file_name().unwrap_or_default().to_string_lossy();
        let loaded = if looked_up == Some(wasm_sha256) {
            self.compile(&wasm, wasm_sha256, &label)?
        } else {
            self.load(&wasm, wasm_sha256, &label)?
        };
        self.link(loaded)
    }

    /// Whether this host verified before that the key of `key_fingerprint` signed the artifact
    /// `manifest_digest` (a fact kept in the compile cache under its MAC; none without a cache).
    pub fn knows_signature(&self, manifest_digest: &str, key_fingerprint: &[u8; 32]) -> bool {
        self.cache
            .dir
            .as_ref()
            .is_some_and(|c| c.knows_signature(manifest_digest, key_fingerprint))
    }

    /// Remembers a signature just verified, so later runs need not verify it again.
    pub fn remember_signature(&self, manifest_digest: &str, key_fingerprint: &[u8; 32]) {
        if let Some(cache) = &self.cache.dir
            && let Err(e) = cache.remember_signature(manifest_digest, key_fingerprint)
        {
            tracing::warn!("a verified signature was not remembered: {e}");
        }
    }

    /// What describe() answered for this component on an earlier load, when the cache holds
    /// a verified record of it within the description caps.
    pub fn recorded_description(&self, load: &LoadReport) -> Option<Description> {
        let (cache, entry) = (self.cache.dir.as_ref()?, load.cache_file.as_ref()?);
        match cache.description_lookup(entry) {
            Ok(recorded) => recorded
                .as_deref()
                .and_then(description::decode)
                .filter(|d| description::check(d).is_ok()),
            Err(why) => {
                tracing::warn!(
                    "compile cache description of {} not used: {why}; calling describe()",
                    entry.display()
                );
                None
            }
        }
    }

    /// The name describe() gave this component file on an earlier load, when the cache's memo
    /// vouches for the unchanged file and a verified description is recorded for it: naming a
    /// plugin-dir file costs neither reading nor loading it.
    pub fn recorded_name(&self, path: &Path) -> Option<String> {
        let cache = self.cache.dir.as_ref()?;
        let identity = FileIdentity::of(&std::fs::metadata(path).ok()?);
        let memo_key = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let MemoLookup::Known(wasm_sha256) = cache.memo_lookup(&memo_key, &identity) else {
            return None;
        };
        let entry = cache.entry_path(&wasm_sha256, self.compatibility_hash());
        let recorded = cache.description_lookup(&entry).ok()??;
        description::decode(&recorded)
            .filter(|d| description::check(d).is_ok())
            .map(|d| d.name)
    }

    /// Records what describe() answered (checked against the caps) next to the compiled entry.
    pub fn record_description(&self, load: &LoadReport, described: &Description) {
        let (Some(cache), Some(entry)) = (&self.cache.dir, &load.cache_file) else {
            return;
        };
        // A cache that cannot be written only costs the next load a describe() call.
        if let Err(e) = cache.description_store(entry, &description::encode(described)) {
            tracing::warn!(
                "compile cache description not written ({}): {e:#}",
                entry.display()
            );
        }
    }

    fn link(
        &self,
        (component, report): (Component, LoadReport),
    ) -> Result<(VersionedPre<RunState>, LoadReport)> {
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .context("the component needs imports this host does not provide")?;
        let pre = VersionedPre::new(instance_pre, &self.engine)
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .context("the component does not export the runbook:host playbook world")?;
        Ok((pre, report))
    }

    /// The component compiled from the wasm of `wasm_sha256`, if the cache holds a trusted
    /// entry for it.
    fn cached(
        &self,
        cache: &CompileCache,
        wasm_sha256: &[u8; 32],
    ) -> Option<(Component, LoadReport)> {
        let compat = self.compatibility_hash();
        let path = cache.entry_path(wasm_sha256, compat);
        let started = Instant::now();
        match cache.lookup(&path, wasm_sha256, compat) {
            Lookup::Trusted(entry) => {
                if let Some(why) = &entry.memo_refused {
                    tracing::warn!(
                        "compile cache memo of {} not used: {why}; hashing the entry",
                        path.display()
                    );
                }
                let component = self.deserialize(&entry)?;
                let hits = self.cache.hits.fetch_add(1, Ordering::Relaxed) + 1;
                Some((
                    component,
                    LoadReport {
                        cache: "hit",
                        wasm_hash: "computed",
                        entry_hash: entry.digest,
                        describe: "called",
                        compile_ms: 0.0,
                        load_ms: started.elapsed().as_secs_f64() * 1e3,
                        cache_hits: hits,
                        cache_misses: self.cache.misses.load(Ordering::Relaxed),
                        cache_file: Some(path),
                    },
                ))
            }
            Lookup::Absent => None,
            Lookup::Untrusted(why) => {
                tracing::warn!(
                    "compile cache entry {} not used: {why}; recompiling and rewriting it",
                    path.display()
                );
                None
            }
        }
    }

    fn load(
        &self,
        wasm: &[u8],
        wasm_sha256: [u8; 32],
        label: &str,
    ) -> Result<(Component, LoadReport)> {
        let cached = self
            .cache
            .dir
            .as_ref()
            .and_then(|c| self.cached(c, &wasm_sha256));
        match cached {
            Some(hit) => Ok(hit),
            None => self.compile(wasm, wasm_sha256, label),
        }
    }

    /// Compiles, and writes the result to the cache when there is one.
    fn compile(
        &self,
        wasm: &[u8],
        wasm_sha256: [u8; 32],
        label: &str,
    ) -> Result<(Component, LoadReport)> {
        let cache = self.cache.dir.as_ref();
        let compat = self.compatibility_hash();
        let cache_file = cache.map(|c| c.entry_path(&wasm_sha256, compat));
        // Only when the cache keeps the result: with it off every run compiles, as asked.
        if cache.is_some() {
            let label = crate::text::escape(label);
            match self.compile_notice.get() {
                Some(notice) => notice(&label),
                None => tracing::info!("compiling {label} (first run; cached afterwards)…"),
            }
        }
        let started = Instant::now();
        let compiled = self
            .engine
            .precompile_component(wasm)
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .context("compiling the component")?;
        let compile_ms = started.elapsed().as_secs_f64() * 1e3;
        if let (Some(cache), Some(path)) = (cache, &cache_file) {
            // A cache that cannot be written only costs speed; the run goes on.
            if let Err(e) = cache.store(path, &wasm_sha256, compat, &compiled) {
                tracing::warn!("compile cache not written ({}): {e:#}", path.display());
            }
        }
        let started = Instant::now();
        // SAFETY: these bytes were produced by this engine a moment ago, in this process.
        let component = unsafe { Component::deserialize(&self.engine, &compiled)? };
        let misses = if cache.is_some() {
            self.cache.misses.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            0
        };
        Ok((
            component,
            LoadReport {
                cache: if cache.is_some() { "miss" } else { "off" },
                wasm_hash: "computed",
                entry_hash: "none",
                describe: "called",
                compile_ms,
                load_ms: started.elapsed().as_secs_f64() * 1e3,
                cache_hits: self.cache.hits.load(Ordering::Relaxed),
                cache_misses: misses,
                cache_file,
            },
        ))
    }

    /// `None` when wasmtime refuses the artifact (another engine version): compile instead.
    fn deserialize(&self, entry: &VerifiedEntry) -> Option<Component> {
        // SAFETY: the entry's content matched the HMAC record that binds it to this component's
        // wasm and this engine's compatibility hash, under a key only this user can read (its
        // hash computed now, or vouched for by a MACed memo of this very inode, unchanged
        // since); only this host's code writes records. The file stays open: the /proc path
        // names that very inode (a private file this host replaces by rename, never rewrites),
        // so wasmtime maps the verified bytes and, copy-on-write, the memory images in them.
        // wasmtime checks the artifact is a component compiled for this engine and refuses
        // anything else (no separate header probe: it parses the whole ELF again).
        let component = match entry.fd_path() {
            Some(path) => unsafe { Component::deserialize_file(&self.engine, path) },
            None => {
                let bytes = entry.map().ok()?;
                unsafe { Component::deserialize(&self.engine, &bytes) }
            }
        };
        component.ok()
    }

    /// Everything in the engine that affects compiled code.
    fn compatibility_hash(&self) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        cache::FORMAT.hash(&mut hasher);
        hasher.finish()
    }
}

/// The engine configuration: component model, epoch deadlines, and with a plan the pooling
/// allocator with copy-on-write memory images. Code compiled by one runs on the other (the
/// allocator is not part of the compatibility hash), so both share the compile cache.
fn new_engine(pool: Option<&PoolPlan>) -> Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // Playbooks are called one call at a time (WASI p2, no component-model async): a store
    // need not set up the concurrent-call machinery on every run.
    config.concurrency_support(false);
    if let Some(plan) = pool {
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(
            plan.allocation_config(),
        ));
        config.memory_init_cow(true);
    }
    Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("creating the wasmtime engine")
}

/// Component-model binaries carry layer 1 in the header; core modules carry version 1.
fn check_is_component(wasm: &[u8]) -> Result<()> {
    if wasm.len() < 8 || &wasm[0..4] != b"\0asm" {
        bail!("not a WebAssembly file (no \\0asm header)");
    }
    if wasm[4..8] == [1, 0, 0, 0] {
        bail!(
            "a core WebAssembly module, not a component: build for --target wasm32-wasip2 \
             (or wrap it with `wasm-tools component new`)"
        );
    }
    if wasm[6..8] != [1, 0] {
        bail!("unsupported WebAssembly binary layer {:?}", &wasm[4..8]);
    }
    Ok(())
}

fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch ticker thread");
}

/// Default cache location: `$XDG_CACHE_HOME/runbook-host/components` (or `~/.cache/…`).
pub fn default_cache_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("runbook-host").join("components"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_and_on_demand_engines_share_compiled_code() {
        let plan = PoolPlan {
            slots: 2,
            memory_bytes: 1 << 20,
        };
        let pooled = PlaybookEngine::with_allocation(None, Allocation::Pooled(plan)).unwrap();
        assert!(
            pooled.pool().is_some(),
            "the pool could not be reserved here"
        );
        let on_demand = PlaybookEngine::new(None).unwrap();
        assert_eq!(
            pooled.compatibility_hash(),
            on_demand.compatibility_hash(),
            "a cache entry written by `host run` must serve `host serve`"
        );
    }
}
