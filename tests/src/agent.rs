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
        Self::start_with(sandbox, server, node, token, &[])
    }

    /// The same, with more arguments (`--ca-file`, `--client-cert` …); an empty `token`: none
    /// at all (a node known by its client certificate alone).
    pub fn start_with(
        sandbox: &Sandbox,
        server: &str,
        node: &str,
        token: &str,
        extra: &[&str],
    ) -> Agent {
        let log_path = sandbox.path().join(format!(
            "agent-{node}-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut command = Command::new(crate::host_bin());
        match token {
            "" => command.env_remove("RUNBOOK_AGENT_TOKEN"),
            token => command.env("RUNBOOK_AGENT_TOKEN", token),
        };
        let child = command
            .args(["agent", "--server", server, "--node", node])
            .args(extra)
            .current_dir(sandbox.path())
            .env("RUNBOOK_CACHE_DIR", sandbox.cache_dir())
            .env("RUNBOOK_STORE", sandbox.store_path())
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

/// A hand-driven agent: it speaks the agent API (`/agent/v1/…`) with a node's token and sends
/// whatever a test gives it, so a test can play a compromised node and say what a real agent
/// never would (a 9 MiB event, a forged artifact hash).
pub struct StandIn<'a> {
    server: &'a crate::server::Server,
    node: String,
    token: String,
}

impl<'a> StandIn<'a> {
    pub fn new(server: &'a crate::server::Server, node: &str, token: &str) -> Self {
        StandIn {
            server,
            node: node.into(),
            token: token.into(),
        }
    }

    fn agent(&self) -> serde_json::Value {
        serde_json::json!({
            "node": self.node,
            "session": "5eed0000000000000000000000000001",
            "version": "stand-in"
        })
    }

    fn post(&self, path: &str, mut body: serde_json::Value) -> crate::server::Reply {
        body["agent"] = self.agent();
        self.server.post(
            path,
            &[("Authorization", &format!("Bearer {}", self.token))],
            body.to_string().as_bytes(),
        )
    }

    /// Polls until the server hands over a run (up to `timeout`); its id.
    pub fn take_run(&self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let reply = self.post(
                "/agent/v1/poll",
                serde_json::json!({ "room": 1, "wait_ms": 1000 }),
            );
            assert_eq!(reply.status, 200, "{}", reply.body);
            if let Some(id) = reply.json()["runs"][0]["id"].as_str() {
                return id.to_string();
            }
            assert!(Instant::now() < deadline, "no run for node {}", self.node);
        }
    }

    /// Live events `from`, `from + 1`, … of `run`.
    pub fn events(
        &self,
        run: &str,
        from: usize,
        events: Vec<serde_json::Value>,
    ) -> crate::server::Reply {
        self.post(
            &format!("/agent/v1/runs/{run}/events"),
            serde_json::json!({ "from": from, "events": events }),
        )
    }

    /// Asks the server before a mutating call of `run`: `action` as the node words it.
    pub fn act(&self, run: &str, action: serde_json::Value) -> crate::server::Reply {
        self.post(
            &format!("/agent/v1/runs/{run}/act"),
            serde_json::json!({ "action": action }),
        )
    }

    /// The run's end: `outcome` holds status, summary, events, artifacts …; what it leaves
    /// out is filled in as a real agent would send it.
    pub fn finish(&self, run: &str, outcome: serde_json::Value) -> crate::server::Reply {
        let mut body = serde_json::json!({
            "status": "resolved", "summary": "done", "actions": [], "reason": null,
            "ended_at": "2026-12-06T21:00:00.000Z", "timings": { "total_ms": 5.0 },
            "grants": {}, "events": [], "artifacts": []
        });
        for (key, value) in outcome.as_object().expect("an object").clone() {
            body[key] = value;
        }
        self.post(&format!("/agent/v1/runs/{run}/finish"), body)
    }
}

/// One timeline event as an agent sends it.
pub fn log_event(message: &str) -> serde_json::Value {
    serde_json::json!({
        "at": "2026-12-06T21:00:00.000Z", "offset_ms": 1.0,
        "event": "log", "level": "info", "message": message
    })
}
