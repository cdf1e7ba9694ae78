//! Which playbooks exist: the built-ins embedded in the binary, then `*.wasm` files in the plugin
//! directories. A playbook's name is the one its describe() gives, whatever its file is called
//! (`Host::playbooks` asks; `index` applies it): a file describing a built-in's name overrides
//! it, and of two files describing one name the later wins. A playbook is found by NAME only;
//! a path is loaded only when the operator gives one on the command line (`load_path`), never
//! from a webhook or a route. Files are opened without blocking, checked to be regular and
//! within the size cap, and read no further than the cap.

use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

/// Longest playbook name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// Default cap on a component file: componentize-py components are ~40 MB.
pub const DEFAULT_MAX_COMPONENT_MIB: u64 = 128;

#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    BuiltIn,
    File(PathBuf),
    /// `[plugins.X] source`: an artifact in a registry, by digest once pinned.
    Registry(Pinned),
}

/// Where a registry playbook comes from and which bytes: shown wherever a run's origin is
/// (run record, `host runs show`, post-mortem, console) as `oci://…:tag@sha256:… signed by K`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pinned {
    pub source: crate::oci::ArtifactRef,
    /// The manifest digest (from host.lock, or named by the server); `None` until resolved.
    pub digest: Option<String>,
    /// The trusted key that signed it, when signatures are required.
    pub signer: Option<String>,
}

impl Pinned {
    /// Parses what `Display` wrote (a fleet node reads the origin the server recorded).
    pub fn parse(text: &str) -> Option<Self> {
        let (reference, signer) = match text.split_once(" signed by ") {
            Some((reference, signer)) => (reference, Some(signer.to_string())),
            None => (text, None),
        };
        let source = crate::oci::ArtifactRef::parse(reference).ok()?;
        Some(Self {
            digest: source.digest.clone(),
            source,
            signer,
        })
    }
}

impl std::fmt::Display for Pinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.digest {
            Some(digest) => write!(f, "{}", self.source.pinned(digest))?,
            None => write!(f, "{} (not pinned yet)", self.source)?,
        }
        if let Some(signer) = &self.signer {
            write!(f, " signed by {signer}")?;
        }
        Ok(())
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::BuiltIn => f.write_str("built-in"),
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Registry(pinned) => write!(f, "{pinned}"),
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
    #[error("{0}")]
    InvalidName(String),
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a regular file ({kind}); a playbook must be a regular .wasm file", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error(
        "{}: {size} bytes, over the component size cap of {cap_mib} MiB (max-component-mib in host.toml)",
        path.display()
    )]
    TooBig {
        path: PathBuf,
        size: u64,
        cap_mib: u64,
    },
}

/// A playbook name: ASCII letters, digits, `-` and `_`, starting with a letter or digit, at most
/// 64 bytes. No dots and no slashes, so a name can never be read as a path.
pub fn check_name(name: &str) -> Result<(), FindError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        return Ok(());
    }
    let shown: String = name.chars().take(MAX_NAME_LEN).collect();
    let more = if name.chars().count() > MAX_NAME_LEN {
        "…"
    } else {
        ""
    };
    Err(FindError::InvalidName(format!(
        "{shown:?}{more} is not a playbook name: a name is 1 to {MAX_NAME_LEN} ASCII letters, \
         digits, '-' or '_' (a path is accepted only by `host run --plugin FILE`)"
    )))
}

pub struct Catalog {
    dirs: Vec<PathBuf>,
    max_component_bytes: u64,
}

impl Catalog {
    pub fn new(dirs: Vec<PathBuf>, max_component_mib: u64) -> Self {
        Self {
            dirs,
            max_component_bytes: max_component_mib.saturating_mul(1 << 20),
        }
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The component files of the plugin dirs, in precedence order (a later one overrides an
    /// earlier one of the same name). Unreadable dirs and files whose stem is not a valid name
    /// are skipped here; `host check` reports them. Entries that are not regular files are
    /// listed, so that loading them says what is wrong.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for dir in &self.dirs {
            for path in wasm_files(dir).unwrap_or_default() {
                if check_name(&stem(&path)).is_ok() {
                    files.push(path);
                }
            }
        }
        files
    }

