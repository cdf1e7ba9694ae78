//! The tree walk under `largest` and `find`: iterative (an explicit stack, so no filesystem can
//! drive the host's recursion), never following symlinks, never leaving the starting filesystem
//! (like `du -x`), skipping the host's own state, and bounded in entries, depth and time.
//! Whatever it could not read is counted and makes the result `truncated`.

use std::ffi::{CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use rayon::prelude::*;

use cap_std::fs::Dir;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, StatxFlags};

use super::protect::{Guard, Identity};
use super::work::Budget;
use crate::bindings::runbook::host::fs_read::{Entry, EntryKind};

/// Most directory entries one walk visits.
pub const WALK_ENTRY_BUDGET: u64 = 500_000;
/// Deepest level a walk descends to; each level holds one open directory.
pub const MAX_WALK_DEPTH: usize = 64;
/// Most directories `run_parallel` holds open for the pool, over every walk sharing a
/// `Shared` (all the paths of one call); the rest are walked in line.
const MAX_SPLIT: usize = 256;
/// Entries between two looks at the clock (the cancel flag is read at every entry).
const CLOCK_EVERY: u64 = 64;

/// The budgets of one call, shared by its walks (`largest-many` walks several paths): entries
/// visited, and directories held open for the pool.
#[derive(Clone, Default)]
pub struct Shared {
    visited: Arc<AtomicU64>,
    split: Arc<AtomicUsize>,
}

impl Shared {
    /// Takes one of the `MAX_SPLIT` places for a directory held open for the pool.
    fn take_split(&self) -> bool {
        self.split
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < MAX_SPLIT).then_some(n + 1)
            })
            .is_ok()
    }
}

/// What `run_parallel` calls for every entry; one per parallel walk, merged by the caller.
pub trait Visitor: Send {
    /// `false` stops this walk.
    fn visit(&mut self, relative: &Path, meta: &Meta, level: usize) -> bool;
}

/// What the walk learnt of an entry from one `statx` on its name in the directory being read,
/// not following a final symlink. Listing and stat go straight through rustix: per entry only
/// the name rustix reads and the paths the visitors are given are allocated (cap-std's
/// `DirEntry` added a lock, a reference count and two more copies of the name).
pub struct Meta {
    kind: FileType,
    mode: u32,
    dev: u64,
    ino: u64,
    size: u64,
    blocks: u64,
    mtime: i64,
}

impl Meta {
    fn of(dir: &rustix::fs::Dir, name: &CStr) -> std::io::Result<Self> {
        let wanted = StatxFlags::TYPE
            | StatxFlags::MODE
            | StatxFlags::INO
            | StatxFlags::SIZE
            | StatxFlags::BLOCKS
            | StatxFlags::MTIME;
        let st = rustix::fs::statx(dir.fd()?, name, AtFlags::SYMLINK_NOFOLLOW, wanted)?;
        Ok(Self {
            kind: FileType::from_raw_mode(st.stx_mode.into()),
            mode: u32::from(st.stx_mode),
            dev: rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
            ino: st.stx_ino,
            size: st.stx_size,
            blocks: st.stx_blocks,
            mtime: st.stx_mtime.tv_sec,
        })
    }

    pub fn is_dir(&self) -> bool {
        self.kind == FileType::Directory
    }

    pub fn is_file(&self) -> bool {
        self.kind == FileType::RegularFile
    }

    /// 512-byte blocks allocated, as `du` counts.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    pub fn mtime_secs(&self) -> u64 {
        self.mtime.max(0) as u64
    }

    pub fn kind(&self) -> EntryKind {
        match self.kind {
            FileType::Symlink => EntryKind::Symlink,
            FileType::Directory => EntryKind::Dir,
            FileType::RegularFile => EntryKind::File,
            _ => EntryKind::Other,
        }
    }

    pub fn entry(&self, path: String) -> Entry {
        Entry {
            path,
            kind: self.kind(),
            size: self.size,
            modified: self.mtime_secs(),
            mode: self.mode & 0o7777,
        }
    }

    fn identity(&self) -> Identity {
        Identity {
            dev: self.dev,
            ino: self.ino,
            device_file: matches!(self.kind, FileType::CharacterDevice | FileType::BlockDevice),
        }
    }
}

