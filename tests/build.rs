//! Builds the hostile test playbooks (every crate under `tests/hostile/`) for wasm32-wasip2, once
//! per build of this crate, into the shared `<target>/guests` directory the built-ins use, and
//! generates `guests.rs`: one `(name, path)` per component, so tests name guests instead of
//! paths and never shell out to cargo themselves. They are deliberately not built-ins.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    for watched in ["tests/hostile", "sdk", "wit", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .map(|t| t.join("guests"))
        .unwrap_or_else(|| root.join("target/guests"));

    let crates = guest_crates(&manifest.join("hostile"));
    build(&root, &target_dir, &crates);

    let mut table = String::from(
        "/// Hostile test components: (crate name, path of the built .wasm).\n\
         pub static GUESTS: &[(&str, &str)] = &[\n",
    );
    for name in &crates {
        let wasm = target_dir
            .join("wasm32-wasip2/release")
            .join(format!("{}.wasm", name.replace('-', "_")));
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

fn build(root: &Path, target_dir: &Path, crates: &[String]) {
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
    // The outer build's settings must not leak into the guest build.
    for (key, _) in std::env::vars() {
        if (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || key.starts_with("RUSTC")
            || key == "RUSTFLAGS"
        {
            cmd.env_remove(key);
        }
    }
    let status = cmd.status().expect("running cargo for the hostile guests");
    assert!(
        status.success(),
        "building the hostile test playbooks for wasm32-wasip2 failed \
         (`rustup target add wasm32-wasip2`, or scripts/setup.sh)"
    );
}
