//! A real `host serve` process for the webhook tests: started in a sandbox (its host.toml, its
//! run store), reached over HTTP on 127.0.0.1, stopped with SIGTERM (or SIGKILL) when done.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Sandbox;
use crate::docker::free_port;

pub struct Server {
    pub port: u16,
    child: Option<Child>,
    agent: ureq::Agent,
}

pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// The read API's token in every test server that did not configure `[webhooks.api]` itself.
pub const API_TOKEN: &str = "rb-test-api-token";
const API_TOKEN_ENV: &str = "RB_TEST_API_TOKEN";

impl Server {
    /// Starts `host serve` in the sandbox's directory (so its host.toml applies) and waits for
    /// /healthz.
    pub fn start(sandbox: &Sandbox, env: &[(&str, &str)]) -> Server {
        Self::start_on(sandbox, env, free_port())
    }

    pub fn start_on(sandbox: &Sandbox, env: &[(&str, &str)], port: u16) -> Server {
        Self::spawn(sandbox, env, port, true)
    }

    /// Starts with the host.toml exactly as the test wrote it (no read-API token added).
    pub fn start_as_configured(sandbox: &Sandbox, env: &[(&str, &str)]) -> Server {
        Self::spawn(sandbox, env, free_port(), false)
    }

    /// Starts `host serve` through `wrapper` (a command that execs the rest of its arguments,
    /// such as `prlimit --as=BYTES --`).
    pub fn start_under(sandbox: &Sandbox, env: &[(&str, &str)], wrapper: &[&str]) -> Server {
        Self::spawn_under(sandbox, env, free_port(), true, wrapper)
    }

    /// What the server printed on stderr so far.
    pub fn log(&self, sandbox: &Sandbox) -> String {
        std::fs::read_to_string(sandbox.path().join(format!("serve-{}.log", self.port)))
            .unwrap_or_default()
    }

    /// SIGHUP: the server reloads host.toml (and host.lock).
    pub fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The log once `needle` is in it `times` times (20 s at most).
    pub fn wait_for_log(&self, sandbox: &Sandbox, needle: &str, times: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.log(sandbox);
            if log.matches(needle).count() >= times {
                return log;
            }
            assert!(Instant::now() < deadline, "never logged {needle:?}:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn spawn(sandbox: &Sandbox, env: &[(&str, &str)], port: u16, api_token: bool) -> Server {
        Self::spawn_under(sandbox, env, port, api_token, &[])
    }

    fn spawn_under(
        sandbox: &Sandbox,
        env: &[(&str, &str)],
        port: u16,
        api_token: bool,
        wrapper: &[&str],
    ) -> Server {
        // The read API needs auth by default: unless the test configured it, the server gets a
        // bearer token that `get` sends, as admin (it reads every page; tests of who may do
        // what configure their own credentials and roles).
        let config = sandbox.path().join("host.toml");
        let existing = std::fs::read_to_string(&config).unwrap_or_default();
        if api_token && !existing.contains("[webhooks.api]") {
            if !config.exists() {
                sandbox.write("host.toml", "");
            }
            sandbox.write_append(
                "host.toml",
                &format!(
                    "\n[webhooks.api]\nrole = \"admin\"\nauth = {{ kind = \"bearer\", token = {{ env = \"{API_TOKEN_ENV}\" }} }}\n"
                ),
            );
        }
        let log = std::fs::File::create(sandbox.path().join(format!("serve-{port}.log"))).unwrap();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(crate::host_bin());
                command
            }
            None => Command::new(crate::host_bin()),
        };
        let child = command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .current_dir(sandbox.path())
            .env("RUNBOOK_CACHE_DIR", sandbox.cache_dir())
            .env("RUNBOOK_STORE", sandbox.store())
            .env_remove("RUNBOOK_CONFIG")
            .env(API_TOKEN_ENV, API_TOKEN)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting host serve");
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        let mut server = Server {
            port,
            child: Some(child),
            agent,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if server.try_get("/healthz").is_some_and(|r| r.status == 200) {
                return server;
            }
            if let Some(status) = server.child.as_mut().unwrap().try_wait().unwrap() {
                let log = std::fs::read_to_string(sandbox.path().join(format!("serve-{port}.log")))
                    .unwrap_or_default();
                panic!("host serve exited ({status}):\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "host serve did not answer /healthz"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut request = self
            .agent
            .post(&self.url(path))
            .header("Content-Type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        match request.send(body) {
            Ok(response) => read(response),
            Err(e) => panic!("POST {path}: {e}"),
        }
    }

    pub fn get(&self, path: &str) -> Reply {
        self.try_get(path)
            .unwrap_or_else(|| panic!("GET {path}: no answer"))
    }

    fn try_get(&self, path: &str) -> Option<Reply> {
        self.agent
            .get(&self.url(path))
            .header("Authorization", format!("Bearer {API_TOKEN}"))
            .call()
            .ok()
            .map(read)
    }

    /// POSTs `body` to `path` (a `/hooks/run/…` URL) with a bearer token, expects 202 and
    /// returns the first run id.
    pub fn submit_run(&self, path: &str, token: &str, body: &[u8]) -> String {
        let reply = self.post(path, &[("Authorization", &format!("Bearer {token}"))], body);
        assert_eq!(reply.status, 202, "{path}: {}", reply.body);
        reply.json()["runs"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: no run id in {}", reply.body))
            .to_string()
    }

    /// A GET without credentials, as a stranger on the network would send it.
    pub fn get_anonymous(&self, path: &str) -> Reply {
        match self.agent.get(&self.url(path)).call() {
            Ok(response) => read(response),
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    /// A GET with the given `Authorization` header value.
    pub fn get_authorized(&self, path: &str, authorization: &str) -> Reply {
        match self
            .agent
            .get(&self.url(path))
            .header("Authorization", authorization)
            .call()
        {
            Ok(response) => read(response),
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    /// Polls /runs/{id} until the run has ended (or `timeout` passes).
    pub fn wait_for_run(&self, id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let run = self.get(&format!("/runs/{id}"));
            if run.status == 200 {
                let run = run.json();
                if !matches!(
                    run["status"].as_str(),
                    Some("queued" | "running" | "waiting-approval")
                ) {
                    return run;
                }
            }
            assert!(
                Instant::now() < deadline,
                "run {id} did not end within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_for_status(&self, id: &str, status: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.get(&format!("/runs/{id}")).json()["status"] != status {
            assert!(Instant::now() < deadline, "run {id} never became {status}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
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

/// The CSRF token in a console form page (its hidden `csrf` field).
pub fn csrf_of(form_page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = form_page.find(marker).expect("a CSRF field") + marker.len();
    let len = form_page[start..]
        .find('"')
        .expect("the end of the CSRF field");
    form_page[start..start + len].to_string()
}

fn read(mut response: ureq::http::Response<ureq::Body>) -> Reply {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = response.body_mut().read_to_string().unwrap_or_default();
    Reply {
        status,
        retry_after,
        body,
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop("TERM");
    }
}
