//! Builds the built-in playbooks (every crate under `plugins/`) for wasm32-wasip2 and generates
//! a table of (name → bytes) so the host binary carries them: `host run disk-full` needs no files.
//! The trivial `noop` playbook (tests/hostile/noop) is built alongside, not embedded: the benches
//! find it through `RUNBOOK_NOOP_WASM`. Also records the git commit for `host --version`.

use std::path::{Path, PathBuf};

mod guest_build;

/// Built with the built-ins (one cargo call) for the per-run overhead benchmarks.
const BENCH_GUEST: &str = "noop";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    for watched in [
        "plugins",
        "sdk",
        "wit",
        "Cargo.lock",
        "host/guest_build.rs",
        "tests/hostile/noop",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!(
        "cargo:rustc-env=RUNBOOK_GIT_COMMIT={}",
        git_commit(&root).unwrap_or_else(|| "unknown".into())
    );

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

/// The checkout's commit (12 hex digits), or what a packager building from a tarball says in
/// `RUNBOOK_GIT_COMMIT`; None outside a git checkout of this repository (a tarball unpacked
/// inside some other repository must not report that one's commit).
fn git_commit(root: &Path) -> Option<String> {
    println!("cargo:rerun-if-env-changed=RUNBOOK_GIT_COMMIT");
    if let Ok(commit) = std::env::var("RUNBOOK_GIT_COMMIT") {
        return Some(commit).filter(|c| !c.is_empty());
    }
    let git = |args: &[&str]| -> Option<String> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let toplevel = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    if toplevel.canonicalize().ok()? != root.canonicalize().ok()? {
        return None;
    }
    // Rebuild when HEAD moves: HEAD itself (a checkout), the branch it names (a commit), and
    // packed-refs (a gc). Only existing files: cargo reruns the script on every build otherwise.
    let absolute = |p: String| root.join(p);
    let mut watched = vec![absolute(git(&["rev-parse", "--git-path", "HEAD"])?)];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(absolute(git(&["rev-parse", "--git-path", &branch])?));
    }
    watched.push(absolute(git(&["rev-parse", "--git-path", "packed-refs"])?));
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}
