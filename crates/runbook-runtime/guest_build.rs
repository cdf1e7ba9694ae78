//! Building guest crates for wasm32-wasip2 from a build script, shared by `crates/runbook-runtime/build.rs`
//! (the built-in playbooks) and `tests/build.rs` (the hostile test playbooks).

use std::path::{Path, PathBuf};
use std::process::Command;

/// `<target>/guests`, next to the profile directories, shared by every profile and crate.
pub fn target_dir(out_dir: &Path, root: &Path) -> PathBuf {
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out
    out_dir
        .ancestors()
        .nth(4)
        .map(|t| t.join("guests"))
        .unwrap_or_else(|| root.join("target/guests"))
}

/// `cargo build --release --target wasm32-wasip2 -p …` of `crates`; `what` names them in the
/// error.
pub fn build(root: &Path, target_dir: &Path, crates: &[String], what: &str) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(target_dir);
    for name in crates {
        cmd.args(["-p", name]);
    }
    // The outer build's settings (host rustflags, profile) must not leak into the guest build.
    for (key, _) in std::env::vars() {
        if (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || key.starts_with("RUSTC")
            || key == "RUSTFLAGS"
        {
            cmd.env_remove(key);
        }
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running cargo for {what}: {e}"));
    assert!(
        status.success(),
        "building {what} for wasm32-wasip2 failed. If the target is missing, run \
         `rustup target add wasm32-wasip2` (scripts/setup.sh does it)."
    );
}

/// The `.wasm` cargo wrote for crate `name`.
pub fn wasm_path(target_dir: &Path, name: &str) -> PathBuf {
    target_dir
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")))
}
