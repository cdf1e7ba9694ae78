//! A real `host agent` process for the fleet tests: its own sandbox (host.toml, compile cache,
//! outbox file), dialing a test server, stopped with SIGTERM (or SIGKILL) when done.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Sandbox;

pub struct Agent {
    pub node: String,
    log: PathBuf,
    child: Option<Child>,
}

impl Agent {
    /// `host agent --server URL --node NODE` in the sandbox's directory, with `token`.
    pub fn start(sandbox: &Sandbox, server: &str, node: &str, token: &str) -> Agent {
        let log_path = sandbox.path().join(format!(
            "agent-{node}-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(crate::host_bin())
            .args(["agent", "--server", server, "--node", node])
            .current_dir(sandbox.path())
            .env("RUNBOOK_CACHE_DIR", sandbox.cache_dir())
            .env("RUNBOOK_STORE", sandbox.store_path())
            .env("RUNBOOK_AGENT_TOKEN", token)
            .env_remove("RUNBOOK_CONFIG")
            .env_remove("RUNBOOK_SERVER")
            .env_remove("RUNBOOK_NODE")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting host agent");
        Agent {
            node: node.to_string(),
            log: log_path,
            child: Some(child),
        }
    }

    /// What the agent printed on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the agent's log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "agent {} never logged {needle:?}:\n{}",
                self.node,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` (TERM, KILL) and waits for the process to exit.
    pub fn stop(&mut self, signal: &str) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args([&format!("-{signal}"), &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(60);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop("TERM");
    }
}
