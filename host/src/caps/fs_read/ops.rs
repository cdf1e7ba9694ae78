//! The fs-read operations themselves: synchronous, bounded, run on a blocking thread.
//! Every walk has an entry budget and a time budget so `/` cannot stall a run.

use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cap_std::fs::{Dir, File, Metadata, MetadataExt};

use super::roots::{Resolved, Roots, io_error};
use crate::bindings::CapError;
use crate::bindings::runbook::host::fs_read::{
    Entry, EntryKind, FindOptions, FsUsage, GrepMatch, GrepOptions, GrepResult, LargestResult,
    SizedEntry,
};

/// Most bytes a single read or tail returns.
pub const MAX_READ_BYTES: u64 = 16 << 20;
pub const MAX_TAIL_LINES: u32 = 10_000;
const MAX_LIST_ENTRIES: usize = 10_000;
const MAX_FIND_RESULTS: u32 = 10_000;
/// Most directory entries one walk (largest/find) visits before it reports `truncated`.
const WALK_ENTRY_BUDGET: u64 = 500_000;
const WALK_TIME_BUDGET: Duration = Duration::from_secs(10);
const MAX_GREP_MATCHES: u32 = 10_000;
/// Longest line grep keeps (the count still covers longer lines).
const MAX_LINE_BYTES: usize = 64 << 10;

type Res<T> = Result<T, CapError>;

pub fn read(roots: &Roots, path: &str, offset: u64, max_bytes: u32) -> Res<Vec<u8>> {
    let target = roots.resolve(path)?;
    let mut file = open_file(&target, path)?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| io_error(path, e))?;
    let mut buf = Vec::new();
    file.take(u64::from(max_bytes).min(MAX_READ_BYTES))
        .read_to_end(&mut buf)
        .map_err(|e| io_error(path, e))?;
    Ok(buf)
}

pub fn tail(roots: &Roots, path: &str, lines: u32) -> Res<Vec<String>> {
    let target = roots.resolve(path)?;
    let mut file = open_file(&target, path)?;
    tail_lines(&mut file, lines.min(MAX_TAIL_LINES) as usize).map_err(|e| io_error(path, e))
}

pub fn list(roots: &Roots, path: &str) -> Res<Vec<Entry>> {
    let target = roots.resolve(path)?;
    let dir = target
        .root
        .dir
        .open_dir(&target.relative)
        .map_err(|e| io_error(path, e))?;
    let mut entries = Vec::new();
    for item in dir.entries().map_err(|e| io_error(path, e))? {
        let item = item.map_err(|e| io_error(path, e))?;
        let name = PathBuf::from(item.file_name());
        let Ok(meta) = dir.symlink_metadata(&name) else {
            continue; // vanished while listing
        };
        entries.push(entry(target.host_path(&target.relative.join(&name)), &meta));
        if entries.len() >= MAX_LIST_ENTRIES {
            break;
        }
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

pub fn stat(roots: &Roots, path: &str) -> Res<Entry> {
    let target = roots.resolve(path)?;
    let meta = target
        .root
        .dir
        .symlink_metadata(&target.relative)
        .map_err(|e| io_error(path, e))?;
    Ok(entry(target.host_path(&target.relative), &meta))
}

pub fn usage(roots: &Roots, path: &str) -> Res<FsUsage> {
    let target = roots.resolve(path)?;
    let dir = &target.root.dir;
    let stats = match dir.open_dir(&target.relative) {
        Ok(d) => rustix::fs::fstatvfs(&d),
        Err(_) => rustix::fs::fstatvfs(&open_file(&target, path)?),
    }
    .map_err(|e| io_error(path, e.into()))?;
    let block = stats.f_frsize;
    let total = stats.f_blocks * block;
    let used = (stats.f_blocks - stats.f_bfree) * block;
    let available = stats.f_bavail * block;
    // df's Use%: used against what non-root users could have, rounded up.
    let used_percent = if used + available == 0 {
        0.0
    } else {
        used as f64 * 100.0 / (used + available) as f64
    };
    Ok(FsUsage {
        path: target.host_path(&target.relative),
        total_bytes: total,
        used_bytes: used,
        available_bytes: available,
        used_percent,
        total_inodes: stats.f_files,
        free_inodes: stats.f_ffree,
    })
}

pub fn largest(roots: &Roots, path: &str, depth: u32, limit: u32) -> Res<LargestResult> {
    let target = roots.resolve(path)?;
    let start = target
        .root
        .dir
        .open_dir(&target.relative)
        .map_err(|e| io_error(path, e))?;
    let device = start.dir_metadata().map_err(|e| io_error(path, e))?.dev();
    let depth = depth.max(1);
    let mut walk = Walk::new(device, None);
    // Sizes are attributed to the ancestor `depth` levels down; shallower files count as
    // themselves.
    let mut buckets: Vec<SizedEntry> = Vec::new();
    let mut index = std::collections::HashMap::<PathBuf, usize>::new();
    walk.run(&start, &target.relative, &mut |rel, meta, level| {
        let bytes = meta.blocks() * 512;
        let key: PathBuf = rel
            .strip_prefix(&target.relative)
            .unwrap_or(rel)
            .components()
            .take(depth as usize)
            .collect();
        let slot = *index.entry(key.clone()).or_insert_with(|| {
            buckets.push(SizedEntry {
                path: target.host_path(&target.relative.join(&key)),
                kind: EntryKind::File,
                bytes: 0,
            });
            buckets.len() - 1
        });
        if level as u32 <= depth {
            buckets[slot].kind = kind_of(meta);
        }
        buckets[slot].bytes += bytes;
        true
    });
    let total_bytes = buckets.iter().map(|b| b.bytes).sum();
    buckets.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.path.cmp(&b.path)));
    buckets.truncate(limit.clamp(1, 1000) as usize);
    Ok(LargestResult {
        entries: buckets,
        total_bytes,
        entries_scanned: walk.scanned,
        truncated: walk.truncated,
    })
}

