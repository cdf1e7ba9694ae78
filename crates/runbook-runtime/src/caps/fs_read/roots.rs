//! Maps a playbook's absolute path onto one of its granted roots. Everything below the root is
//! opened through a cap-std `Dir`, which refuses `..` and symlinks that lead out of the root at
//! the kernel level, so the lexical checks here are only the first, clearer, line of defence.
//! A root is either a content root (`fs-read`) or a metadata-only one (`fs-meta`).

use crate::text::echo;
use std::io;
use std::path::{Component, Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;

use crate::bindings::CapError;

/// Longest path accepted (PATH_MAX).
pub const MAX_PATH_BYTES: usize = 4096;

pub struct Root {
    /// As the operator wrote it (lexically normalised).
    configured: PathBuf,
    canonical: PathBuf,
    pub dir: Dir,
    /// From `fs-read` (content may be read); else from `fs-meta`.
    content: bool,
}

pub struct Roots {
    roots: Vec<Root>,
}

/// What a call does with the path: read its content, or only look at metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Content,
    Metadata,
}

/// A request resolved to a root and a path relative to it ("." for the root itself).
pub struct Resolved<'a> {
    pub root: &'a Root,
    pub relative: PathBuf,
}

impl Roots {
    /// Roots that do not exist or cannot be opened are returned as warnings, not errors: the
    /// run goes on with the others.
    pub fn open(content: &[PathBuf], metadata: &[PathBuf]) -> (Self, Vec<String>) {
        let mut roots = Vec::new();
        let mut warnings = Vec::new();
        let granted = content
            .iter()
            .map(|p| (p, true))
            .chain(metadata.iter().map(|p| (p, false)));
        for (path, is_content) in granted {
            let opened = path.canonicalize().and_then(|canonical| {
                let dir = Dir::open_ambient_dir(&canonical, ambient_authority())?;
                Ok((canonical, dir))
            });
            match opened {
                Ok((canonical, dir)) => roots.push(Root {
                    configured: normalise(path),
                    canonical,
                    dir,
                    content: is_content,
                }),
                Err(e) => warnings.push(format!(
                    "{} root {} is not usable: {e}",
                    if is_content { "fs-read" } else { "fs-meta" },
                    path.display()
                )),
            }
        }
        // Longest root first, so the most specific grant answers.
        roots.sort_by_key(|r| std::cmp::Reverse(r.canonical.as_os_str().len()));
        (Self { roots }, warnings)
    }

    pub fn resolve(&self, path: &str, access: Access) -> Result<Resolved<'_>, CapError> {
        if path.len() > MAX_PATH_BYTES {
            return Err(CapError::Invalid(format!(
                "path {} is longer than {MAX_PATH_BYTES} bytes",
                echo(path)
            )));
        }
        if path.contains('\0') {
            return Err(CapError::Invalid("path contains a NUL byte".into()));
        }
        let requested = Path::new(path);
        if !requested.is_absolute() {
            return Err(CapError::Invalid(format!(
                "path must be absolute, got {:?}",
                echo(path)
            )));
        }
        if requested.components().any(|c| c == Component::ParentDir) {
            return Err(CapError::Denied(format!(
                "{}: `..` is not allowed in fs-read paths",
                echo(path)
            )));
        }
        let requested = normalise(requested);
        let usable = |root: &&Root| access == Access::Metadata || root.content;
        if let Some(found) = self.find(&requested, usable) {
            return Ok(found);
        }
        if access == Access::Content && self.find(&requested, |_| true).is_some() {
            return Err(CapError::Denied(format!(
                "{} is under the metadata-only grant fs-meta [{}]: read, tail and grep need \
                 an fs-read grant",
                echo(path),
                self.describe(false)
            )));
        }
        Err(CapError::Denied(format!(
            "{} is outside the granted fs-read roots [{}]",
            echo(path),
            self.describe(true)
        )))
    }

    fn find(&self, requested: &Path, usable: impl Fn(&&Root) -> bool) -> Option<Resolved<'_>> {
        for root in self.roots.iter().filter(usable) {
            for base in [&root.canonical, &root.configured] {
                if let Ok(rest) = requested.strip_prefix(base) {
                    let relative = if rest.as_os_str().is_empty() {
                        PathBuf::from(".")
                    } else {
                        rest.to_path_buf()
                    };
                    return Some(Resolved { root, relative });
                }
            }
        }
        None
    }

    fn describe(&self, content: bool) -> String {
        self.roots
            .iter()
            .filter(|r| r.content == content)
            .map(|r| r.configured.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Resolved<'_> {
    /// The host path, for messages and results.
    pub fn host_path(&self, relative: &Path) -> String {
        self.absolute(relative).display().to_string()
    }

    fn absolute(&self, relative: &Path) -> PathBuf {
        if relative == Path::new(".") {
            self.root.canonical.clone()
        } else {
            self.root.canonical.join(relative)
        }
    }

    /// The object the path names, symlinks inside the root followed (and those leading out
    /// refused) by cap-std: its path relative to the root and its real absolute path. With
    /// `follow_last` false a final symlink is the object itself (stat).
    pub fn real(
        &self,
        follow_last: bool,
        shown_path: &str,
    ) -> Result<(PathBuf, PathBuf), CapError> {
        let dir = &self.root.dir;
        let relative = if self.relative == Path::new(".") {
            PathBuf::from(".")
        } else if follow_last {
            dir.canonicalize(&self.relative)
                .map_err(|e| io_error(shown_path, e))?
        } else {
            let name = self
                .relative
                .file_name()
                .ok_or_else(|| CapError::Invalid(format!("{}: no file name", echo(shown_path))))?;
            let parent = match self.relative.parent() {
                Some(p) if !p.as_os_str().is_empty() => {
                    dir.canonicalize(p).map_err(|e| io_error(shown_path, e))?
                }
                _ => PathBuf::from("."),
            };
            if parent == Path::new(".") {
                PathBuf::from(name)
            } else {
                parent.join(name)
            }
        };
        // A symlink to the root itself canonicalises to the empty path.
        let relative = if relative.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            relative
        };
        let real = self.absolute(&relative);
        Ok((relative, real))
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
    let path = echo(path);
    match e.kind() {
        io::ErrorKind::NotFound => CapError::NotFound(format!("{path}: no such file or directory")),
        io::ErrorKind::PermissionDenied => CapError::Denied(format!("{path}: {e}")),
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => {
            CapError::Invalid(format!("{path}: {e}"))
        }
        _ => CapError::Failed(format!("{path}: {e}")),
    }
}
