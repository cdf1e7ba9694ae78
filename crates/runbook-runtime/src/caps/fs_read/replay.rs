//! Replay of fs-read calls, where the fixture is the only world. The path is held to this
//! host's roots as a live call's is (absolute, no `..`, under a root of the right kind); what
//! the fixture says it reached (its `target`: canonical path and file type, as `host run
//! --record` wrote them) must be that path's canonical form, and is then refused where a live
//! call would refuse it: leading out of its root, the host's own state, a device, the wrong
//! file type.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::FsReadView;
use super::roots::MAX_PATH_BYTES;
use crate::bindings::CapError;
use crate::calls::seam::{Gate, Refusal, targeted};
use crate::text::echo;

/// A file type as a target records it (a device is told apart: no grant reaches one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Device,
    Other,
}

impl Kind {
    pub fn of(meta: &cap_std::fs::Metadata) -> Kind {
        use cap_std::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_symlink() {
            Kind::Symlink
        } else if t.is_dir() {
            Kind::Dir
        } else if t.is_file() {
            Kind::File
        } else if t.is_char_device() || t.is_block_device() {
            Kind::Device
        } else {
            Kind::Other
        }
    }
}

/// What a path call reached.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathTarget {
    /// Canonical and absolute.
    pub path: String,
    pub kind: Kind,
}

/// What a call does with its path, as the live operation does it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// read, tail, grep: follows the path, reads a regular file (needs an fs-read root).
    Content,
    /// list-dir, largest, find: follows the path, walks a directory.
    Walk,
    /// usage: follows the path, a file or a directory.
    Usage,
    /// stat: a final symlink is the object itself.
    Stat,
}

impl Use {
    fn follows(self) -> bool {
        self != Use::Stat
    }
}

/// Dropped `.` and trailing slashes, nothing else (as `roots::normalise`).
fn normalise(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| *c != Component::CurDir)
        .collect()
}

/// A path as the kernel reports one: absolute, no `.` or `..`, no empty or trailing part.
fn is_canonical(path: &str) -> bool {
    path.len() <= MAX_PATH_BYTES
        && !path.contains('\0')
        && path.starts_with('/')
        && (path == "/" || !path.ends_with('/'))
        && !path.contains("//")
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && !path.split('/').any(|part| part == "." || part == "..")
}

fn inconsistent(why: String) -> Refusal {
    Refusal::Inconsistent(why)
}

