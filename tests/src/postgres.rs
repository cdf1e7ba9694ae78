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

/// The TLS-only cluster of scripts/test-env.sh (RUNBOOK_TEST_POSTGRES_TLS names its
/// directory): `hostssl` only, client certificates for the database `runbook_certs`, a test
/// PKI in `certs/` made when it started. Administered through its Unix socket.
pub struct TlsCluster {
    pub dir: std::path::PathBuf,
    port: u16,
}

impl TlsCluster {
    /// None when the test set-up did not start one.
    pub fn from_env() -> Option<TlsCluster> {
        let dir = std::path::PathBuf::from(std::env::var("RUNBOOK_TEST_POSTGRES_TLS").ok()?);
        let url = std::fs::read_to_string(dir.join("url")).ok()?;
        let port = url
            .trim()
            .rsplit_once(':')?
            .1
            .split('/')
            .next()?
            .parse()
            .ok()?;
        Some(TlsCluster { dir, port })
    }

    pub fn cert(&self, name: &str) -> String {
        self.dir.join("certs").join(name).display().to_string()
    }

    /// `postgres://runbook@HOST:PORT/DB?QUERY`.
    pub fn url(&self, host: &str, db: &str, query: &str) -> String {
        format!("postgres://runbook@{host}:{}/{db}?{query}", self.port)
    }

    /// Runs one statement as the superuser over the socket; panics with psql's message.
    pub fn admin(&self, db: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-h",
                &self.dir.display().to_string(),
                "-p",
                &self.port.to_string(),
            ])
            .args(["-U", "postgres", "-d", db, "-Atqc", sql])
            .output()
            .expect("running psql");
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A fresh database owned by `runbook`, dropped on drop.
    pub fn database(&self) -> TlsDatabase<'_> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "tls_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.admin("postgres", &format!("CREATE DATABASE {name} OWNER runbook"));
        TlsDatabase {
            cluster: self,
            name,
        }
    }

    /// Serves `certs/NAME.pem` (with its key) to new connections: the setting reloaded and
    /// waited for, so the next connection sees it.
    pub fn serve_certificate(&self, name: &str) {
        let cert = self.cert(&format!("{name}.pem"));
        let key = self.cert(&format!("{name}.key"));
        self.admin(
            "postgres",
            &format!("ALTER SYSTEM SET ssl_cert_file = '{cert}'"),
        );
        self.admin(
            "postgres",
            &format!("ALTER SYSTEM SET ssl_key_file = '{key}'"),
        );
        self.admin("postgres", "SELECT pg_reload_conf()");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.admin("postgres", "SHOW ssl_cert_file").trim() != cert {
            assert!(
                std::time::Instant::now() < deadline,
                "{cert} not served after 10 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

pub struct TlsDatabase<'a> {
    cluster: &'a TlsCluster,
    pub name: String,
}

impl Drop for TlsDatabase<'_> {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-h", &self.cluster.dir.display().to_string()])
            .args([
                "-p",
                &self.cluster.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args([
                "-qc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}
