//! Helpers for the end-to-end tests: find the `host` binary built by `scripts/test.sh` (one
//! release build shared by every test) and run it in an isolated cache and working directory.

pub mod agent;
pub mod alertmanager;
pub mod browser;
pub mod docker;
pub mod host_toml;
pub mod http;
pub mod oidc;
pub mod polyglot;
pub mod postgres;
pub mod proxy;
pub mod server;
pub mod sinks;
pub mod smtp;
pub mod telegram;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// A Standard Webhooks `webhook-signature` (v1) of `body` for `id` and `timestamp`, with the
/// `whsec_…` secret.
pub fn standard_webhooks_signature(whsec: &str, id: &str, timestamp: u64, body: &[u8]) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use hmac::{Hmac, Mac};
    let key = BASE64.decode(whsec.trim_start_matches("whsec_")).unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// `target/release/host`, next to this test binary's `deps/` directory.
pub fn host_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("RUNBOOK_HOST_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir.join("host");
    assert!(
        bin.is_file(),
        "{} is missing: build the host first (scripts/test.sh does it)",
        bin.display()
    );
    bin
}

/// One isolated environment: its own compile cache and working directory (so no stray
/// host.toml is picked up).
pub struct Sandbox {
    pub dir: TempDir,
    /// The sandbox's PostgreSQL database, when the tests run on PostgreSQL.
    database: std::sync::OnceLock<postgres::Database>,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            database: std::sync::OnceLock::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.path().join("cache")
    }

    /// Each sandbox has its own run store: this SQLite file unless the tests run on
    /// PostgreSQL (see `store`).
    pub fn store_path(&self) -> PathBuf {
        self.path().join("runs.sqlite3")
    }

    /// The run store `host` gets (RUNBOOK_STORE): the SQLite file, or with
    /// `RUNBOOK_TEST_STORE=postgres` a database of its own on the test cluster.
    pub fn store(&self) -> String {
        if postgres::selected() {
            return self.database().url.clone();
        }
        self.store_path().to_string_lossy().into_owned()
    }

    /// The sandbox's own PostgreSQL database (created on first use).
    pub fn database(&self) -> &postgres::Database {
        self.database.get_or_init(postgres::Database::create)
    }

    pub fn host(&self, args: &[&str]) -> Run {
        self.host_env(args, &[])
    }

    /// Runs `host` with extra environment; a run that does not end within two minutes is
    /// killed and fails the test (a hang is a bug).
    pub fn host_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let output: Output = Command::new("timeout")
            .arg("120")
            .arg(host_bin())
            .args(args)
            .current_dir(self.path())
            .env("RUNBOOK_CACHE_DIR", self.cache_dir())
            .env("RUNBOOK_STORE", self.store())
            .env_remove("RUNBOOK_CONFIG")
            .envs(env.iter().copied())
            .output()
            .expect("running host");
        assert_ne!(
            output.status.code(),
            Some(124),
            "host {args:?} did not finish within 120 s"
        );
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn write_append(&self, relative: &str, contents: &str) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path().join(relative))
            .unwrap();
        file.write_all(contents.as_bytes()).unwrap();
    }

    /// Copies the hostile guest `name` (a crate under tests/hostile/) into `plugins/` as
    /// `<name>.wasm`; the host.toml must list `plugin-dirs = ["plugins"]`.
    pub fn add_plugin(&self, name: &str) {
        let dir = self.path().join("plugins");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(guests::path(name), dir.join(format!("{name}.wasm"))).unwrap();
    }

    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }
}

/// Timeline events of a `--json` run that are capability calls of `interface.function`.
pub fn calls<'a>(
    run: &'a serde_json::Value,
    interface: &str,
    function: &str,
) -> Vec<&'a serde_json::Value> {
    run["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter(|e| {
            e["event"] == "call" && e["interface"] == interface && e["function"] == function
        })
        .collect()
}

/// `levels` nested directories `d/d/d/…` below `base`: deeper than a path can spell, so made
/// through directory handles. Remove it with [`RemoveOnDrop`] (a recursive delete in-process
/// runs out of file descriptors).
pub fn deep_tree(base: &Path, levels: usize) {
    use rustix::fs::{Mode, OFlags, mkdirat, openat};
    let mut dir = openat(
        rustix::fs::CWD,
        base,
        OFlags::DIRECTORY | OFlags::RDONLY,
        Mode::empty(),
    )
    .unwrap();
    for _ in 0..levels {
        mkdirat(&dir, "d", Mode::from_raw_mode(0o755)).unwrap();
        dir = openat(&dir, "d", OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
    }
}

/// Removes a tree (one too deep for a recursive delete in-process) when dropped.
pub struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("rm").arg("-rf").arg(&self.0).status();
    }
}

/// The hostile guests built by `build.rs`.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));

    /// Path of the built component of crate `name` (`hostile`, `wrong-world`, …).
    pub fn path(name: &str) -> std::path::PathBuf {
        let (_, path) = GUESTS
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no hostile guest {name:?} (crates under tests/hostile/)"));
        std::path::PathBuf::from(path)
    }
}