pub fn find(roots: &Roots, path: &str, options: &FindOptions) -> Res<Vec<Entry>> {
    let target = roots.resolve(path)?;
    let start = target
        .root
        .dir
        .open_dir(&target.relative)
        .map_err(|e| io_error(path, e))?;
    let device = start.dir_metadata().map_err(|e| io_error(path, e))?.dev();
    let glob = match &options.name_glob {
        Some(pattern) => Some(
            globset::Glob::new(pattern)
                .map_err(|e| CapError::Invalid(format!("name-glob {pattern:?}: {e}")))?
                .compile_matcher(),
        ),
        None => None,
    };
    let cutoff = options
        .min_age_secs
        .map(|age| now_secs().saturating_sub(age));
    let files_only = options.files_only.unwrap_or(true);
    let limit = options.limit.unwrap_or(1000).min(MAX_FIND_RESULTS) as usize;
    let mut found = Vec::new();
    let mut walk = Walk::new(device, options.max_depth);
    walk.run(&start, &target.relative, &mut |rel, meta, _| {
        let name_ok = glob
            .as_ref()
            .is_none_or(|g| rel.file_name().is_some_and(|n| g.is_match(n)));
        let age_ok = cutoff.is_none_or(|c| mtime_secs(meta) <= c);
        if name_ok && age_ok && (!files_only || meta.is_file()) {
            found.push(entry(target.host_path(rel), meta));
        }
        found.len() < limit
    });
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

pub fn grep(roots: &Roots, path: &str, pattern: &str, options: &GrepOptions) -> Res<GrepResult> {
    let regex = regex::RegexBuilder::new(pattern)
        .case_insensitive(options.case_insensitive)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| CapError::Invalid(format!("pattern {pattern:?}: {e}")))?;
    let target = roots.resolve(path)?;
    let mut file = open_file(&target, path)?;
    let max_matches = options.max_matches.min(MAX_GREP_MATCHES) as usize;
    let mut result = GrepResult {
        count: 0,
        lines_scanned: 0,
        matches: Vec::new(),
    };
    let mut consider = |number: u64, line: &str| {
        result.lines_scanned += 1;
        if regex.is_match(line) {
            result.count += 1;
            if result.matches.len() < max_matches {
                result.matches.push(GrepMatch {
                    line_number: number,
                    line: line.to_string(),
                });
            }
        }
    };
    if let Some(last) = options.last_lines {
        let lines = tail_lines(&mut file, last.min(MAX_TAIL_LINES) as usize)
            .map_err(|e| io_error(path, e))?;
        // Line numbers count from the first of the last lines.
        for (i, line) in lines.iter().enumerate() {
            consider(i as u64 + 1, line);
        }
    } else {
        let mut reader = BufReader::with_capacity(256 << 10, file);
        let mut raw = Vec::new();
        let mut number = 0;
        loop {
            raw.clear();
            let n = (&mut reader)
                .take(MAX_LINE_BYTES as u64)
                .read_until(b'\n', &mut raw)
                .map_err(|e| io_error(path, e))?;
            if n == 0 {
                break;
            }
            if raw.last() != Some(&b'\n') && n == MAX_LINE_BYTES {
                // Skip the rest of an overlong line; it counts as one line.
                reader.skip_until(b'\n').map_err(|e| io_error(path, e))?;
            }
            number += 1;
            let line = String::from_utf8_lossy(&raw);
            consider(number, line.trim_end_matches(['\n', '\r']));
        }
    }
    Ok(result)
}

