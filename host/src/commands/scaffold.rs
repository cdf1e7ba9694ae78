//! `host wit` and `host new`: the playbook contract and a project template per guest language,
//! embedded in the binary so a scaffolded playbook always builds against the WIT of the host that
//! runs it, on a machine with no copy of this repository. Never overwrites an existing file.

use std::path::{Path, PathBuf};

use anstream::{print, println};
use anyhow::{Context, Result, bail};
use clap::Args;

use crate::commands::ConfigError;

#[derive(Args)]
#[command(after_help = "Example:\n  host wit ./wit")]
pub struct WitArgs {
    dir: PathBuf,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  host new disk-check\n  host new disk-check --lang python --dir ./playbooks/disk-check\n  host new disk-check --lang js\n\nThe project's README.md says how to build, run and test it."
)]
pub struct NewArgs {
    /// Playbook name: lowercase letters, digits and dashes
    name: String,
    #[arg(long, value_enum, default_value = "rust")]
    lang: Lang,
    /// Where to create it (absent or empty) [default: ./NAME]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

impl WitArgs {
    pub fn run(self) -> Result<u8> {
        for path in write_wit(&self.dir)? {
            println!("{}", path.display());
        }
        Ok(0)
    }
}

impl NewArgs {
    pub fn run(self) -> Result<u8> {
        let made = new_project(&self.name, self.lang, self.dir.as_deref())
            .map_err(|e| ConfigError(format!("{e:#}")))?;
        println!("created {} in {}\n", self.name, made.dir.display());
        print!("{}", made.readme);
        Ok(0)
    }
}

/// The contract, one file per interface plus the world, as `host wit` writes it.
pub const WIT: &[(&str, &str)] = &[
    ("approval.wit", include_str!("../../../wit/approval.wit")),
    ("docker.wit", include_str!("../../../wit/docker.wit")),
    ("fs-read.wit", include_str!("../../../wit/fs-read.wit")),
    ("http.wit", include_str!("../../../wit/http.wit")),
    ("notify.wit", include_str!("../../../wit/notify.wit")),
    ("report.wit", include_str!("../../../wit/report.wit")),
    ("types.wit", include_str!("../../../wit/types.wit")),
    ("world.wit", include_str!("../../../wit/world.wit")),
];

/// The helper module Python playbooks import (`import runbook`); examples use the same file.
pub const PYTHON_HELPER: &str = include_str!("../../templates/python/runbook.py");
pub const JS_HELPER: &str = include_str!("../../templates/js/runbook.js");

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

/// A fixture for `host test`: the disk at 95 %, so the template notifies ops and escalates.
const FIXTURE: &str = include_str!("../../templates/tests/over-threshold.json");
/// The grants the fixture is replayed with, under the playbook's describe() name (the Rust
/// build's `{{crate}}.wasm` is the playbook `{{name}}` too).
const HOST_TOML: &str = "[plugins.{{name}}.grants]\nfs-meta = [\"/tmp\"]\nnotify = [\"ops\"]\n";

/// (path in the project, template). `{{name}}` is the playbook name, `{{crate}}` its Rust crate
/// name (dashes as underscores, as cargo names the .wasm).
fn templates(lang: Lang) -> Vec<(&'static str, &'static str)> {
    match lang {
        // The SDK is vendored rather than fetched: it is not published, and a copy generated from
        // the same WIT as ./wit can never disagree with the host that wrote it.
        Lang::Rust => vec![
            (
                "Cargo.toml",
                include_str!("../../templates/rust/Cargo.toml"),
            ),
            ("src/lib.rs", include_str!("../../templates/rust/lib.rs")),
            ("README.md", include_str!("../../templates/rust/README.md")),
            (
                "sdk/Cargo.toml",
                include_str!("../../templates/rust/sdk.Cargo.toml"),
            ),
            ("sdk/src/lib.rs", include_str!("../../../sdk/src/lib.rs")),
            (
                "sdk/src/helpers.rs",
                include_str!("../../../sdk/src/helpers.rs"),
            ),
            (
                "sdk/src/approval.rs",
                include_str!("../../../sdk/src/approval.rs"),
            ),
            (".gitignore", "target/\n"),
            ("tests/over-threshold.json", FIXTURE),
            ("tests/host.toml", HOST_TOML),
        ],
        Lang::Python => vec![
            ("app.py", include_str!("../../templates/python/app.py")),
            ("runbook.py", PYTHON_HELPER),
            (
                "README.md",
                include_str!("../../templates/python/README.md"),
            ),
            (".gitignore", "*.wasm\n__pycache__/\n"),
            ("tests/over-threshold.json", FIXTURE),
            ("tests/host.toml", HOST_TOML),
        ],
        Lang::Js => vec![
            ("app.js", include_str!("../../templates/js/app.js")),
            ("runbook.js", JS_HELPER),
            (
                "package.json",
                include_str!("../../templates/js/package.json"),
            ),
            ("README.md", include_str!("../../templates/js/README.md")),
            (".gitignore", "*.wasm\nnode_modules/\n"),
            ("tests/over-threshold.json", FIXTURE),
            ("tests/host.toml", HOST_TOML),
        ],
    }
}

/// Writes the WIT files into `dir` (created if missing); files already there are replaced, since
/// the point is to match this host.
pub fn write_wit(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    WIT.iter()
        .map(|(file, text)| {
            let path = dir.join(file);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        })
        .collect()
}

pub struct Scaffold {
    pub dir: PathBuf,
    /// The project's README: how to build, run and test it.
    pub readme: String,
}

/// Creates a playbook project named `name` in `dir` (default `./<name>`), which must be absent
/// or empty.
pub fn new_project(name: &str, lang: Lang, dir: Option<&Path>) -> Result<Scaffold> {
    check_name(name)?;
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    if dir.exists() && std::fs::read_dir(&dir).map_or(true, |mut d| d.next().is_some()) {
        bail!(
            "{} already exists and is not empty: pick another --dir",
            dir.display()
        );
    }
    let crate_name = name.replace('-', "_");
    write_wit(&dir.join("wit"))?;
    let mut readme = String::new();
    for (relative, template) in templates(lang) {
        let text = template
            .replace("{{name}}", name)
            .replace("{{crate}}", &crate_name);
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
        if relative == "README.md" {
            readme = text;
        }
    }
    Ok(Scaffold { dir, readme })
}

/// The name becomes a file name, a crate name and a config key: keep it to what all accept.
fn check_name(name: &str) -> Result<()> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !ok {
        bail!(
            "playbook name {name:?} must be lowercase letters, digits and dashes, starting with a \
             letter (e.g. disk-check)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wit_file_is_embedded() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            // Older contracts (wit/0.1.0/) are the host's to load, not `host wit`'s to write.
            .filter(|name| name.ends_with(".wit"))
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = WIT.iter().map(|(f, _)| *f).collect();
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn names_that_are_not_file_and_crate_names_are_refused() {
        for bad in ["", "Disk", "1disk", "disk_full", "disk-", "a/b", "../x"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_name("disk-check2").unwrap();
    }

    #[test]
    fn a_non_empty_directory_is_never_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("keep.txt"), "mine").unwrap();
        let err = new_project("x", Lang::Python, Some(tmp.path()))
            .err()
            .unwrap();
        assert!(err.to_string().contains("not empty"), "{err}");
        let made = new_project("x", Lang::Python, Some(&tmp.path().join("x"))).unwrap();
        assert!(made.readme.contains("host run --plugin x.wasm"));
        assert!(made.dir.join("wit/world.wit").is_file());
    }
}
