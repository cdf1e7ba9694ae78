//! Playbooks in other languages for the end-to-end tests: the guest toolchains that
//! `scripts/guest-tools.sh` installs, and each example built once per test process and shared.
//! A toolchain that is missing makes its tests say SKIPPED on the terminal, never pass silently.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

impl Lang {
    pub fn flag(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }

    /// Directories to put first on PATH so the language's build commands resolve, or why the
    /// toolchain is not there.
    pub fn tool_path(self) -> Result<Vec<PathBuf>, String> {
        let root = repo_root();
        let (dir, tool) = match self {
            Lang::Rust => return Ok(Vec::new()),
            Lang::Python => (
                root.join("target/guest-tools/python/bin"),
                "componentize-py",
            ),
            Lang::Js => (
                root.join("examples/js-error-rate/node_modules/.bin"),
                "componentize-js",
            ),
        };
        if dir.join(tool).is_file() {
            Ok(vec![dir])
        } else {
            Err(format!(
                "{tool} is not installed at {} (scripts/guest-tools.sh installs it)",
                dir.display()
            ))
        }
    }
}

/// Says on the terminal itself (test output capture does not hide it) that a language's tests
/// did not run, and why.
pub fn skipped(test: &str, lang: Lang, reason: &str) {
    let line = format!(
        "\n!!!!!!!! SKIPPED {test}: the {} toolchain is missing: {reason} !!!!!!!!\n",
        lang.flag()
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Runs a shell command in `dir` with the language's tools first on PATH; panics with its output
/// when it fails.
pub fn sh(lang: Lang, dir: &Path, script: &str, env: &[(&str, &str)]) {
    let mut path = lang.tool_path().unwrap_or_default();
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let output = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("PATH", std::env::join_paths(path).unwrap())
        .envs(env.iter().copied())
        .output()
        .expect("running sh");
    assert!(
        output.status.success(),
        "`{script}` in {} failed:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Where the tests put built guests: inside target/, shared by the test binaries and bench.sh.
pub fn build_dir() -> PathBuf {
    let dir = repo_root().join("target/guest-builds");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

static BUILT: OnceLock<Mutex<HashMap<&'static str, PathBuf>>> = OnceLock::new();

/// An example under `examples/`, built with its own build script the first time a test of this
/// process asks for it. `Err` carries the reason when its toolchain is missing.
pub fn example(name: &'static str, lang: Lang) -> Result<PathBuf, String> {
    lang.tool_path()?;
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(name) {
        return Ok(path.clone());
    }
    let out = build_dir().join(format!("{name}.wasm"));
    let _ = std::fs::remove_file(&out);
    let dir = repo_root().join("examples").join(name);
    sh(lang, &dir, &format!("./build.sh {}", out.display()), &[]);
    assert!(out.is_file(), "{name} built no {}", out.display());
    built.insert(name, out.clone());
    Ok(out)
}

/// A playbook project made by `host new <name> --lang <lang>` and built the way its README says,
/// once per process. Returns the project directory and the built component.
pub fn template(lang: Lang) -> Result<(PathBuf, PathBuf), String> {
    lang.tool_path()?;
    let key: &'static str = match lang {
        Lang::Rust => "template-rust",
        Lang::Python => "template-python",
        Lang::Js => "template-js",
    };
    let name = format!("check-{}", lang.flag());
    let project = build_dir().join(key);
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(key) {
        return Ok((project, path.clone()));
    }
    let _ = std::fs::remove_dir_all(&project);
    let new = Command::new(crate::host_bin())
        .args(["new", &name, "--lang", lang.flag(), "--dir"])
        .arg(&project)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&new.stdout).into_owned();
    assert!(
        new.status.success(),
        "host new: {stdout}\n{}",
        String::from_utf8_lossy(&new.stderr)
    );
    let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
    assert!(
        stdout.ends_with(&readme),
        "host new prints the README:\n{stdout}"
    );
    let build = readme_command(&readme, "Build:");
    let wasm = match lang {
        // One target dir for every run, so wit-bindgen is compiled once, not per test run.
        Lang::Rust => {
            let target = build_dir().join("cargo");
            let target = target.to_str().unwrap();
            sh(lang, &project, &build, &[("CARGO_TARGET_DIR", target)]);
            let file = format!(
                "{target}/wasm32-wasip2/release/{}.wasm",
                name.replace('-', "_")
            );
            let wasm = project.join(format!("{}.wasm", name.replace('-', "_")));
            std::fs::copy(file, &wasm).unwrap();
            wasm
        }
        Lang::Python => {
            sh(lang, &project, &build, &[]);
            project.join(format!("{name}.wasm"))
        }
        // `npm install` of the pinned toolchain is what guest-tools.sh did already: share it.
        Lang::Js => {
            let modules = repo_root().join("examples/js-error-rate/node_modules");
            std::os::unix::fs::symlink(modules, project.join("node_modules")).unwrap();
            assert!(build.starts_with("npm install && "), "{build}");
            sh(
                lang,
                &project,
                build.trim_start_matches("npm install && "),
                &[],
            );
            project.join(format!("{name}.wasm"))
        }
    };
    assert!(
        wasm.is_file(),
        "the README's build made no {}",
        wasm.display()
    );
    built.insert(key, wasm.clone());
    Ok((project, wasm))
}

/// The command in backticks on the README line starting with `label`.
pub fn readme_command(readme: &str, label: &str) -> String {
    let line = readme
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label} line in the README:\n{readme}"));
    line.split('`')
        .nth(1)
        .expect("a command in backticks")
        .to_string()
}

/// A Python test guest, `tests/python/<name>/app.py`, built with componentize-py against the
/// repo's WIT and the helper `host new --lang python` ships, once per test process. The
/// component is `<name>.wasm`, so a plugin dir holding it names the playbook `<name>`.
pub fn python_guest(name: &'static str) -> Result<PathBuf, String> {
    let lang = Lang::Python;
    lang.tool_path()?;
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(name) {
        return Ok(path.clone());
    }
    let root = repo_root();
    let out = build_dir().join(format!("python-guests/{name}.wasm"));
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&out);
    let script = format!(
        "componentize-py -d {wit} -w playbook componentize app -p . -p {helper} -o {out}",
        wit = root.join("wit").display(),
        helper = root.join("host/templates/python").display(),
        out = out.display()
    );
    sh(lang, &root.join("tests/python").join(name), &script, &[]);
    assert!(out.is_file(), "{name} built no {}", out.display());
    built.insert(name, out.clone());
    Ok(out)
}
