//! The fs-read operations themselves: synchronous, run on a blocking thread, bounded in bytes,
//! entries and time (every loop checks the call's `Budget`). Each resolves the path through
//! cap-std to the object it names and refuses the host's own state before touching content;
//! only regular files are read, opened non-blocking and without following a final symlink.

use crate::text::echo;
use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use cap_std::fs::{Dir, File, Metadata, MetadataExt, OpenOptions, OpenOptionsExt};
use grep_matcher::Matcher;
use grep_regex::RegexMatcherBuilder;
use grep_searcher::{BinaryDetection, Searcher, SearcherBuilder, Sink, SinkMatch};

use super::protect::{Guard, Identity, is_within};
use super::roots::{Access, Resolved, Roots, io_error};
use super::walk::{MAX_WALK_DEPTH, Meta, Shared, Visitor, Walk};
use super::work::Budget;
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
const MAX_GREP_MATCHES: u32 = 10_000;
/// Longest line grep keeps (the count still covers longer lines).
const MAX_LINE_BYTES: usize = 64 << 10;
/// Most bytes one grep scans; a bigger file needs `last-lines`.
pub const MAX_GREP_BYTES: u64 = 1 << 30;
pub const MAX_PATTERN_BYTES: usize = 1024;
pub const MAX_GLOB_BYTES: usize = 256;
/// Compiled regex and its lazy DFA cache.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
const REGEX_DFA_LIMIT: usize = 2 << 20;
/// Bytes read between two budget checks.
const CHUNK: usize = 64 << 10;
/// Longest line the grep searcher buffers whole (a longer one is refused, not allocated).
const MAX_LINE_BUFFER: usize = 16 << 20;

type Res<T> = Result<T, CapError>;

/// What every operation works with: the grants, the protected set, the budget.
pub struct Cx<'a> {
    pub roots: &'a Roots,
    pub guard: &'a Guard<'a>,
    pub budget: &'a Budget,
}

/// Results of a walk the timeline should explain.
pub struct WalkNote {
    pub scanned: u64,
    pub truncated: Option<String>,
}

pub fn read(cx: &Cx, path: &str, offset: u64, max_bytes: u32) -> Res<Vec<u8>> {
    let mut file = open_regular(cx, path)?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| io_error(path, e))?;
    let want = u64::from(max_bytes).min(MAX_READ_BYTES) as usize;
    let mut buf = Vec::new();
    while buf.len() < want {
        cx.budget.check_call("read")?;
        let take = (want - buf.len()).min(CHUNK);
        let before = buf.len();
        (&mut file)
            .take(take as u64)
            .read_to_end(&mut buf)
            .map_err(|e| io_error(path, e))?;
        if buf.len() == before {
            break; // end of file
        }
    }
    Ok(buf)
}

pub fn tail(cx: &Cx, path: &str, lines: u32) -> Res<Vec<String>> {
    let mut file = open_regular(cx, path)?;
    tail_lines(
        &mut file,
        lines.min(MAX_TAIL_LINES) as usize,
        cx.budget,
        path,
    )
}