pub struct Walk<'a> {
    guard: &'a Guard<'a>,
    budget: &'a Budget,
    device: u64,
    max_depth: Option<u32>,
    /// Entries visited and directories split off by this walk, the parallel walks it split
    /// into and the other walks of the same call: one budget for all.
    shared: Shared,
    /// `run_parallel`: directories under the start, kept to be walked on rayon's pool.
    split: Option<Vec<Frame>>,
    pub scanned: u64,
    /// Directories or entries that could not be read (EACCES, EMFILE, vanished, …).
    pub unreadable: u64,
    /// Directories not entered because of the depth limit.
    pub too_deep: u64,
    /// The entry or time budget ran out.
    pub stopped: bool,
}

struct Frame {
    entries: rustix::fs::Dir,
    relative: PathBuf,
    real: PathBuf,
    level: usize,
}

impl<'a> Walk<'a> {
    pub fn new(
        guard: &'a Guard<'a>,
        budget: &'a Budget,
        device: u64,
        max_depth: Option<u32>,
    ) -> Self {
        Self {
            guard,
            budget,
            device,
            max_depth,
            shared: Shared::default(),
            split: None,
            scanned: 0,
            unreadable: 0,
            too_deep: 0,
            stopped: false,
        }
    }

    /// Counts this walk against budgets other walks share (the paths of one `largest-many`).
    pub fn sharing(mut self, shared: Shared) -> Self {
        self.shared = shared;
        self
    }

    /// Sizes or results are lower bounds: something was skipped.
    pub fn truncated(&self) -> bool {
        self.stopped || self.unreadable > 0 || self.too_deep > 0
    }

    /// What `truncated` means, for the call's timeline entry.
    pub fn why_truncated(&self) -> String {
        let mut why = Vec::new();
        if self.stopped {
            why.push("entry or time budget reached".to_string());
        }
        if self.unreadable > 0 {
            why.push(format!("{} unreadable", self.unreadable));
        }
        if self.too_deep > 0 {
            why.push(format!(
                "{} directories deeper than {MAX_WALK_DEPTH}",
                self.too_deep
            ));
        }
        why.join(", ")
    }

