//! Real containers for the docker tests, from the busybox image `scripts/test-env.sh` builds.
//! Every container carries the `runbook-test` label and a unique name, and is removed when its
//! guard drops, also when the test panics.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub const IMAGE: &str = "runbook-test/busybox:1";

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("running docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct TestContainer {
    pub name: String,
    pub port: u16,
    /// Bind-mounted at /ctl: files here steer the container's script (crash, crash-on-start).
    pub control: TempDir,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl TestContainer {
    fn start(kind: &str, script: &str, extra: &[&str]) -> Self {
        let name = format!(
            "rbt-{kind}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let port = free_port();
        let control = tempfile::tempdir().unwrap();
        let mount = format!("{}:/ctl", control.path().display());
        let port_env = format!("PORT={port}");
        let mut args = vec![
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            "runbook-test=1",
            "--network",
            "host",
            "-e",
            &port_env,
            "-v",
            &mount,
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[IMAGE, "sh", "-c", script]);
        docker(&args);
        let container = Self {
            name,
            port,
            control,
        };
        container.wait_for_http();
        container
    }

    /// busybox httpd serving /www on $PORT; the shell stays as PID 1 so httpd can be killed.
    pub fn web() -> Self {
        Self::start(
            "web",
            "mkdir -p /www && echo ok > /www/index.html && httpd -p $PORT -h /www && \
             echo 'web started' && while true; do sleep 1; done",
            &[],
        )
    }

    /// An API under attack: logs unauthorized calls and rate limiting from one source, then
    /// serves on $PORT.
    pub fn api() -> Self {
        Self::start(
            "api",
            "for i in 1 2 3; do echo \"WARN 401 Unauthorized POST /api/keys from 192.0.2.77\"; done; \
             echo 'WARN rate limit exceeded for 192.0.2.77' >&2; \
             mkdir -p /www && echo ok > /www/index.html && httpd -p $PORT -h /www && \
             echo 'api started' && while true; do sleep 1; done",
            &[],
        )
    }

    /// A bot: serves /health on $PORT, crashes when /ctl/crash appears, and refuses to come up
    /// at all while /ctl/crash-on-start exists.
    pub fn bot() -> Self {
        Self::start(
            "bot",
            "if [ -f /ctl/crash-on-start ]; then echo 'FATAL: config broken, exiting' >&2; exit 1; fi; \
             mkdir -p /www && echo ok > /www/health && httpd -p $PORT -h /www && echo 'bot started'; \
             while [ ! -f /ctl/crash ]; do sleep 0.2; done; \
             echo 'ERROR: lost connection to api.telegram.org' >&2; exit 1",
            &[],
        )
    }

    /// Serves /health on $PORT and writes `steps` files of `mib` MiB, `delay` seconds apart,
    /// into a tmpfs (memory charged to the container) on its first start only: a leak that a
    /// restart clears. `docker restart` stops it at once (the shell exits on SIGTERM).
    pub fn memory_filler(steps: u32, mib: u32, delay: f64) -> Self {
        Self::start(
            "mem",
            &format!(
                "trap 'exit 0' TERM; mkdir -p /www && echo ok > /www/health && httpd -p $PORT -h /www; \
                 if [ ! -f /ctl/filled ]; then touch /ctl/filled; i=0; \
                 while [ $i -lt {steps} ]; do dd if=/dev/zero of=/fill/f$i bs=1M count={mib} 2>/dev/null; \
                 i=$((i+1)); sleep {delay}; done; touch /ctl/full; fi; \
                 while true; do sleep 1; done"
            ),
            &["--tmpfs", "/fill:size=512m"],
        )
    }

    /// Serves /health on $PORT, with a Docker health check that fails while /ctl/unhealthy
    /// exists (checked every second, one failure is enough). `labels` are added as `--label`.
    pub fn with_health_check(labels: &[&str]) -> Self {
        let mut extra = vec![
            "--health-cmd",
            "test ! -f /ctl/unhealthy",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
        ];
        for label in labels {
            extra.extend_from_slice(&["--label", label]);
        }
        Self::start(
            "health",
            "trap 'exit 0' TERM; mkdir -p /www && echo ok > /www/health && httpd -p $PORT -h /www; \
             while true; do sleep 1; done",
            &extra,
        )
    }

    /// Docker's health status: healthy, unhealthy, starting.
    pub fn health(&self) -> String {
        self.inspect("{{.State.Health.Status}}")
    }

    pub fn wait_for_health(&self, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.health() != status {
            assert!(
                Instant::now() < deadline,
                "{} never became {status}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn control_file(&self, name: &str) -> PathBuf {
        self.control.path().join(name)
    }

    pub fn inspect(&self, format: &str) -> String {
        docker(&["inspect", "-f", format, &self.name])
    }

    pub fn state(&self) -> String {
        self.inspect("{{.State.Status}}")
    }

    pub fn started_at(&self) -> String {
        self.inspect("{{.State.StartedAt}}")
    }

    pub fn wait_for_state(&self, state: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.state() != state {
            assert!(
                Instant::now() < deadline,
                "{} never became {state}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_for_http(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} never listened on {}",
                self.name,
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}