pub fn list(cx: &Cx, path: &str) -> Res<Vec<Entry>> {
    let (target, dir, real) = open_dir(cx, path)?;
    let mut entries = Vec::new();
    for item in dir.entries().map_err(|e| io_error(path, e))? {
        cx.budget.check_call("list-dir")?;
        let item = item.map_err(|e| io_error(path, e))?;
        let name = PathBuf::from(item.file_name());
        let Ok(meta) = item.metadata() else {
            continue; // vanished while listing
        };
        if cx
            .guard
            .refusal(&real.join(&name), Identity::of_metadata(&meta))
            .is_some()
        {
            continue;
        }
        entries.push(entry(target.host_path(&target.relative.join(&name)), &meta));
        if entries.len() >= MAX_LIST_ENTRIES {
            break;
        }
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

pub fn stat(cx: &Cx, path: &str) -> Res<Entry> {
    let target = cx.roots.resolve(path, Access::Metadata)?;
    let (relative, real) = target.real(false, path)?;
    let meta = target
        .root
        .dir
        .symlink_metadata(&relative)
        .map_err(|e| io_error(path, e))?;
    cx.guard
        .check(&real, Identity::of_metadata(&meta), &echo(path))?;
    Ok(entry(target.host_path(&target.relative), &meta))
}

pub fn usage(cx: &Cx, path: &str) -> Res<FsUsage> {
    let target = cx.roots.resolve(path, Access::Metadata)?;
    let (relative, real) = target.real(true, path)?;
    let meta = target
        .root
        .dir
        .metadata(&relative)
        .map_err(|e| io_error(path, e))?;
    cx.guard
        .check(&real, Identity::of_metadata(&meta), &echo(path))?;
    let stats = if meta.is_dir() {
        let (_, dir, _) = open_dir(cx, path)?;
        rustix::fs::fstatvfs(&dir)
    } else {
        rustix::fs::fstatvfs(&open_regular(cx, path)?)
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

pub fn largest(cx: &Cx, path: &str, depth: u32, limit: u32) -> Res<(LargestResult, WalkNote)> {
    largest_counted(cx, path, depth, limit, Shared::default())
}

/// `largest`, counted against budgets the paths of one `largest-many` call share.
pub fn largest_counted(
    cx: &Cx,
    path: &str,
    depth: u32,
    limit: u32,
    shared: Shared,
) -> Res<(LargestResult, WalkNote)> {
    let (target, start, real) = open_dir(cx, path)?;
    let device = start.dir_metadata().map_err(|e| io_error(path, e))?.dev();
    let depth = depth.clamp(1, MAX_WALK_DEPTH as u32);
    let mut walk = Walk::new(cx.guard, cx.budget, device, None).sharing(shared);
    // Sizes are attributed to the ancestor `depth` levels down; shallower files count as
    // themselves. Each parallel walk sums into its own buckets, merged by key below.
    let sums = walk.run_parallel(&start, &target.relative, &real, || Buckets {
        start: &target.relative,
        depth: depth as usize,
        sums: HashMap::new(),
        current: None,
    });
    let mut all = Buckets {
        start: &target.relative,
        depth: depth as usize,
        sums: HashMap::new(),
        current: None,
    };
    for sums in sums {
        for (key, (bytes, kind)) in sums.finish() {
            all.add(key, bytes, kind);
        }
    }
    let mut buckets: Vec<SizedEntry> = all
        .finish()
        .into_iter()
        .map(|(key, (bytes, kind))| SizedEntry {
            path: target.host_path(&target.relative.join(&key)),
            kind: kind.unwrap_or(EntryKind::File),
            bytes,
        })
        .collect();
    if let Err(stop) = cx.budget.check()
        && stop == super::work::Stop::Cancelled
    {
        return Err(stop.error("largest"));
    }
    let total_bytes = buckets.iter().map(|b| b.bytes).sum();
    buckets.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.path.cmp(&b.path)));
    buckets.truncate(limit.clamp(1, 1000) as usize);
    let note = WalkNote {
        scanned: walk.scanned,
        truncated: walk.truncated().then(|| walk.why_truncated()),
    };
    Ok((
        LargestResult {
            entries: buckets,
            total_bytes,
            entries_scanned: walk.scanned,
            truncated: walk.truncated(),
        },
        note,
    ))
}

/// `largest`'s sums: bytes per ancestor `depth` levels under the start, and its kind once an
/// entry at that level (or shallower) was seen. A walk visits a subtree's entries one after the
/// other, so the current key's sum is kept aside (with the ancestor's path as the walk spells
/// it) and hashed in only when the key changes; an entry below the ancestor is recognised by
/// that path's bytes, without parsing its components.
struct Buckets<'p> {
    start: &'p Path,
    depth: usize,
    sums: HashMap<PathBuf, (u64, Option<EntryKind>)>,
    current: Option<Current>,
}

struct Current {
    key: PathBuf,
    /// The ancestor's path relative to the root, a prefix of its descendants' paths.
    ancestor: PathBuf,
    bytes: u64,
    kind: Option<EntryKind>,
}

impl Buckets<'_> {
    fn add(&mut self, key: PathBuf, bytes: u64, kind: Option<EntryKind>) {
        let sum = self.sums.entry(key).or_insert((0, None));
        sum.0 += bytes;
        if kind.is_some() {
            sum.1 = kind;
        }
    }

    fn finish(mut self) -> HashMap<PathBuf, (u64, Option<EntryKind>)> {
        if let Some(current) = self.current.take() {
            self.add(current.key, current.bytes, current.kind);
        }
        self.sums
    }
}

