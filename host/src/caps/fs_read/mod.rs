//! The `fs-read` capability: read-only, confined to the playbook's granted roots, with the heavy
//! lifting (tree walks, regex over logs) done natively on a blocking thread.

pub mod ops;
mod roots;

use std::time::Instant;

use serde_json::{Value, json};

pub use roots::Roots;

use crate::bindings::CapError;
use crate::bindings::runbook::host::fs_read::{
    self, Entry, FindOptions, FsUsage, GrepOptions, GrepResult, LargestResult,
};
use crate::state::RunState;

type CallResult<T> = wasmtime::Result<Result<T, CapError>>;

impl RunState {
    async fn fs_call<T: Send + 'static>(
        &mut self,
        function: &str,
        args: Value,
        op: impl FnOnce(&Roots) -> Result<T, CapError> + Send + 'static,
        summary: impl FnOnce(&T) -> String,
    ) -> CallResult<T> {
        self.begin_call()?;
        let roots = self.fs_roots.clone();
        let started = Instant::now();
        let result = tokio::task::spawn_blocking(move || op(&roots))
            .await
            .unwrap_or_else(|e| Err(CapError::Failed(format!("fs-read worker failed: {e}"))));
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
}

impl fs_read::Host for RunState {
    async fn read(&mut self, path: String, offset: u64, max_bytes: u32) -> CallResult<Vec<u8>> {
        let args = json!({ "path": path, "offset": offset, "max-bytes": max_bytes });
        self.fs_call(
            "read",
            args,
            move |r| ops::read(r, &path, offset, max_bytes),
            |b| format!("{} bytes", b.len()),
        )
        .await
    }

    async fn tail(&mut self, path: String, lines: u32) -> CallResult<Vec<String>> {
        let args = json!({ "path": path, "lines": lines });
        self.fs_call(
            "tail",
            args,
            move |r| ops::tail(r, &path, lines),
            |l| format!("{} lines", l.len()),
        )
        .await
    }

    async fn list_dir(&mut self, path: String) -> CallResult<Vec<Entry>> {
        let args = json!({ "path": path });
        self.fs_call(
            "list-dir",
            args,
            move |r| ops::list(r, &path),
            |e| format!("{} entries", e.len()),
        )
        .await
    }

    async fn stat(&mut self, path: String) -> CallResult<Entry> {
        let args = json!({ "path": path });
        self.fs_call(
            "stat",
            args,
            move |r| ops::stat(r, &path),
            |e| format!("{:?}, {} bytes", e.kind, e.size),
        )
        .await
    }

    async fn usage(&mut self, path: String) -> CallResult<FsUsage> {
        let args = json!({ "path": path });
        self.fs_call(
            "usage",
            args,
            move |r| ops::usage(r, &path),
            |u| format!("{:.1}% used", u.used_percent),
        )
        .await
    }

    async fn largest(&mut self, path: String, depth: u32, limit: u32) -> CallResult<LargestResult> {
        let args = json!({ "path": path, "depth": depth, "limit": limit });
        self.fs_call(
            "largest",
            args,
            move |r| ops::largest(r, &path, depth, limit),
            |l| {
                let cut = if l.truncated { ", truncated" } else { "" };
                format!("{} entries scanned{cut}", l.entries_scanned)
            },
        )
        .await
    }

    async fn find(&mut self, path: String, options: FindOptions) -> CallResult<Vec<Entry>> {
        let args = json!({
            "path": path,
            "name-glob": options.name_glob,
            "min-age-secs": options.min_age_secs,
            "max-depth": options.max_depth,
            "limit": options.limit,
        });
        self.fs_call(
            "find",
            args,
            move |r| ops::find(r, &path, &options),
            |e| format!("{} found", e.len()),
        )
        .await
    }

    async fn grep(
        &mut self,
        path: String,
        pattern: String,
        options: GrepOptions,
    ) -> CallResult<GrepResult> {
        let args = json!({
            "path": path,
            "pattern": pattern,
            "case-insensitive": options.case_insensitive,
            "last-lines": options.last_lines,
        });
        self.fs_call(
            "grep",
            args,
            move |r| ops::grep(r, &path, &pattern, &options),
            |g| format!("{} matches in {} lines", g.count, g.lines_scanned),
        )
        .await
    }
}
