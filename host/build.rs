//! Records the git commit for `host --version`. The built-in playbooks are built by
//! crates/runbook-runtime/build.rs: a new commit relinks the binary, it rebuilds no layer.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    println!(
        "cargo:rustc-env=RUNBOOK_GIT_COMMIT={}",
        git_commit(&root).unwrap_or_else(|| "unknown".into())
    );
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