impl Visitor for Buckets<'_> {
    fn visit(&mut self, relative: &Path, meta: &Meta, level: usize) -> bool {
        let bytes = meta.blocks() * 512;
        if level > self.depth
            && let Some(current) = &mut self.current
            && is_within(relative, &current.ancestor)
        {
            current.bytes += bytes;
            return true;
        }
        let below = relative.strip_prefix(self.start).unwrap_or(relative);
        let kind = (level <= self.depth).then(|| meta.kind());
        let key: PathBuf = below.components().take(self.depth).collect();
        let ancestor = relative
            .ancestors()
            .nth(level.saturating_sub(self.depth))
            .unwrap_or(relative)
            .to_path_buf();
        let next = Current {
            key,
            ancestor,
            bytes,
            kind,
        };
        if let Some(done) = self.current.replace(next) {
            self.add(done.key, done.bytes, done.kind);
        }
        true
    }
}

pub fn find(cx: &Cx, path: &str, options: &FindOptions) -> Res<(Vec<Entry>, WalkNote)> {
    let glob = match &options.name_glob {
        Some(pattern) if pattern.len() > MAX_GLOB_BYTES => {
            return Err(CapError::Invalid(format!(
                "name-glob {} is longer than {MAX_GLOB_BYTES} bytes",
                echo(pattern)
            )));
        }
        Some(pattern) => Some(
            globset::Glob::new(pattern)
                .map_err(|e| CapError::Invalid(format!("name-glob {:?}: {e}", echo(pattern))))?
                .compile_matcher(),
        ),
        None => None,
    };
    let (target, start, real) = open_dir(cx, path)?;
    let device = start.dir_metadata().map_err(|e| io_error(path, e))?.dev();
    let cutoff = options
        .min_age_secs
        .map(|age| now_secs().saturating_sub(age));
    let files_only = options.files_only.unwrap_or(true);
    let limit = options.limit.unwrap_or(1000).min(MAX_FIND_RESULTS) as usize;
    let mut found = Vec::new();
    let mut walk = Walk::new(cx.guard, cx.budget, device, options.max_depth);
    walk.run(&start, &target.relative, &real, &mut |rel, meta, _| {
        let name_ok = glob
            .as_ref()
            .is_none_or(|g| rel.file_name().is_some_and(|n| g.is_match(n)));
        let age_ok = cutoff.is_none_or(|c| meta.mtime_secs() <= c);
        if name_ok && age_ok && (!files_only || meta.is_file()) {
            found.push(meta.entry(target.host_path(rel)));
        }
        found.len() < limit
    });
    if let Err(stop) = cx.budget.check()
        && stop == super::work::Stop::Cancelled
    {
        return Err(stop.error("find"));
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    let note = WalkNote {
        scanned: walk.scanned,
        truncated: walk.truncated().then(|| walk.why_truncated()),
    };
    Ok((found, note))
}

pub fn grep(cx: &Cx, path: &str, pattern: &str, options: &GrepOptions) -> Res<GrepResult> {
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(CapError::Invalid(format!(
            "pattern {} is longer than {MAX_PATTERN_BYTES} bytes",
            echo(pattern)
        )));
    }
    // ripgrep's engine: linear time with its size limits set; the time a pattern costs per byte
    // is bounded by the budget checks in `Guarded`, one per buffer the searcher reads.
    let matcher = RegexMatcherBuilder::new()
        .case_insensitive(options.case_insensitive)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_LIMIT)
        .nest_limit(64)
        // Lines as GNU grep sees them (`$` is before "\n" only), so counts equal `grep -c`.
        .line_terminator(Some(b'\n'))
        .build(pattern)
        .map_err(|e| CapError::Invalid(format!("pattern {:?}: {e}", echo(pattern))))?;
    let mut file = open_regular(cx, path)?;
    let max_matches = options.max_matches.min(MAX_GREP_MATCHES) as usize;
    let mut found = Found {
        result: GrepResult {
            count: 0,
            lines_scanned: 0,
            matches: Vec::new(),
        },
        max_matches,
    };
    if let Some(last) = options.last_lines {
        let lines = tail_lines(
            &mut file,
            last.min(MAX_TAIL_LINES) as usize,
            cx.budget,
            path,
        )?;
        // Line numbers count from the first of the last lines.
        for (i, line) in lines.iter().enumerate() {
            if i % 64 == 0 {
                cx.budget.check_call("grep")?;
            }
            found.result.lines_scanned += 1;
            let hit = matcher.is_match(line.as_bytes()).unwrap_or(false);
            if hit {
                found.keep(i as u64 + 1, line.as_bytes());
            }
        }
        return Ok(found.result);
    }
    let size = file.metadata().map_err(|e| io_error(path, e))?.len();
    if size > MAX_GREP_BYTES {
        return Err(CapError::Invalid(format!(
            "{} is {size} bytes; grep scans at most {MAX_GREP_BYTES} bytes of a file: pass \
             last-lines",
            echo(path)
        )));
    }
    // A file growing while it is scanned stops at the same cap.
    let mut reader = Guarded {
        inner: file.take(MAX_GREP_BYTES),
        budget: cx.budget,
        stopped: None,
        read_failed: false,
        newlines: 0,
        last_byte: None,
    };
    let mut searcher = SearcherBuilder::new()
        .line_number(true)
        .binary_detection(BinaryDetection::none())
        // The longest line the searcher buffers; a longer one is refused, not allocated.
        .heap_limit(Some(MAX_LINE_BUFFER))
        .build();
    let searched = searcher.search_reader(&matcher, &mut reader, &mut found);
    if let Some(stop) = reader.stopped {
        return Err(stop);
    }
    if let Err(e) = searched {
        if reader.read_failed {
            return Err(io_error(path, e));
        }
        // Not the file, not the budget: the searcher's own limit, a line past its heap limit.
        return Err(CapError::Invalid(format!(
            "{} has a line longer than {MAX_LINE_BUFFER} bytes ({e})",
            echo(path)
        )));
    }
    // Lines the searcher saw: newlines, plus an unterminated last line.
    found.result.lines_scanned =
        reader.newlines + u64::from(reader.last_byte.is_some_and(|b| b != b'\n'));
    Ok(found.result)
}

