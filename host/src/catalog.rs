//! Which playbooks exist: the built-ins embedded in the binary, then `*.wasm` files in the plugin
//! directories (a file named like a built-in overrides it), or a `.wasm` path given directly.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    BuiltIn,
    File(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::BuiltIn => f.write_str("built-in"),
            Origin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CatalogEntry {
    pub name: String,
    pub origin: Origin,
}

pub struct PluginSource {
    pub name: String,
    pub origin: Origin,
    pub wasm: Cow<'static, [u8]>,
}

#[derive(Debug, thiserror::Error)]
pub enum FindError {
    #[error("unknown playbook {name:?}; known playbooks: {}", known.join(", "))]
    Unknown { name: String, known: Vec<String> },
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub struct Catalog {
    dirs: Vec<PathBuf>,
}

impl Catalog {
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        Self { dirs }
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Every playbook by name, overrides applied, sorted. Unreadable plugin dirs are skipped
    /// here; `host check` reports them.
    pub fn entries(&self) -> Vec<CatalogEntry> {
        let mut entries: Vec<CatalogEntry> = BUILTINS
            .iter()
            .map(|(name, _)| CatalogEntry {
                name: name.to_string(),
                origin: Origin::BuiltIn,
            })
            .collect();
        for dir in &self.dirs {
            for path in wasm_files(dir).unwrap_or_default() {
                let name = stem(&path);
                entries.retain(|e| e.name != name);
                entries.push(CatalogEntry {
                    name,
                    origin: Origin::File(path),
                });
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries
    }

    /// A playbook by name, or a path to a `.wasm` file.
    pub fn find(&self, name_or_path: &str) -> Result<PluginSource, FindError> {
        if name_or_path.ends_with(".wasm") || name_or_path.contains('/') {
            return load_file(Path::new(name_or_path));
        }
        let entries = self.entries();
        let Some(entry) = entries.iter().find(|e| e.name == name_or_path) else {
            return Err(FindError::Unknown {
                name: name_or_path.to_string(),
                known: entries.into_iter().map(|e| e.name).collect(),
            });
        };
        match &entry.origin {
            Origin::File(path) => load_file(path),
            Origin::BuiltIn => {
                let (name, wasm) = BUILTINS
                    .iter()
                    .find(|(name, _)| *name == name_or_path)
                    .expect("entries() lists only existing built-ins");
                Ok(PluginSource {
                    name: name.to_string(),
                    origin: Origin::BuiltIn,
                    wasm: Cow::Borrowed(wasm),
                })
            }
        }
    }
}

pub fn wasm_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

fn load_file(path: &Path) -> Result<PluginSource, FindError> {
    let wasm = std::fs::read(path).map_err(|source| FindError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(PluginSource {
        name: stem(path),
        origin: Origin::File(path.to_path_buf()),
        wasm: Cow::Owned(wasm),
    })
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}
