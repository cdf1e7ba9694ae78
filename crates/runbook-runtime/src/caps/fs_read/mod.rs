//! The `fs-read` capability: read-only, confined to the playbook's granted roots (content roots
//! from `fs-read`, metadata-only ones from `fs-meta`), never reaching the host's own state, with
//! the heavy lifting (tree walks, regex over logs) done natively on a blocking thread that stops
//! at the run's deadline.

mod many;
pub mod ops;
mod protect;
mod replay;
mod roots;
mod walk;
mod work;

use crate::text::echo;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use tokio::sync::Semaphore;

pub use many::MAX_LARGEST_PATHS;
pub use protect::Protected;
pub use roots::{MAX_PATH_BYTES, Roots};
pub use walk::{MAX_WALK_DEPTH, WALK_ENTRY_BUDGET};
pub use work::{CALL_TIME_BUDGET, GLOBAL_SLOTS, RUN_SLOTS};

use crate::bindings::CapError;
use crate::bindings::runbook::host::fs_read::{
    self, Entry, FindOptions, FindResult, FsUsage, GrepOptions, GrepResult, LargestResult,
};
use crate::calls::seam::{Gate, Refusal, arg, replay_call, taped, targeted};
use crate::policy::Grants;
use ops::{Cx, MAX_GLOB_BYTES, MAX_PATTERN_BYTES};
use replay::Use;

/// The `fs-read` interface's view of a run: the run's `Calls` and its fs-read context.
pub struct FsReadView<'a> {
    pub(crate) calls: &'a mut crate::calls::Calls,
    pub(crate) fs: &'a Arc<FsRead>,
}
crate::calls::view_of_calls!(FsReadView);

/// Links the interface to `FsReadView` (`add_to_linker_instance::<_, FsReads>`).
pub struct FsReads;
impl wasmtime::component::HasData for FsReads {
    type Data<'a> = FsReadView<'a>;
}

type CallResult<T> = wasmtime::Result<Result<T, CapError>>;

/// One run's fs-read context: its roots, the host's protected set, its worker slots and the
/// run's deadline, at which unfinished work stops.
pub struct FsRead {
    roots: Roots,
    protected: Arc<Protected>,
    slots: Arc<Semaphore>,
    clock: Arc<crate::calls::RunClock>,
}

impl FsRead {
    /// Roots that cannot be opened come back as warnings for the timeline.
    pub fn new(
        grants: &Grants,
        protected: Arc<Protected>,
        clock: Arc<crate::calls::RunClock>,
    ) -> (Self, Vec<String>) {
        let (roots, warnings) = Roots::open(&grants.fs_read, &grants.fs_meta);
        let fs = Self {
            roots,
            protected,
            slots: work::run_slots(),
            clock,
        };
        (fs, warnings)
    }

    /// Runs an operation here, on this thread, as a call would (benchmarks, tools).
    pub fn with_cx<T>(&self, op: impl FnOnce(&Cx) -> T) -> T {
        let guard = self.protected.snapshot();
        let budget = work::Budget::new(self.clock.deadline());
        op(&Cx {
            roots: &self.roots,
            guard: &guard,
            budget: &budget,
        })
    }
}

/// A playbook's string as the timeline records it: whole up to `cap`, else shortened with its
/// length (over the cap the call is refused anyway).
fn recorded(text: &str, cap: usize) -> String {
    if text.len() <= cap {
        text.to_string()
    } else {
        echo(text).into_owned()
    }
}

fn recorded_path(path: &str) -> String {
    recorded(path, MAX_PATH_BYTES)
}

