//! The host's own state, which no fs-read grant reaches: its entries under /proc (process and
//! every thread), its config file and the secret files it names, the run store with its
//! journals, the compile cache, and device files anywhere. Decided on the object a call opened
//! or a walk met (device + inode, the real path the kernel reports), never on the text a
//! playbook passed.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::path::{Component, Path, PathBuf};

use crate::bindings::CapError;

/// What the host protects, as configured at start. Paths are canonical (a file that does not
/// exist yet, like the store's `-wal`, by its canonical directory and name).
#[derive(Debug, Default)]
pub struct Protected {
    files: Vec<PathBuf>,
    /// Everything below these is protected too.
    dirs: Vec<PathBuf>,
}

/// What an object is, from `stat`/`fstat`.
#[derive(Debug, Clone, Copy)]
pub struct Identity {
    pub dev: u64,
    pub ino: u64,
    pub device_file: bool,
}

impl Identity {
    pub fn of_metadata(meta: &cap_std::fs::Metadata) -> Self {
        use cap_std::fs::{FileTypeExt, MetadataExt};
        let t = meta.file_type();
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            device_file: t.is_char_device() || t.is_block_device(),
        }
    }

    fn of_stat(st: &rustix::fs::Stat) -> Self {
        use rustix::fs::FileType;
        let kind = FileType::from_raw_mode(st.st_mode);
        Self {
            dev: st.st_dev,
            ino: st.st_ino,
            device_file: matches!(kind, FileType::CharacterDevice | FileType::BlockDevice),
        }
    }
}

impl Protected {
    /// `files`: the config, secret files, the run store (its `-wal`, `-shm` and `-journal` are
    /// added); `dirs`: the compile cache.
    pub fn new(
        files: impl IntoIterator<Item = PathBuf>,
        store: Option<&Path>,
        dirs: impl IntoIterator<Item = PathBuf>,
    ) -> Self {
        let mut all: Vec<PathBuf> = files.into_iter().collect();
        if let Some(store) = store {
            all.push(store.to_path_buf());
            for suffix in ["-wal", "-shm", "-journal"] {
                let mut name = store.as_os_str().to_os_string();
                name.push(suffix);
                all.push(name.into());
            }
        }
        Self {
            files: all.iter().filter_map(|p| canonical(p)).collect(),
            dirs: dirs.into_iter().filter_map(|p| canonical(&p)).collect(),
        }
    }

    /// The identities of the protected files and directories as they are now (the store's
    /// journals come and go), for one call.
    pub fn snapshot(&self) -> Guard<'_> {
        let ids = self
            .files
            .iter()
            .chain(&self.dirs)
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| {
                use std::os::unix::fs::MetadataExt;
                (m.dev(), m.ino())
            })
            .collect();
        let proc_dev = std::fs::metadata("/proc").ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.dev()
        });
        Guard {
            protected: self,
            ids,
            proc_dev,
            pid: std::process::id(),
            exe: executable_of("self"),
        }
    }
}

impl Protected {
    /// Replay: why `real` (a canonical path a fixture says a call reached) is out of reach,
    /// judged by the path alone, as nothing is opened: the host's named files and
    /// directories, its entries under /proc, any device.
    pub fn refusal_by_path(&self, real: &Path, device_file: bool) -> Option<&'static str> {
        if device_file {
            return Some("is a device file");
        }
        let pid = std::process::id().to_string();
        let host_proc = is_within(real, Path::new("/proc"))
            && real.components().any(|c| {
                matches!(c, Component::Normal(name)
                    if name == "self" || name == "thread-self" || name == pid.as_str())
            });
        if host_proc
            || self.files.iter().any(|f| f == real)
            || self.dirs.iter().any(|d| is_within(real, d))
        {
            return Some("is the host's own state");
        }
        None
    }
}

/// The canonical form of a path that may not exist yet: its directory canonicalised.
fn canonical(path: &Path) -> Option<PathBuf> {
    if let Ok(c) = path.canonicalize() {
        return Some(c);
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.canonicalize().ok()?,
        _ => std::env::current_dir().ok()?,
    };
    Some(parent.join(path.file_name()?))
}

/// One call's view of the protected set.
pub struct Guard<'a> {
    protected: &'a Protected,
    /// A handful of (device, inode) pairs, looked up for every entry a walk meets: a scan
    /// beats hashing them.
    ids: Vec<(u64, u64)>,
    proc_dev: Option<u64>,
    pid: u32,
    /// The host's executable: another process running it (a `host run` next to `host
    /// serve`) holds the same secrets in its environment and memory.
    exe: Option<(u64, u64)>,
}