/// What the searcher found: every matching line counted, the first `max_matches` kept.
struct Found {
    result: GrepResult,
    max_matches: usize,
}

impl Found {
    fn keep(&mut self, line_number: u64, line: &[u8]) {
        self.result.count += 1;
        if self.result.matches.len() < self.max_matches {
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = &line[..line.len().min(MAX_LINE_BYTES)];
            self.result.matches.push(GrepMatch {
                line_number,
                line: String::from_utf8_lossy(line).into_owned(),
            });
        }
    }
}

impl Sink for Found {
    type Error = io::Error;

    fn matched(&mut self, _: &Searcher, found: &SinkMatch<'_>) -> Result<bool, io::Error> {
        // Not multi-line: one match is one line.
        self.keep(found.line_number().unwrap_or(0), found.bytes());
        Ok(true)
    }
}

/// The searcher's input: checks the call's budget (time, cancellation) before every buffer it
/// reads, and counts lines on the way (the searcher only numbers the lines it reports).
struct Guarded<'b, R> {
    inner: R,
    budget: &'b Budget,
    stopped: Option<CapError>,
    read_failed: bool,
    newlines: u64,
    last_byte: Option<u8>,
}

impl<R: Read> Read for Guarded<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Err(stop) = self.budget.check_call("grep") {
            self.stopped = Some(stop);
            return Err(io::Error::other("grep stopped"));
        }
        let n = self
            .inner
            .read(buf)
            .inspect_err(|_| self.read_failed = true)?;
        if n > 0 {
            self.newlines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
            self.last_byte = Some(buf[n - 1]);
        }
        Ok(n)
    }
}