impl FsReadView<'_> {
    async fn fs_call<T: Send + 'static>(
        &mut self,
        function: &str,
        args: Value,
        op: impl FnOnce(&Cx) -> Result<T, CapError> + Send + 'static,
        summary: impl FnOnce(&T) -> String,
    ) -> CallResult<T> {
        self.begin_call()?;
        let fs = self.fs.clone();
        let started = Instant::now();
        let result = work::run_blocking(&fs.slots, fs.clock.deadline(), {
            let fs = fs.clone();
            move |budget| {
                let guard = fs.protected.snapshot();
                op(&Cx {
                    roots: &fs.roots,
                    guard: &guard,
                    budget,
                })
            }
        })
        .await;
        self.record_call(
            "fs-read",
            function,
            args,
            &result,
            summary,
            started.elapsed(),
        );
        Ok(result)
    }

    /// `find` and `find-entries`: one walk, two shapes of answer.
    async fn find_call(
        &mut self,
        function: &str,
        path: String,
        options: FindOptions,
    ) -> CallResult<FindResult> {
        let args = json!({
            "path": recorded_path(&path),
            "name-glob": options.name_glob.as_deref().map(|g| recorded(g, MAX_GLOB_BYTES)),
            "min-age-secs": options.min_age_secs,
            "max-depth": options.max_depth,
            "limit": options.limit,
        });
        let result = self
            .fs_call(
                function,
                args,
                move |cx| ops::find(cx, &path, &options),
                |(found, note)| walk_summary(format!("{} found", found.len()), note),
            )
            .await?;
        Ok(result.map(|(entries, note)| FindResult {
            entries,
            entries_scanned: note.scanned,
            truncated: note.truncated.is_some(),
        }))
    }
}

fn walk_summary(what: String, note: &ops::WalkNote) -> String {
    match &note.truncated {
        Some(why) => format!("{what}, truncated ({why})"),
        None => what,
    }
}

/// The live calls; `fs_read::Host` below wraps each in the tape.
impl FsReadView<'_> {
    async fn live_read(
        &mut self,
        path: String,
        offset: u64,
        max_bytes: u32,
    ) -> CallResult<Vec<u8>> {
        let args =
            json!({ "path": recorded_path(&path), "offset": offset, "max-bytes": max_bytes });
        self.fs_call(
            "read",
            args,
            move |cx| ops::read(cx, &path, offset, max_bytes),
            |b| format!("{} bytes", b.len()),
        )
        .await
    }

    async fn live_tail(&mut self, path: String, lines: u32) -> CallResult<Vec<String>> {
        let args = json!({ "path": recorded_path(&path), "lines": lines });
        self.fs_call(
            "tail",
            args,
            move |cx| ops::tail(cx, &path, lines),
            |l| format!("{} lines", l.len()),
        )
        .await
    }

    async fn live_list_dir(&mut self, path: String) -> CallResult<Vec<Entry>> {
        let args = json!({ "path": recorded_path(&path) });
        self.fs_call(
            "list-dir",
            args,
            move |cx| ops::list(cx, &path),
            |e| format!("{} entries", e.len()),
        )
        .await
    }

    async fn live_stat(&mut self, path: String) -> CallResult<Entry> {
        let args = json!({ "path": recorded_path(&path) });
        self.fs_call(
            "stat",
            args,
            move |cx| ops::stat(cx, &path),
            |e| format!("{:?}, {} bytes", e.kind, e.size),
        )
        .await
    }

    async fn live_usage(&mut self, path: String) -> CallResult<FsUsage> {
        let args = json!({ "path": recorded_path(&path) });
        self.fs_call(
            "usage",
            args,
            move |cx| ops::usage(cx, &path),
            |u| format!("{:.1}% used", u.used_percent),
        )
        .await
    }

    async fn live_largest(
        &mut self,
        path: String,
        depth: u32,
        limit: u32,
    ) -> CallResult<LargestResult> {
        let args = json!({ "path": recorded_path(&path), "depth": depth, "limit": limit });
        let result = self
            .fs_call(
                "largest",
                args,
                move |cx| ops::largest(cx, &path, depth, limit),
                |(l, note)| walk_summary(format!("{} entries scanned", l.entries_scanned), note),
            )
            .await?;
        Ok(result.map(|(largest, _)| largest))
    }

    async fn live_largest_many(
        &mut self,
        paths: Vec<String>,
        depth: u32,
        limit: u32,
    ) -> CallResult<Vec<Result<LargestResult, CapError>>> {
        // Over the cap the call is refused: its paths are not worth a timeline line each.
        let shown = if paths.len() <= MAX_LARGEST_PATHS {
            json!(paths.iter().map(|p| recorded_path(p)).collect::<Vec<_>>())
        } else {
            json!(format!("{} paths", paths.len()))
        };
        let args = json!({ "paths": shown, "depth": depth, "limit": limit });
        let result = self
            .fs_call(
                "largest-many",
                args,
                move |cx| many::largest_many(cx, &paths, depth, limit),
                many::summary,
            )
            .await?;
        Ok(result.map(|(results, _)| results))
    }

    async fn live_find(&mut self, path: String, options: FindOptions) -> CallResult<Vec<Entry>> {
        let found = self.find_call("find", path, options).await?;
        Ok(found.map(|found| found.entries))
    }

    async fn live_find_entries(
        &mut self,
        path: String,
        options: FindOptions,
    ) -> CallResult<FindResult> {
        self.find_call("find-entries", path, options).await
    }

    async fn live_grep(
        &mut self,
        path: String,
        pattern: String,
        options: GrepOptions,
    ) -> CallResult<GrepResult> {
        let args = json!({
            "path": recorded_path(&path),
            "pattern": recorded(&pattern, MAX_PATTERN_BYTES),
            "case-insensitive": options.case_insensitive,
            "last-lines": options.last_lines,
        });
        self.fs_call(
            "grep",
            args,
            move |cx| ops::grep(cx, &path, &pattern, &options),
            |g| format!("{} matches in {} lines", g.count, g.lines_scanned),
        )
        .await
    }
}

