//! Builds the built-in playbooks (every crate under `plugins/`) for wasm32-wasip2 and generates
//! a table of (name → bytes) so the host binary carries them: `host run disk-full` needs no files.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    for watched in ["plugins", "sdk", "wit", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());

    let plugins = plugin_crates(&root.join("plugins"));
    let target_dir = guest_target_dir(&out_dir, &root);
    build_guests(&root, &target_dir, &plugins);

    let mut table = String::from("pub static BUILTINS: &[(&str, &[u8])] = &[\n");
    for name in &plugins {
        let wasm = target_dir
            .join("wasm32-wasip2/release")
            .join(format!("{}.wasm", name.replace('-', "_")));
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

/// `<target>/guests`, next to the host's own profile directories, shared by every profile.
fn guest_target_dir(out_dir: &Path, root: &Path) -> PathBuf {
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out
    out_dir
        .ancestors()
        .nth(4)
        .map(|t| t.join("guests"))
        .unwrap_or_else(|| root.join("target/guests"))
}

fn build_guests(root: &Path, target_dir: &Path, plugins: &[String]) {
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
    for name in plugins {
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
        .expect("running cargo for the built-in playbooks");
    if !status.success() {
        panic!(
            "building the built-in playbooks for wasm32-wasip2 failed. If the target is missing, \
             run `rustup target add wasm32-wasip2` (scripts/setup.sh does it)."
        );
    }
}
