//! Maps a playbook's absolute path onto one of its granted roots. Everything below the root is
//! opened through a cap-std `Dir`, which refuses `..` and symlinks that lead out of the root at
//! the kernel level, so the lexical checks here are only the first, clearer, line of defence.

use std::io;
use std::path::{Component, Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;

use crate::bindings::CapError;

pub struct Root {
    /// As the operator wrote it (lexically normalised).
    configured: PathBuf,
    canonical: PathBuf,
    pub dir: Dir,
}

pub struct Roots {
    roots: Vec<Root>,
}

/// A request resolved to a root and a path relative to it ("." for the root itself).
pub struct Resolved<'a> {
    pub root: &'a Root,
    pub relative: PathBuf,
}

impl Roots {
    /// Roots that do not exist or cannot be opened are returned as warnings, not errors: the
    /// run goes on with the others.
    pub fn open(granted: &[PathBuf]) -> (Self, Vec<String>) {
        let mut roots = Vec::new();
        let mut warnings = Vec::new();
        for path in granted {
            let opened = path.canonicalize().and_then(|canonical| {
                let dir = Dir::open_ambient_dir(&canonical, ambient_authority())?;
                Ok((canonical, dir))
            });
            match opened {
                Ok((canonical, dir)) => roots.push(Root {
                    configured: normalise(path),
                    canonical,
                    dir,
                }),
                Err(e) => warnings.push(format!(
                    "fs-read root {} is not usable: {e}",
                    path.display()
                )),
            }
        }
        // Longest root first, so the most specific grant answers.
        roots.sort_by_key(|r| std::cmp::Reverse(r.canonical.as_os_str().len()));
        (Self { roots }, warnings)
    }

    pub fn resolve(&self, path: &str) -> Result<Resolved<'_>, CapError> {
        if path.contains('\0') {
            return Err(CapError::Invalid("path contains a NUL byte".into()));
        }
        let requested = Path::new(path);
        if !requested.is_absolute() {
            return Err(CapError::Invalid(format!(
                "path must be absolute, got {path:?}"
            )));
        }
        if requested.components().any(|c| c == Component::ParentDir) {
            return Err(CapError::Denied(format!(
                "{path}: `..` is not allowed in fs-read paths"
            )));
        }
        let requested = normalise(requested);
        for root in &self.roots {
            for base in [&root.canonical, &root.configured] {
                if let Ok(rest) = requested.strip_prefix(base) {
                    let relative = if rest.as_os_str().is_empty() {
                        PathBuf::from(".")
                    } else {
                        rest.to_path_buf()
                    };
                    return Ok(Resolved { root, relative });
                }
            }
        }
        Err(CapError::Denied(format!(
            "{path} is outside the granted fs-read roots [{}]",
            self.describe()
        )))
    }

    fn describe(&self) -> String {
        self.roots
            .iter()
            .map(|r| r.configured.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Resolved<'_> {
    /// The host path, for messages and results.
    pub fn host_path(&self, relative: &Path) -> String {
        let joined = if relative == Path::new(".") {
            self.root.canonical.clone()
        } else {
            self.root.canonical.join(relative)
        };
        joined.display().to_string()
    }
}

/// Drops `.` components and trailing slashes without touching the filesystem.
fn normalise(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| *c != Component::CurDir)
        .collect()
}

/// io errors as the kinds a playbook branches on. cap-std reports an escape from the root
/// (through `..` or a symlink) as PermissionDenied.
pub fn io_error(path: &str, e: io::Error) -> CapError {
    match e.kind() {
        io::ErrorKind::NotFound => CapError::NotFound(format!("{path}: no such file or directory")),
        io::ErrorKind::PermissionDenied => CapError::Denied(format!("{path}: {e}")),
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => {
            CapError::Invalid(format!("{path}: {e}"))
        }
        _ => CapError::Failed(format!("{path}: {e}")),
    }
}