/// A live call's result, with what it reached kept for the tape when it succeeded.
macro_rules! reaching {
    ($state:ident, $path:expr, $how:expr, $call:expr) => {{
        let path = $path.clone();
        let result = $call;
        if matches!(&result, Ok(Ok(_))) {
            $state.record_path_target(&path, $how);
        }
        result
    }};
}

impl fs_read::Host for FsReadView<'_> {
    async fn read(&mut self, path: String, offset: u64, max_bytes: u32) -> CallResult<Vec<u8>> {
        let args = json!({ "path": arg(&path), "offset": offset, "max_bytes": max_bytes });
        let gate = Self::path_gate(path.clone(), Use::Content);
        taped!(self, "fs-read", "read", Vec<u8>, args, gate, {
            reaching!(self, path, Use::Content, {
                self.live_read(path.clone(), offset, max_bytes).await
            })
        })
    }

    async fn tail(&mut self, path: String, lines: u32) -> CallResult<Vec<String>> {
        let args = json!({ "path": arg(&path), "lines": lines });
        let gate = Self::path_gate(path.clone(), Use::Content);
        taped!(self, "fs-read", "tail", Vec<String>, args, gate, {
            reaching!(self, path, Use::Content, {
                self.live_tail(path.clone(), lines).await
            })
        })
    }

    async fn list_dir(&mut self, path: String) -> CallResult<Vec<Entry>> {
        let args = json!({ "path": arg(&path) });
        let gate = Self::path_gate(path.clone(), Use::Walk);
        taped!(self, "fs-read", "list-dir", Vec<Entry>, args, gate, {
            reaching!(self, path, Use::Walk, {
                self.live_list_dir(path.clone()).await
            })
        })
    }

    async fn stat(&mut self, path: String) -> CallResult<Entry> {
        let args = json!({ "path": arg(&path) });
        let gate = Self::path_gate(path.clone(), Use::Stat);
        taped!(self, "fs-read", "stat", Entry, args, gate, {
            reaching!(self, path, Use::Stat, {
                self.live_stat(path.clone()).await
            })
        })
    }

    async fn usage(&mut self, path: String) -> CallResult<FsUsage> {
        let args = json!({ "path": arg(&path) });
        let gate = Self::path_gate(path.clone(), Use::Usage);
        taped!(self, "fs-read", "usage", FsUsage, args, gate, {
            reaching!(self, path, Use::Usage, {
                self.live_usage(path.clone()).await
            })
        })
    }

    async fn largest(&mut self, path: String, depth: u32, limit: u32) -> CallResult<LargestResult> {
        let args = json!({ "path": arg(&path), "depth": depth, "limit": limit });
        let gate = Self::path_gate(path.clone(), Use::Walk);
        taped!(self, "fs-read", "largest", LargestResult, args, gate, {
            reaching!(self, path, Use::Walk, {
                self.live_largest(path.clone(), depth, limit).await
            })
        })
    }

    async fn largest_many(
        &mut self,
        paths: Vec<String>,
        depth: u32,
        limit: u32,
    ) -> CallResult<Vec<Result<LargestResult, CapError>>> {
        type Many = Vec<Result<LargestResult, CapError>>;
        let args = json!({ "paths": arg(&paths), "depth": depth, "limit": limit });
        // Each path is held to this host's roots on its own, as a live call does: the gate
        // keeps what makes the fixture inconsistent, each path's refusal replaces its answer.
        let mut refused: Vec<Option<CapError>> = Vec::new();
        let gate: Gate<Self> = {
            let paths = paths.clone();
            let refused = &mut refused;
            targeted(move |state: &Self, target| {
                let targets = replay::many_targets(paths.len(), target)?;
                for (path, target) in paths.iter().zip(&targets) {
                    refused.push(match state.replay_path(path, Use::Walk, target.as_ref()) {
                        Ok(()) => None,
                        Err(Refusal::Cap(e)) => Some(e),
                        Err(inconsistent) => return Err(inconsistent),
                    });
                }
                Ok(())
            })
        };
        if let Some(answer) = replay_call::<_, Many>(self, "fs-read", "largest-many", &args, gate)?
        {
            return Ok(answer.map(|results| {
                results
                    .into_iter()
                    .zip(refused.into_iter().chain(std::iter::repeat(None)))
                    .map(|(result, refusal)| match refusal {
                        Some(e) => Err(e),
                        None => result,
                    })
                    .collect()
            }));
        }
        let result = self.live_largest_many(paths.clone(), depth, limit).await;
        let recording = matches!(self.tape, Some(crate::tape::Tape::Recording(_)));
        if recording && let Ok(Ok(results)) = &result {
            let mut targets = Vec::new();
            for (path, answered) in paths.iter().zip(results) {
                if answered.is_ok() {
                    self.record_path_target(path, Use::Walk);
                }
                targets.push(self.recorded_target.take().unwrap_or(Value::Null));
            }
            self.recorded_target = Some(Value::Array(targets));
        }
        self.tape_call("fs-read", "largest-many", args, &result);
        result
    }

    async fn find(&mut self, path: String, options: FindOptions) -> CallResult<Vec<Entry>> {
        let args = json!({ "path": arg(&path), "options": arg(&options) });
        let gate = Self::path_gate(path.clone(), Use::Walk);
        taped!(self, "fs-read", "find", Vec<Entry>, args, gate, {
            reaching!(self, path, Use::Walk, {
                self.live_find(path.clone(), options).await
            })
        })
    }

    async fn find_entries(&mut self, path: String, options: FindOptions) -> CallResult<FindResult> {
        let args = json!({ "path": arg(&path), "options": arg(&options) });
        let gate = Self::path_gate(path.clone(), Use::Walk);
        taped!(self, "fs-read", "find-entries", FindResult, args, gate, {
            reaching!(self, path, Use::Walk, {
                self.live_find_entries(path.clone(), options).await
            })
        })
    }

    async fn grep(
        &mut self,
        path: String,
        pattern: String,
        options: GrepOptions,
    ) -> CallResult<GrepResult> {
        let args = json!({ "path": arg(&path), "pattern": arg(&pattern), "options": arg(options) });
        let gate = Self::path_gate(path.clone(), Use::Content);
        taped!(self, "fs-read", "grep", GrepResult, args, gate, {
            reaching!(self, path, Use::Content, {
                self.live_grep(path.clone(), pattern, options).await
            })
        })
    }
}
