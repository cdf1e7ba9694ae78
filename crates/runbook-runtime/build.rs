//! Builds the built-in playbooks (every crate under `plugins/`) for wasm32-wasip2 and generates
//! a table of (name → bytes) so the host binary carries them: `host run disk-full` needs no files.
//! The trivial `noop` playbook (tests/hostile/noop) is built alongside, not embedded: the benches
//! find it through `RUNBOOK_NOOP_WASM`.

use std::path::{Path, PathBuf};

mod guest_build;

/// Built with the built-ins (one cargo call) for the per-run overhead benchmarks.
const BENCH_GUEST: &str = "noop";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    // crates/runbook-runtime → the workspace root.
    let root = manifest.ancestors().nth(2).unwrap().to_path_buf();
    for watched in [
        "plugins",
        "sdk",
        "wit",
        "Cargo.lock",
        "crates/runbook-runtime/guest_build.rs",
        "tests/hostile/noop",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());

    let plugins = plugin_crates(&root.join("plugins"));
    let target_dir = guest_build::target_dir(&out_dir, &root);
    let mut crates = plugins.clone();
    crates.push(BENCH_GUEST.into());
    guest_build::build(&root, &target_dir, &crates, "the built-in playbooks");
    println!(
        "cargo:rustc-env=RUNBOOK_NOOP_WASM={}",
        guest_build::wasm_path(&target_dir, BENCH_GUEST).display()
    );

    let mut table = String::from("pub static BUILTINS: &[(&str, &[u8])] = &[\n");
    for name in &plugins {
        let wasm = guest_build::wasm_path(&target_dir, name);
        assert!(
            wasm.is_file(),
            "built-in playbook {name} was not built: {}",
            wasm.display()
        );
        table.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            wasm.display().to_string()
        ));
    }
    table.push_str("];\n");
    std::fs::write(out_dir.join("builtins.rs"), table).unwrap();
}

fn plugin_crates(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("reading plugins/")
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