    /// Visits everything below `start` (whose path relative to the root is `relative` and real
    /// path `real`). `visit(relative path, metadata, level)` returns false to stop the walk.
    pub fn run(
        &mut self,
        start: &Dir,
        relative: &Path,
        real: &Path,
        visit: &mut dyn FnMut(&Path, &Meta, usize) -> bool,
    ) {
        // A descriptor of its own for the listing (the caller's may be a path-only handle).
        let listing = rustix::fs::openat(
            start,
            c".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .and_then(rustix::fs::Dir::new);
        match listing {
            Ok(entries) => self.walk_from(
                Frame {
                    entries,
                    relative: relative.to_path_buf(),
                    real: real.to_path_buf(),
                    level: 1,
                },
                visit,
            ),
            Err(_) => self.unreadable += 1,
        }
    }

    /// `run` with the directories directly under `start` walked in parallel on rayon's pool
    /// (same checks, one shared entry budget); each walk visits with its own `make()`, and all
    /// the visitors come back for merging.
    pub fn run_parallel<V>(
        &mut self,
        start: &Dir,
        relative: &Path,
        real: &Path,
        make: impl Fn() -> V + Sync,
    ) -> Vec<V>
    where
        V: Visitor,
    {
        let mut top = make();
        self.split = Some(Vec::new());
        self.run(start, relative, real, &mut |rel, meta, level| {
            top.visit(rel, meta, level)
        });
        let frames = self.split.take().unwrap_or_default();
        let walked: Vec<(V, Walk)> = frames
            .into_par_iter()
            .map(|frame| {
                let mut walk = Walk {
                    shared: self.shared.clone(),
                    ..Walk::new(self.guard, self.budget, self.device, self.max_depth)
                };
                let mut visit = make();
                walk.walk_from(frame, &mut |rel, meta, level| visit.visit(rel, meta, level));
                (visit, walk)
            })
            .collect();
        let mut visitors = vec![top];
        for (visit, walk) in walked {
            self.scanned += walk.scanned;
            self.unreadable += walk.unreadable;
            self.too_deep += walk.too_deep;
            self.stopped |= walk.stopped;
            visitors.push(visit);
        }
        visitors
    }

    fn walk_from(&mut self, first: Frame, visit: &mut dyn FnMut(&Path, &Meta, usize) -> bool) {
        let mut stack = vec![first];
        let mut looked = 0u64;
        while let Some(frame) = stack.last_mut() {
            looked += 1;
            let stop = if looked.is_multiple_of(CLOCK_EVERY) {
                self.budget.check().is_err()
            } else {
                self.budget.cancelled()
            };
            if stop {
                self.stopped = true;
                return;
            }
            let item = match frame.entries.read() {
                None => {
                    stack.pop();
                    continue;
                }
                Some(Err(_)) => {
                    // A directory that fails mid-listing is abandoned, not retried.
                    self.unreadable += 1;
                    stack.pop();
                    continue;
                }
                Some(Ok(item)) => item,
            };
            let c_name = item.file_name();
            if matches!(c_name.to_bytes(), b"." | b"..") {
                continue;
            }
            self.scanned += 1;
            if self.shared.visited.fetch_add(1, Ordering::Relaxed) >= WALK_ENTRY_BUDGET {
                self.stopped = true;
                return;
            }
            let Ok(meta) = Meta::of(&frame.entries, c_name) else {
                self.unreadable += 1; // vanished or unreadable
                continue;
            };
            let name = OsStr::from_bytes(c_name.to_bytes());
            let child = joined(&frame.relative, name);
            let child_real = joined(&frame.real, name);
            let level = frame.level;
            if self.guard.refusal(&child_real, meta.identity()).is_some() {
                continue; // the host's own state: neither listed nor entered
            }
            if !visit(&child, &meta, level) {
                return;
            }
            let wanted = self.max_depth.is_none_or(|d| (level as u32) < d);
            if !(meta.is_dir() && meta.dev == self.device && wanted) {
                continue;
            }
            if level >= MAX_WALK_DEPTH {
                self.too_deep += 1;
                continue;
            }
            // Opened by its one-component name relative to the directory being read, never
            // following a symlink swapped in since, and entered only if it is still the
            // directory that was checked.
            let opened = frame
                .entries
                .fd()
                .and_then(|parent| {
                    rustix::fs::openat(
                        parent,
                        c_name,
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                })
                .and_then(|sub| {
                    let now = rustix::fs::fstat(&sub)?;
                    if now.st_dev != meta.dev || now.st_ino != meta.ino {
                        return Err(rustix::io::Errno::STALE);
                    }
                    rustix::fs::Dir::new(sub)
                });
            match opened {
                Ok(entries) => {
                    let child = Frame {
                        entries,
                        relative: child,
                        real: child_real,
                        level: level + 1,
                    };
                    match &mut self.split {
                        Some(split) if level == 1 && self.shared.take_split() => split.push(child),
                        _ => stack.push(child),
                    }
                }
                Err(_) => self.unreadable += 1,
            }
        }
    }
}

/// `base.join(name)` in one allocation (two paths are built for every entry walked).
fn joined(base: &Path, name: &OsStr) -> PathBuf {
    let mut path = PathBuf::with_capacity(base.as_os_str().len() + 1 + name.len());
    path.push(base);
    path.push(name);
    path
}
