//! Builds the hostile test playbooks (every crate under `tests/hostile/`) for wasm32-wasip2, once
//! per build of this crate, into the shared `<target>/guests` directory the built-ins use, and
//! generates `guests.rs`: one `(name, path)` per component, so tests name guests instead of
//! paths and never shell out to cargo themselves. They are deliberately not built-ins.

use std::path::{Path, PathBuf};

#[path = "../crates/runbook-runtime/guest_build.rs"]
mod guest_build;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    for watched in [
        "tests/hostile",
        "sdk",
        "wit",
        "Cargo.lock",
        "crates/runbook-runtime/guest_build.rs",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let target_dir = guest_build::target_dir(&out_dir, &root);

    let crates = guest_crates(&manifest.join("hostile"));
    guest_build::build(&root, &target_dir, &crates, "the hostile test playbooks");

    let mut table = String::from(
        "/// Hostile test components: (crate name, path of the built .wasm).\n\
         pub static GUESTS: &[(&str, &str)] = &[\n",
    );
    for name in &crates {
        let wasm = guest_build::wasm_path(&target_dir, name);
        assert!(wasm.is_file(), "{name} was not built: {}", wasm.display());
        table.push_str(&format!(
            "    ({name:?}, {:?}),\n",
            wasm.display().to_string()
        ));
    }
    table.push_str("];\n");
    std::fs::write(out_dir.join("guests.rs"), table).unwrap();
}

/// Package names of the crates under `dir` (read from their Cargo.toml).
fn guest_crates(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("reading tests/hostile/")
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("Cargo.toml")).ok())
        .filter_map(|toml| {
            toml.lines()
                .find_map(|l| l.strip_prefix("name = \""))
                .map(|n| n.trim_end_matches('"').to_string())
        })
        .collect();
    names.sort();
    names
}