impl FsReadView<'_> {
    /// The granted root a path falls under, lexically (the fixture's world has no files to
    /// open): the longest one usable for `how`, as a live call picks it.
    fn replay_root(&self, path: &str, how: Use) -> Result<PathBuf, CapError> {
        let shown = echo(path);
        if path.len() > MAX_PATH_BYTES {
            return Err(CapError::Invalid(format!(
                "path {shown} is longer than {MAX_PATH_BYTES} bytes"
            )));
        }
        if path.contains('\0') {
            return Err(CapError::Invalid("path contains a NUL byte".into()));
        }
        let requested = Path::new(path);
        if !requested.is_absolute() {
            return Err(CapError::Invalid(format!(
                "path must be absolute, got {shown:?}"
            )));
        }
        if requested.components().any(|c| c == Component::ParentDir) {
            return Err(CapError::Denied(format!(
                "{shown}: `..` is not allowed in fs-read paths"
            )));
        }
        let requested = normalise(requested);
        let content = self.grants.fs_read.iter();
        let metadata = self.grants.fs_meta.iter();
        let usable: Vec<PathBuf> = match how {
            Use::Content => content.map(|r| normalise(r)).collect(),
            _ => content.chain(metadata).map(|r| normalise(r)).collect(),
        };
        if let Some(root) = usable
            .into_iter()
            .filter(|root| requested.starts_with(root))
            .max_by_key(|root| root.as_os_str().len())
        {
            return Ok(root);
        }
        if how == Use::Content && self.grants.fs_meta.iter().any(|r| requested.starts_with(r)) {
            return Err(CapError::Denied(format!(
                "{shown} is under the metadata-only grant fs-meta: read, tail and grep need an \
                 fs-read grant"
            )));
        }
        Err(CapError::Denied(format!(
            "{shown} is outside the granted fs-read roots"
        )))
    }

    /// A replayed path call: the argument is checked as live, the recorded target held to
    /// it, and what it reached refused where a live call would refuse it.
    pub(crate) fn replay_path(
        &self,
        path: &str,
        how: Use,
        target: Option<&Value>,
    ) -> Result<(), Refusal> {
        let root = self.replay_root(path, how)?;
        let lexical = normalise(Path::new(path));
        let reached = match target {
            None => None,
            Some(target) => Some(consistent(&lexical, how, target)?),
        };
        let shown = echo(path);
        let real = reached
            .as_ref()
            .map_or(lexical.clone(), |t| PathBuf::from(&t.path));
        // cap-std refuses a symlink that leads out of the root the path resolved under; the
        // root itself may be a symlink on the host that recorded (its canonical form there).
        let canonical_root = root.canonicalize().unwrap_or_else(|_| root.clone());
        if !real.starts_with(&root) && !real.starts_with(&canonical_root) {
            return Err(CapError::Denied(format!(
                "{shown}: leads to {} out of the granted root {}",
                echo(&real.display().to_string()),
                root.display()
            ))
            .into());
        }
        let device = reached.as_ref().is_some_and(|t| t.kind == Kind::Device);
        if let Some(why) = self.fs.protected.refusal_by_path(&real, device) {
            return Err(
                CapError::Denied(format!("{shown} {why}: no fs-read grant reaches it")).into(),
            );
        }
        let Some(kind) = reached.map(|t| t.kind) else {
            return Ok(());
        };
        // What the live operation answers for an object of the wrong type.
        match (how, kind) {
            (Use::Content, Kind::File) | (Use::Walk, Kind::Dir) | (Use::Stat, _) => Ok(()),
            (Use::Usage, Kind::File | Kind::Dir) => Ok(()),
            (Use::Content, Kind::Dir) => Err(CapError::Invalid(format!(
                "{shown} is a directory: only regular files are read"
            ))),
            (Use::Content | Use::Usage, _) => Err(CapError::Invalid(format!(
                "{shown} is not a regular file (FIFO, socket or symlink): only regular files \
                 are read"
            ))),
            (Use::Walk, _) => Err(CapError::Failed(format!("{shown}: not a directory"))),
        }
        .map_err(Refusal::Cap)
    }

    /// Replay gate of a one-path call.
    pub(crate) fn path_gate<'a>(path: String, how: Use) -> Gate<'a, Self> {
        targeted(move |state: &Self, target| state.replay_path(&path, how, target))
    }

    /// Recording: what `path` reached, resolved again as the call did (its canonical path
    /// and file type). `None` when it no longer resolves (the call's own error says why).
    pub(super) fn record_path_target(&mut self, path: &str, how: Use) {
        if !matches!(self.tape, Some(crate::tape::Tape::Recording(_))) {
            return;
        }
        let access = match how {
            Use::Content => super::roots::Access::Content,
            _ => super::roots::Access::Metadata,
        };
        let found = self.fs.with_cx(|cx| {
            let resolved = cx.roots.resolve(path, access).ok()?;
            let (relative, real) = resolved.real(how.follows(), path).ok()?;
            let meta = resolved.root.dir.symlink_metadata(&relative).ok()?;
            Some(PathTarget {
                path: real.display().to_string(),
                kind: Kind::of(&meta),
            })
        });
        self.recorded_target = found.and_then(|t| serde_json::to_value(t).ok());
    }
}

