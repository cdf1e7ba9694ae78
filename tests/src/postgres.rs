//! The PostgreSQL the tests use: the throwaway cluster `scripts/test-env.sh` starts, reached
//! through `RUNBOOK_TEST_POSTGRES` (its URL). Each user gets a database of its own, created
//! with `psql` and dropped when dropped.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The cluster's URL, if the test set-up started one.
pub fn cluster() -> Option<String> {
    std::env::var("RUNBOOK_TEST_POSTGRES")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Whether the webhook and runs tests run their servers on PostgreSQL
/// (`RUNBOOK_TEST_STORE=postgres`, set by scripts/test.sh for its second pass).
pub fn selected() -> bool {
    std::env::var("RUNBOOK_TEST_STORE").as_deref() == Ok("postgres")
}

/// A fresh database on the test cluster; dropped (connections and all) on drop.
pub struct Database {
    admin: String,
    pub name: String,
    pub url: String,
}

impl Database {
    /// Panics when no cluster is configured: callers check `cluster()` first.
    pub fn create() -> Database {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let admin = cluster().expect("RUNBOOK_TEST_POSTGRES is not set");
        let name = format!(
            "rb_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let url = match admin.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("RUNBOOK_TEST_POSTGRES has no database part: {admin}"),
        };
        Database { admin, name, url }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &self.admin,
                "-qc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// Runs one statement; panics with psql's message when it fails.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-Atqc", sql])
        .output()
        .expect("running psql");
    assert!(
        out.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
