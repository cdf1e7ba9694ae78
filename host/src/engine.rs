//! The process's one wasmtime Engine: configuration, the on-disk compile cache and the epoch
//! ticker that enforces deadlines. Compiling is the slow part of starting a playbook (tens of
//! milliseconds for Rust, seconds for Python), so a component is compiled once per
//! (wasm hash, engine configuration) and deserialized afterwards, but only from a private
//! directory and only when the entry's HMAC record proves it belongs to that wasm (`cache`).

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Precompiled};

use self::cache::{CompileCache, Lookup};
use crate::bindings::{Playbook, PlaybookPre};
use crate::state::RunState;

mod cache;

/// One epoch tick. Deadlines are checked at this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

pub struct PlaybookEngine {
    engine: Engine,
    linker: Linker<RunState>,
    cache: CacheState,
}

/// How a component got into memory, reported in `--json` timings.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// "hit" (deserialized from the cache), "miss" (compiled, then cached) or "off".
    pub cache: &'static str,
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
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("creating the wasmtime engine")?;
        start_epoch_ticker(&engine);

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        Playbook::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;

        let cache = cache_dir.as_deref().map(CompileCache::open).transpose()?;
        Ok(Self {
            engine,
            linker,
            cache: CacheState {
                dir: cache,
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
            },
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles (or loads from the cache) and links a component against the playbook world.
    /// Errors name what is wrong with the file: not wasm, a core module, the wrong world.
    pub fn prepare(&self, wasm: &[u8]) -> Result<(PlaybookPre<RunState>, LoadReport)> {
        check_is_component(wasm)?;
        let (component, report) = self.load(wasm)?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .context("the component needs imports this host does not provide")?;
        let pre = PlaybookPre::new(instance_pre)
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .context("the component does not export the runbook:host playbook world")?;
        Ok((pre, report))
    }

    fn load(&self, wasm: &[u8]) -> Result<(Component, LoadReport)> {
        let wasm_sha256: [u8; 32] = Sha256::digest(wasm).into();
        let compat = self.compatibility_hash();
        let cache = self.cache.dir.as_ref();
        let cache_file = cache.map(|c| c.entry_path(&wasm_sha256, compat));
        let started = Instant::now();
        if let (Some(cache), Some(path)) = (cache, &cache_file) {
            match cache.lookup(path, &wasm_sha256, compat) {
                Lookup::Trusted(cwasm) => {
                    if let Some(component) = self.deserialize(&cwasm) {
                        let hits = self.cache.hits.fetch_add(1, Ordering::Relaxed) + 1;
                        return Ok((
                            component,
                            LoadReport {
                                cache: "hit",
                                compile_ms: 0.0,
                                load_ms: started.elapsed().as_secs_f64() * 1e3,
                                cache_hits: hits,
                                cache_misses: self.cache.misses.load(Ordering::Relaxed),
                                cache_file,
                            },
                        ));
                    }
                }
                Lookup::Absent => {}
                Lookup::Untrusted(why) => eprintln!(
                    "warning: compile cache entry {} not used: {why}; recompiling and rewriting it",
                    path.display()
                ),
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
                eprintln!(
                    "warning: compile cache not written ({}): {e:#}",
                    path.display()
                );
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
                compile_ms,
                load_ms: started.elapsed().as_secs_f64() * 1e3,
                cache_hits: self.cache.hits.load(Ordering::Relaxed),
                cache_misses: misses,
                cache_file,
            },
        ))
    }

    /// `None` when wasmtime refuses the artifact (another engine version): compile instead.
    fn deserialize(&self, cwasm: &[u8]) -> Option<Component> {
        if Engine::detect_precompiled(cwasm) != Some(Precompiled::Component) {
            return None;
        }
        // SAFETY: these are the very bytes (held in memory, not re-read from disk) whose
        // SHA-256 the cache's HMAC record binds to this component's wasm and this engine's
        // compatibility hash, under a key only this user can read; only this host's code
        // writes records. wasmtime still checks the header and refuses an incompatible one.
        unsafe { Component::deserialize(&self.engine, cwasm) }.ok()
    }

    /// Everything in the engine that affects compiled code.
    fn compatibility_hash(&self) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        hasher.finish()
    }
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
