//! Which store this is and whether it answers: for messages, `host check` and the health page.

use std::time::Duration;

use anyhow::Result;

/// Owns nothing stored: which store this is, and whether it answers.
#[async_trait::async_trait]
pub trait StoreInfo: Send + Sync {
    /// For messages: the SQLite file's path, or the database URL with its password masked.
    fn describe(&self) -> String;

    /// "sqlite" or "postgres".
    fn kind(&self) -> &'static str;

    /// The store's file on this machine (SQLite): fs-read grants never reach it, and the
    /// compile cache lives next to it by default. None for a database server.
    fn local_file(&self) -> Option<std::path::PathBuf>;

    /// One trivial round trip: whether the store answers, and how long it took.
    async fn ping(&self) -> Result<Duration>;
}