/// The recorded target as `path` can have reached it, or why it cannot.
fn consistent(lexical: &Path, how: Use, target: &Value) -> Result<PathTarget, Refusal> {
    let reached: PathTarget = serde_json::from_value(target.clone()).map_err(|e| {
        inconsistent(format!(
            "target must be {{\"path\": canonical path, \"kind\": file, dir, symlink, device \
             or other}}: {e}"
        ))
    })?;
    if !is_canonical(&reached.path) {
        return Err(inconsistent(format!(
            "the recorded target {} is not a canonical path",
            echo(&reached.path)
        )));
    }
    let real = Path::new(&reached.path);
    if how.follows() && reached.kind == Kind::Symlink {
        return Err(inconsistent(format!(
            "{} is recorded as a symlink, but this call follows symlinks: what it reached \
             cannot be one",
            echo(&reached.path)
        )));
    }
    // stat does not follow a final symlink: only the directories above it may resolve
    // elsewhere, the name stays.
    if !how.follows() && lexical.parent().is_some() && real.file_name() != lexical.file_name() {
        return Err(inconsistent(format!(
            "stat of {} cannot reach {}: a final symlink is not followed",
            echo(&lexical.display().to_string()),
            echo(&reached.path)
        )));
    }
    Ok(reached)
}

/// `largest-many`: a target per path (or none at all), each as one path's.
pub(crate) fn many_targets(
    paths: usize,
    target: Option<&Value>,
) -> Result<Vec<Option<Value>>, Refusal> {
    match target {
        None => Ok(vec![None; paths]),
        Some(Value::Array(each)) if each.len() == paths => Ok(each
            .iter()
            .map(|t| (!t.is_null()).then(|| t.clone()))
            .collect()),
        Some(_) => Err(inconsistent(format!(
            "the target of largest-many must be a list of {paths} targets (null where a path \
             reached nothing), one per path"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_target_must_be_the_paths_canonical_form() {
        let lexical = Path::new("/srv/app/current.log");
        let ok = |how, t: Value| consistent(lexical, how, &t).is_ok();
        assert!(ok(
            Use::Content,
            json!({"path": "/srv/app/current.log", "kind": "file"})
        ));
        // A symlink inside the root, followed: the canonical path differs.
        assert!(ok(
            Use::Content,
            json!({"path": "/srv/app/2026.log", "kind": "file"})
        ));
        assert!(ok(
            Use::Stat,
            json!({"path": "/srv/app/current.log", "kind": "symlink"})
        ));
        for (how, bad) in [
            (
                Use::Content,
                json!({"path": "/srv/app/current.log", "kind": "symlink"}),
            ),
            (Use::Walk, json!({"path": "/srv/app/x", "kind": "symlink"})),
            (
                Use::Stat,
                json!({"path": "/srv/app/other.log", "kind": "file"}),
            ),
            (
                Use::Content,
                json!({"path": "/srv/app/../../etc/shadow", "kind": "file"}),
            ),
            (Use::Content, json!({"path": "srv/app/x", "kind": "file"})),
            (Use::Content, json!({"path": "/srv//app/x", "kind": "file"})),
            (Use::Content, json!({"path": "/srv/app/x/", "kind": "file"})),
            (Use::Content, json!({"path": "/srv/app/x", "kind": "fifo"})),
            (Use::Content, json!({"path": "/srv/app/x"})),
            (Use::Content, json!("/srv/app/x")),
        ] {
            assert!(
                matches!(
                    consistent(lexical, how, &bad),
                    Err(Refusal::Inconsistent(_))
                ),
                "{how:?} {bad}"
            );
        }
    }

    #[test]
    fn largest_many_takes_one_target_per_path_or_none() {
        assert_eq!(many_targets(2, None).ok().unwrap().len(), 2);
        let each = json!([{"path": "/a", "kind": "dir"}, null]);
        let targets = many_targets(2, Some(&each)).ok().unwrap();
        assert!(targets[0].is_some() && targets[1].is_none());
        assert!(many_targets(3, Some(&each)).is_err());
        assert!(many_targets(2, Some(&json!({"path": "/a"}))).is_err());
    }
}