/// A regular file for reading, or `invalid` (directory, FIFO, socket) / `denied` (the host's
/// own state, a device) before a byte is read. The type is checked on the path, then again on
/// the handle, which is opened non-blocking (a FIFO swapped in cannot park the thread) and
/// without following a final symlink (symlinks inside the root were resolved first).
fn open_regular(cx: &Cx, path: &str) -> Res<File> {
    let target = cx.roots.resolve(path, Access::Content)?;
    let (relative, real) = target.real(true, path)?;
    let dir = &target.root.dir;
    let meta = dir
        .symlink_metadata(&relative)
        .map_err(|e| io_error(path, e))?;
    let shown_path = echo(path);
    cx.guard
        .check(&real, Identity::of_metadata(&meta), &shown_path)?;
    not_regular(&meta, &shown_path)?;
    let flags =
        rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NOCTTY;
    let file = dir
        .open_with(
            &relative,
            OpenOptions::new()
                .read(true)
                .custom_flags(flags.bits() as i32),
        )
        .map_err(|e| io_error(path, e))?;
    cx.guard.check_handle(&file, &shown_path)?;
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    not_regular(&meta, &shown_path)?;
    Ok(file)
}

fn not_regular(meta: &Metadata, shown_path: &str) -> Res<()> {
    if meta.is_file() {
        return Ok(());
    }
    let what = if meta.is_dir() {
        "a directory"
    } else {
        "not a regular file (FIFO, socket or symlink)"
    };
    Err(CapError::Invalid(format!(
        "{shown_path} is {what}: only regular files are read"
    )))
}

/// A directory to list or walk, checked on its handle; with its real path.
fn open_dir<'r>(cx: &Cx<'r>, path: &str) -> Res<(Resolved<'r>, Dir, PathBuf)> {
    let target = cx.roots.resolve(path, Access::Metadata)?;
    let (relative, real) = target.real(true, path)?;
    let dir = target
        .root
        .dir
        .open_dir(&relative)
        .map_err(|e| io_error(path, e))?;
    cx.guard.check_handle(&dir, &echo(path))?;
    Ok((target, dir, real))
}

/// Reads backwards from the end in chunks until enough newlines are seen, or the byte cap.
fn tail_lines(file: &mut File, wanted: usize, budget: &Budget, path: &str) -> Res<Vec<String>> {
    if wanted == 0 {
        return Ok(Vec::new());
    }
    let io = |e: io::Error| io_error(path, e);
    let len = file.seek(SeekFrom::End(0)).map_err(io)?;
    let mut start = len;
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut total = 0u64;
    let mut newlines = 0usize;
    // One more newline than lines wanted (the trailing one) proves we have whole lines.
    while start > 0 && total < MAX_READ_BYTES && newlines <= wanted {
        budget.check_call("tail")?;
        let take = (CHUNK as u64).min(start);
        start -= take;
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        let mut chunk = vec![0; take as usize];
        file.read_exact(&mut chunk).map_err(io)?;
        newlines += chunk.iter().filter(|&&b| b == b'\n').count();
        total += take;
        chunks.push(chunk);
    }
    let buf: Vec<u8> = chunks.into_iter().rev().flatten().collect();
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<&str> = text.lines().collect();
    // A partial first line (we started mid-file) is dropped only if we have enough lines.
    if start > 0 && lines.len() > wanted {
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(wanted);
    Ok(lines[skip..].iter().map(|s| s.to_string()).collect())
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
mod tests;