    /// Every playbook by name, overrides applied, sorted: the built-ins, then `files` each
    /// under the name its describe() gave (`None`: it could not be described, or gave no valid
    /// name; then its file name, so that loading it says what is wrong).
    pub fn index(
        &self,
        named: Vec<(PathBuf, Option<String>)>,
        registry: Vec<(String, Pinned)>,
    ) -> Vec<CatalogEntry> {
        let mut entries: Vec<CatalogEntry> = BUILTINS
            .iter()
            .map(|(name, _)| CatalogEntry {
                name: name.to_string(),
                origin: Origin::BuiltIn,
            })
            .collect();
        for (path, described) in named {
            let name = described
                .filter(|n| check_name(n).is_ok())
                .unwrap_or_else(|| stem(&path));
            entries.retain(|e| e.name != name);
            entries.push(CatalogEntry {
                name,
                origin: Origin::File(path),
            });
        }
        // A registry source is the operator's explicit word for that name: it wins.
        for (name, pinned) in registry {
            entries.retain(|e| e.name != name);
            entries.push(CatalogEntry {
                name,
                origin: Origin::Registry(pinned),
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries
    }

    /// The entry for a playbook name among `entries` (see `index`).
    pub fn entry_in(name: &str, entries: Vec<CatalogEntry>) -> Result<CatalogEntry, FindError> {
        check_name(name)?;
        match entries.iter().find(|e| e.name == name) {
            Some(entry) => Ok(entry.clone()),
            None => Err(FindError::Unknown {
                name: name.to_string(),
                known: entries.into_iter().map(|e| e.name).collect(),
            }),
        }
    }

    /// The bytes of a catalog entry.
    pub fn load(&self, entry: &CatalogEntry) -> Result<PluginSource, FindError> {
        match &entry.origin {
            Origin::File(path) => {
                let wasm = read_component(path, self.max_component_bytes)?;
                Ok(PluginSource {
                    name: entry.name.clone(),
                    origin: entry.origin.clone(),
                    wasm: Cow::Owned(wasm),
                })
            }
            Origin::Registry(_) => Err(FindError::InvalidName(format!(
                "internal: {} is a registry playbook, loaded through Host::prepare",
                entry.name
            ))),
            Origin::BuiltIn => {
                let (name, wasm) = BUILTINS
                    .iter()
                    .find(|(name, _)| *name == entry.name)
                    .ok_or_else(|| FindError::Unknown {
                        name: entry.name.clone(),
                        known: BUILTINS.iter().map(|(n, _)| n.to_string()).collect(),
                    })?;
                Ok(PluginSource {
                    name: name.to_string(),
                    origin: Origin::BuiltIn,
                    wasm: Cow::Borrowed(wasm),
                })
            }
        }
    }

    /// A component file the operator named on the command line. Only the CLI calls this.
    pub fn load_path(&self, path: &Path) -> Result<PluginSource, FindError> {
        let wasm = read_component(path, self.max_component_bytes)?;
        Ok(PluginSource {
            name: stem(path),
            origin: Origin::File(path.to_path_buf()),
            wasm: Cow::Owned(wasm),
        })
    }
}

/// `*.wasm` entries of a plugin dir that are not directories (FIFOs and devices included: they
/// are refused, with the reason, when loaded).
pub fn wasm_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm") && !p.is_dir())
        .collect();
    files.sort();
    Ok(files)
}

/// Opens without blocking (a FIFO would block a plain open), checks the handle's type and size,
/// then reads at most `cap + 1` bytes, so neither a FIFO nor a huge or growing file can hold a
/// thread or the host's memory.
pub fn read_component(path: &Path, cap: u64) -> Result<Vec<u8>, FindError> {
    let file = open_component(path, cap)?;
    read_open_component(&file, path, cap)
}

/// The checked handle of a component file (regular, within `cap`), not read yet: a loader that
/// already knows its hash (engine's memo) need not read it at all.
pub fn open_component(path: &Path, cap: u64) -> Result<std::fs::File, FindError> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let read_error = |source| FindError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(read_error)?;
    let meta = file.metadata().map_err(read_error)?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let kind = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_dir() {
            "a directory"
        } else {
            "not a file"
        };
        return Err(FindError::NotRegular {
            path: path.to_path_buf(),
            kind,
        });
    }
    if meta.len() > cap {
        return Err(too_big(path, meta.len(), cap));
    }
    Ok(file)
}

/// The bytes of a file `open_component` checked, at most `cap` (it may have grown since).
pub fn read_open_component(
    file: &std::fs::File,
    path: &Path,
    cap: u64,
) -> Result<Vec<u8>, FindError> {
    let size = file.metadata().map(|m| m.len()).unwrap_or(0).min(cap);
    let mut wasm = Vec::with_capacity(size as usize);
    file.take(cap + 1)
        .read_to_end(&mut wasm)
        .map_err(|source| FindError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if wasm.len() as u64 > cap {
        return Err(too_big(path, wasm.len() as u64, cap));
    }
    Ok(wasm)
}

fn too_big(path: &Path, size: u64, cap: u64) -> FindError {
    FindError::TooBig {
        path: path.to_path_buf(),
        size,
        cap_mib: cap >> 20,
    }
}

pub fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_never_paths() {
        for good in ["disk-full", "my_playbook", "a", "Bot2", &"x".repeat(64)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "/tmp/x.wasm",
            "../x",
            "x.wasm",
            "a/b",
            "-rf",
            "_x",
            "a b",
            "a\0b",
            "é",
            &"x".repeat(65),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_regular_files_within_the_cap_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.wasm");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let err = read_component(&fifo, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("a FIFO"), "{err}");

        let big = dir.path().join("big.wasm");
        std::fs::File::create(&big)
            .unwrap()
            .set_len((1 << 20) + 1)
            .unwrap();
        let err = read_component(&big, 1 << 20).unwrap_err();
        assert!(
            err.to_string()
                .contains("over the component size cap of 1 MiB"),
            "{err}"
        );

        let small = dir.path().join("small.wasm");
        std::fs::write(&small, b"\0asm").unwrap();
        assert_eq!(read_component(&small, 1 << 20).unwrap(), b"\0asm");
    }
}