impl Guard<'_> {
    /// Why `real` (the object's real path) with identity `id` is out of reach, if it is.
    pub fn refusal(&self, real: &Path, id: Identity) -> Option<&'static str> {
        if id.device_file {
            return Some("is a device file");
        }
        if self.ids.contains(&(id.dev, id.ino))
            || self
                .protected
                .files
                .iter()
                .any(|f| f.as_os_str() == real.as_os_str())
            || self.protected.dirs.iter().any(|d| is_within(real, d))
            || self.is_host_proc(real, id.dev)
        {
            return Some("is the host's own state");
        }
        None
    }

    /// `denied` for a protected object; `shown` is the playbook's path as echoed.
    pub fn check(&self, real: &Path, id: Identity, shown: &str) -> Result<(), CapError> {
        match self.refusal(real, id) {
            Some(why) => Err(CapError::Denied(format!(
                "{shown} {why}: no fs-read grant reaches it"
            ))),
            None => Ok(()),
        }
    }

    /// The same check on an open handle: what the kernel says it is and where it really is.
    pub fn check_handle(&self, handle: impl AsFd, shown: &str) -> Result<(), CapError> {
        let fd = handle.as_fd();
        let st =
            rustix::fs::fstat(fd).map_err(|e| CapError::Failed(format!("{shown}: fstat: {e}")))?;
        let real = real_path(fd)
            .map_err(|e| CapError::Failed(format!("{shown}: resolving the opened file: {e}")))?;
        self.check(&real, Identity::of_stat(&st), shown)
    }

    /// The host's process or one of its threads under procfs: `/proc/<pid>`, `/proc/<tid>`,
    /// `/proc/self`, `/proc/thread-self` and everything below them; the same for every other
    /// process running the host's executable.
    fn is_host_proc(&self, real: &Path, dev: u64) -> bool {
        let on_procfs = Some(dev) == self.proc_dev || is_within(real, Path::new("/proc"));
        on_procfs
            && real.components().any(|c| match c {
                Component::Normal(name) => self.is_host_task(name),
                _ => false,
            })
    }

    fn is_host_task(&self, name: &OsStr) -> bool {
        if name == "self" || name == "thread-self" {
            return true;
        }
        let Some(id) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            return false;
        };
        // The thread list changes as the runtime starts threads: asked live.
        id == self.pid
            || Path::new("/proc/self/task").join(name).exists()
            || (self.exe.is_some() && executable_of(&id.to_string()) == self.exe)
    }
}

/// `path` is `dir` or below it. Called for every entry a walk meets, so it compares bytes
/// instead of parsing components: the paths here are normalised (canonical roots joined with
/// entry names, or what the kernel reports), for which the two agree.
pub fn is_within(path: &Path, dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let (path, dir) = (path.as_os_str().as_bytes(), dir.as_os_str().as_bytes());
    path.starts_with(dir)
        && (path.len() == dir.len() || dir.ends_with(b"/") || path[dir.len()] == b'/')
}

/// Device and inode of the executable a process (or thread) runs; `None` when the kernel does
/// not say (another user's process, a kernel thread, no such process).
fn executable_of(process: &str) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(format!("/proc/{process}/exe")).ok()?;
    Some((meta.dev(), meta.ino()))
}

/// The path the kernel has for an open file descriptor.
fn real_path(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_of(path: &Path) -> Identity {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let m = std::fs::metadata(path).unwrap();
        Identity {
            dev: m.dev(),
            ino: m.ino(),
            device_file: m.file_type().is_char_device() || m.file_type().is_block_device(),
        }
    }

    #[test]
    fn is_within_agrees_with_path_starts_with_on_normalised_paths() {
        for (path, dir) in [
            ("/a/b", "/a"),
            ("/a", "/a"),
            ("/ab", "/a"),
            ("/a/b", "/"),
            ("/", "/"),
            ("/proc", "/proc"),
            ("/proc/1/environ", "/proc"),
            ("/process", "/proc"),
            ("/a", "/a/b"),
            ("./x/y", "./x"),
            ("./xy", "./x"),
        ] {
            let (path, dir) = (Path::new(path), Path::new(dir));
            assert_eq!(
                is_within(path, dir),
                path.starts_with(dir),
                "{path:?} {dir:?}"
            );
        }
    }

    #[test]
    fn host_proc_entries_devices_and_named_files_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        std::fs::write(dir.join("host.toml"), "x").unwrap();
        std::fs::write(dir.join("runs.sqlite3"), "x").unwrap();
        std::fs::write(dir.join("other"), "x").unwrap();
        std::fs::create_dir(dir.join("cache")).unwrap();
        std::fs::write(dir.join("cache/a.cwasm"), "x").unwrap();
        std::fs::hard_link(dir.join("host.toml"), dir.join("alias")).unwrap();
        let protected = Protected::new(
            [dir.join("host.toml")],
            Some(&dir.join("runs.sqlite3")),
            [dir.join("cache")],
        );
        let guard = protected.snapshot();
        let refused = |p: &Path| guard.refusal(p, id_of(p));
        assert_eq!(refused(&dir.join("other")), None);
        for p in [
            "host.toml",
            "alias",
            "runs.sqlite3",
            "cache",
            "cache/a.cwasm",
        ] {
            assert_eq!(
                refused(&dir.join(p)),
                Some("is the host's own state"),
                "{p}"
            );
        }
        // A journal that appears after start is refused by its path.
        std::fs::write(dir.join("runs.sqlite3-wal"), "x").unwrap();
        assert!(refused(&dir.join("runs.sqlite3-wal")).is_some());

        let pid = std::process::id().to_string();
        let thread = std::fs::read_link("/proc/thread-self").unwrap();
        let tid = thread.file_name().unwrap().to_str().unwrap().to_string();
        for p in [
            format!("/proc/{pid}/environ"),
            format!("/proc/{tid}/environ"),
            format!("/proc/{pid}/task/{tid}/mem"),
        ] {
            assert!(refused(Path::new(&p)).is_some(), "{p}");
        }
        assert_eq!(refused(Path::new("/proc/1/stat")), None);
        assert_eq!(refused(Path::new("/dev/zero")), Some("is a device file"));
        let handle = std::fs::File::open("/proc/self/environ").unwrap();
        assert_eq!(
            guard.check_handle(&handle, "x").unwrap_err().kind(),
            "denied"
        );
    }
}