fn open_file(target: &Resolved<'_>, path: &str) -> Res<File> {
    let file = target
        .root
        .dir
        .open(&target.relative)
        .map_err(|e| io_error(path, e))?;
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    if meta.is_dir() {
        return Err(CapError::Invalid(format!("{path} is a directory")));
    }
    Ok(file)
}

/// Reads backwards from the end in chunks until enough newlines are seen.
fn tail_lines(file: &mut File, wanted: usize) -> io::Result<Vec<String>> {
    if wanted == 0 {
        return Ok(Vec::new());
    }
    let len = file.seek(SeekFrom::End(0))?;
    let mut start = len;
    let mut buf: Vec<u8> = Vec::new();
    const CHUNK: u64 = 64 << 10;
    while start > 0 && (buf.len() as u64) < MAX_READ_BYTES {
        let take = CHUNK.min(start);
        start -= take;
        file.seek(SeekFrom::Start(start))?;
        let mut chunk = vec![0; take as usize];
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
        // One more newline than lines wanted (the trailing one) proves we have whole lines.
        if buf.iter().filter(|&&b| b == b'\n').count() > wanted {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<&str> = text.lines().collect();
    // A partial first line (we started mid-file) is dropped only if we have enough lines.
    if start > 0 && lines.len() > wanted {
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(wanted);
    Ok(lines[skip..].iter().map(|s| s.to_string()).collect())
}

/// A depth-first walk below a directory that never follows symlinks and never leaves the
/// starting filesystem (like `du -x`).
struct Walk {
    device: u64,
    max_depth: Option<u32>,
    scanned: u64,
    truncated: bool,
    deadline: Instant,
}

impl Walk {
    fn new(device: u64, max_depth: Option<u32>) -> Self {
        Self {
            device,
            max_depth,
            scanned: 0,
            truncated: false,
            deadline: Instant::now() + WALK_TIME_BUDGET,
        }
    }

    /// `visit(relative path, metadata, level)` returns false to stop the walk.
    fn run(
        &mut self,
        dir: &Dir,
        relative: &Path,
        visit: &mut dyn FnMut(&Path, &Metadata, usize) -> bool,
    ) {
        self.descend(dir, relative, 1, visit);
    }

    fn descend(
        &mut self,
        dir: &Dir,
        relative: &Path,
        level: usize,
        visit: &mut dyn FnMut(&Path, &Metadata, usize) -> bool,
    ) -> bool {
        let Ok(entries) = dir.entries() else {
            return true; // unreadable directories count as empty, like du's "Permission denied"
        };
        for item in entries.flatten() {
            self.scanned += 1;
            if self.scanned > WALK_ENTRY_BUDGET
                || (self.scanned.is_multiple_of(1024) && Instant::now() > self.deadline)
            {
                self.truncated = true;
                return false;
            }
            let name = item.file_name();
            let Ok(meta) = dir.symlink_metadata(&name) else {
                continue;
            };
            let child = relative.join(&name);
            if !visit(&child, &meta, level) {
                return false;
            }
            let deeper = self.max_depth.is_none_or(|d| (level as u32) < d);
            if meta.is_dir() && meta.dev() == self.device && deeper {
                let Ok(sub) = item.open_dir() else { continue };
                if !self.descend(&sub, &child, level + 1, visit) {
                    return false;
                }
            }
        }
        true
    }
}

fn entry(path: String, meta: &Metadata) -> Entry {
    Entry {
        path,
        kind: kind_of(meta),
        size: meta.len(),
        modified: mtime_secs(meta),
        mode: meta.mode() & 0o7777,
    }
}

fn kind_of(meta: &Metadata) -> EntryKind {
    let t = meta.file_type();
    if t.is_symlink() {
        EntryKind::Symlink
    } else if t.is_dir() {
        EntryKind::Dir
    } else if t.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    }
}

fn mtime_secs(meta: &Metadata) -> u64 {
    meta.mtime().max(0) as u64
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn roots_at(dir: &Path) -> Roots {
        let (roots, warnings) = Roots::open(&[dir.to_path_buf()]);
        assert!(warnings.is_empty(), "{warnings:?}");
        roots
    }

    fn p(dir: &Path, rel: &str) -> String {
        dir.join(rel).display().to_string()
    }

    #[test]
    fn paths_are_checked_before_anything_is_opened() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::write(root.join("f"), "x").unwrap();
        let roots = roots_at(&root);
        let kind = |path: &str| stat(&roots, path).err().map(|e| e.kind());
        assert_eq!(kind(&p(&root, "f")), None);
        assert_eq!(kind(&format!("{}/f\0", root.display())), Some("invalid"));
        assert_eq!(kind("relative/f"), Some("invalid"));
        assert_eq!(
            kind(&format!("{}/../../etc/passwd", root.display())),
            Some("denied")
        );
        assert_eq!(kind("/etc/passwd"), Some("denied"));
        assert_eq!(kind(&p(&root, "missing")), Some("not-found"));
        // A sibling whose name starts with the root's is not inside it.
        assert_eq!(kind(&format!("{}-other/f", root.display())), Some("denied"));
    }

    #[test]
    fn symlinks_out_of_the_root_are_refused_and_inside_ones_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::write(root.join("inside.log"), "hello\n").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("passwd")).unwrap();
        std::os::unix::fs::symlink("inside.log", root.join("alias.log")).unwrap();
        let roots = roots_at(&root);
        for path in [p(&root, "etc/passwd"), p(&root, "passwd")] {
            let err = read(&roots, &path, 0, 100).unwrap_err();
            assert_eq!(err.kind(), "denied", "{path}: {err:?}");
        }
        assert_eq!(
            read(&roots, &p(&root, "alias.log"), 0, 100).unwrap(),
            b"hello\n"
        );
        // stat does not follow the final symlink.
        assert!(matches!(
            stat(&roots, &p(&root, "passwd")).unwrap().kind,
            EntryKind::Symlink
        ));
    }

    #[test]
    fn tail_returns_the_last_lines_across_chunks() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let text: String = (1..=20_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(root.join("big.log"), &text).unwrap();
        std::fs::write(root.join("short.log"), "a\nb\nc").unwrap();
        let roots = roots_at(&root);
        let last = tail(&roots, &p(&root, "big.log"), 3).unwrap();
        assert_eq!(last, ["line 19998", "line 19999", "line 20000"]);
        assert_eq!(
            tail(&roots, &p(&root, "big.log"), 9000)
                .unwrap()
                .first()
                .unwrap(),
            "line 11001"
        );
        assert_eq!(
            tail(&roots, &p(&root, "short.log"), 10).unwrap(),
            ["a", "b", "c"]
        );
        assert_eq!(tail(&roots, &p(&root, "short.log"), 2).unwrap(), ["b", "c"]);
    }

    #[test]
    fn grep_counts_every_match_and_keeps_a_bounded_sample() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let text: String = (1..=1000)
            .map(|i| {
                if i % 10 == 0 {
                    format!("{i} ERROR boom\n")
                } else {
                    format!("{i} ok\n")
                }
            })
            .collect();
        std::fs::write(root.join("app.log"), text).unwrap();
        let roots = roots_at(&root);
        let path = p(&root, "app.log");
        let opts = |ci, max, last| GrepOptions {
            case_insensitive: ci,
            max_matches: max,
            last_lines: last,
        };
        let all = grep(&roots, &path, "error", &opts(true, 3, None)).unwrap();
        assert_eq!(
            (all.count, all.lines_scanned, all.matches.len()),
            (100, 1000, 3)
        );
        assert_eq!(all.matches[0].line_number, 10);
        assert_eq!(all.matches[0].line, "10 ERROR boom");
        assert_eq!(
            grep(&roots, &path, "error", &opts(false, 0, None))
                .unwrap()
                .count,
            0
        );
        let recent = grep(&roots, &path, "ERROR", &opts(false, 0, Some(100))).unwrap();
        assert_eq!((recent.count, recent.lines_scanned), (10, 100));
        let bad = grep(&roots, &path, "(unclosed", &opts(false, 0, None)).unwrap_err();
        assert_eq!(bad.kind(), "invalid");
    }

    #[test]
    fn find_filters_by_glob_age_and_depth() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        for f in ["x.tar.gz", "a/y.tar.gz", "a/b/z.tar.gz", "a/notes.txt"] {
            std::fs::write(root.join(f), "data").unwrap();
        }
        let roots = roots_at(&root);
        let names = |opts: FindOptions| -> Vec<PathBuf> {
            find(&roots, &root.display().to_string(), &opts)
                .unwrap()
                .into_iter()
                .map(|e| {
                    PathBuf::from(e.path)
                        .strip_prefix(&root)
                        .unwrap()
                        .to_path_buf()
                })
                .collect()
        };
        let base = FindOptions {
            name_glob: Some("*.tar.gz".into()),
            min_age_secs: None,
            max_depth: None,
            limit: None,
            files_only: None,
        };
        assert_eq!(
            names(base.clone()),
            [
                PathBuf::from("a/b/z.tar.gz"),
                "a/y.tar.gz".into(),
                "x.tar.gz".into()
            ]
        );
        assert_eq!(
            names(FindOptions {
                max_depth: Some(1),
                ..base.clone()
            }),
            [PathBuf::from("x.tar.gz")]
        );
        assert!(
            names(FindOptions {
                min_age_secs: Some(3600),
                ..base
            })
            .is_empty()
        );
    }
}
