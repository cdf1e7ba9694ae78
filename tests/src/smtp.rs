//! A real SMTP server on 127.0.0.1 for the email notify kind: aiosmtpd (Debian's
//! python3-aiosmtpd, installed by scripts/test-env.sh) running tests/fixtures/smtp_sink.py.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use tempfile::TempDir;

pub struct SmtpServer {
    pub port: u16,
    dir: TempDir,
    child: Child,
}

impl SmtpServer {
    /// Starts the server and waits until it listens. Panics when aiosmtpd is missing: the
    /// test set-up installs it, so its absence is a broken set-up, not a reason to skip.
    pub fn start() -> Option<SmtpServer> {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::docker::free_port();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/smtp_sink.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting /usr/bin/python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if line.trim() != "ready" {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
            panic!(
                "the SMTP test server did not start (is python3-aiosmtpd installed? scripts/test-env.sh installs it):\n{err}"
            );
        }
        Some(SmtpServer { port, dir, child })
    }

    /// Every accepted message, raw (headers and body), in arrival order.
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
