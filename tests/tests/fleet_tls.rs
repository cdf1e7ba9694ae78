//! A fleet over HTTPS with mutual TLS, against a real `host serve` (`[server] tls`,
//! `[fleet] client-ca`) and real `host agent`s, with a test PKI made for this run
//! (scripts/test-certs.sh): node A's certificate cannot poll, renew or finish node B's runs
//! even with B's token, and with `node-auth = "certificate"` a certificate alone is its node
//! (no token); an agent pinned to another CA refuses the server; a certificate
//! rotated on disk plus SIGHUP is what new connections get while a request already in flight
//! finishes; and a capture of the loopback traffic during a fleet run holds none of the
//! tokens or the run's text in clear.
//!
//! Requests with client certificates go through curl (Debian's, as an operator would test),
//! the capture through tcpdump (installed by scripts/test-env.sh).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use runbook_tests::agent::Agent;
use runbook_tests::docker::free_port;
use runbook_tests::{Sandbox, host_bin};

const RUN_TOKEN: &str = "tls-run-hook-t0ken-2f6a";
const API_TOKEN: &str = "tls-api-read-t0ken-9c1e";
const TOKEN_A: &str = "node-a-tls-token-0123456789";
const TOKEN_B: &str = "node-b-tls-token-0123456789";
const WAIT: Duration = Duration::from_secs(60);

/// This run's PKI: a CA, a server certificate for 127.0.0.1, client certificates naming
/// web01 and web02, and a CA nobody trusts.
fn pki() -> &'static Path {
    static PKI: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &PKI.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/test-certs.sh");
        let out = Command::new(script)
            .arg(&certs)
            .args(["web01", "web02"])
            .output()
            .expect("running scripts/test-certs.sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (dir, certs)
    })
    .1
}

fn cert(name: &str) -> String {
    pki().join(name).display().to_string()
}

/// `host serve` over TLS with mutual TLS for agents, started by hand: the test's Server
/// helper speaks plain HTTP.
struct TlsServer {
    sandbox: Sandbox,
    port: u16,
    child: Child,
}

impl TlsServer {
    fn start() -> TlsServer {
        Self::start_with(false)
    }

    /// `certificate_only`: `[fleet] node-auth = "certificate"`, nodes without tokens.
    fn start_with(certificate_only: bool) -> TlsServer {
        let (auth, token_a, token_b) = if certificate_only {
            ("node-auth = \"certificate\"\n", "", "")
        } else {
            (
                "",
                "token = { env = \"TOKEN_A\" }\n",
                "token = { env = \"TOKEN_B\" }\n",
            )
        };
        let sandbox = Sandbox::new();
        sandbox.add_plugin("hostile");
        // Its own copies: the rotation test overwrites them.
        std::fs::copy(cert("server.pem"), sandbox.path().join("server.pem")).unwrap();
        std::fs::copy(cert("server.key"), sandbox.path().join("server.key")).unwrap();
        let port = free_port();
        sandbox.write(
            "host.toml",
            format!(
                r#"plugin-dirs = ["plugins"]

[server]
listen = "127.0.0.1:{port}"
shutdown-grace-secs = 1
tls = {{ cert = "server.pem", key = "server.key" }}

[webhooks.run]
auth = {{ kind = "bearer", token = {{ env = "RUN_TOKEN" }} }}

[webhooks.api]
auth = {{ kind = "bearer", token = {{ env = "API_TOKEN" }} }}

[fleet]
client-ca = "{ca}"
poll-secs = 3
{auth}
[fleet.nodes.web01]
{token_a}
[fleet.nodes.web02]
{token_b}"#,
                ca = cert("ca.pem"),
            ),
        );
        let log = std::fs::File::create(sandbox.path().join("serve.log")).unwrap();
        let child = Command::new(host_bin())
            .args(["serve", "--config", "host.toml"])
            .current_dir(sandbox.path())
            .env("RUNBOOK_CACHE_DIR", sandbox.cache_dir())
            .env("RUNBOOK_STORE", sandbox.store())
            .env("RUN_TOKEN", RUN_TOKEN)
            .env("API_TOKEN", API_TOKEN)
            .env("TOKEN_A", TOKEN_A)
            .env("TOKEN_B", TOKEN_B)
            .env_remove("RUNBOOK_CONFIG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting host serve");
        let server = TlsServer {
            sandbox,
            port,
            child,
        };
        // Up when our own `host health` gets a 2xx through the pinned CA.
        let deadline = Instant::now() + WAIT;
        while server.health(&cert("ca.pem")).0 != 0 {
            assert!(
                Instant::now() < deadline,
                "host serve over TLS never answered:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.sandbox.path().join("serve.log")).unwrap_or_default()
    }

    /// `host health --url https://… --ca-file CA`: (exit code, stderr + stdout).
    fn health(&self, ca: &str) -> (i32, String) {
        let out = Command::new(host_bin())
            .args(["health", "--url", &self.url("/healthz"), "--ca-file", ca])
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned()
                + &String::from_utf8_lossy(&out.stdout),
        )
    }

    /// curl over HTTPS pinned to the test CA, with an optional client certificate:
    /// (HTTP status, body).
    fn curl(&self, path: &str, token: &str, client: Option<&str>, body: &str) -> (u16, String) {
        let mut command = Command::new("curl");
        command
            .args(["-sS", "--max-time", "20", "--cacert", &cert("ca.pem")])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(["-H", "Content-Type: application/json"])
            .args(["-w", "\n%{http_code}", "--data-binary", body]);
        if let Some(name) = client {
            command.args(["--cert", &cert(&format!("client-{name}.pem"))]);
            command.args(["--key", &cert(&format!("client-{name}.key"))]);
        }
        let out = command.arg(self.url(path)).output().expect("running curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
        (
            status.trim().parse().unwrap_or(0),
            format!("{body}{}", String::from_utf8_lossy(&out.stderr)),
        )
    }

    /// Queues a hostile run for `node`; its id.
    fn run_on(&self, node: &str, params: &str) -> String {
        let (status, body) = self.curl(
            &format!("/hooks/run/hostile?node={node}"),
            RUN_TOKEN,
            None,
            params,
        );
        assert_eq!(status, 202, "{body}");
        let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
        reply["runs"][0].as_str().unwrap().to_string()
    }

    /// A GET of the read API; Null when it does not answer JSON.
    fn get(&self, path: &str) -> serde_json::Value {
        let out = Command::new("curl")
            .args(["-sS", "--cacert", &cert("ca.pem")])
            .args(["-H", &format!("Authorization: Bearer {API_TOKEN}")])
            .arg(self.url(path))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    fn wait_for_run(&self, id: &str) -> serde_json::Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let run = self.get(&format!("/runs/{id}"));
            if !matches!(run["status"].as_str(), Some("queued" | "running") | None) {
                return run;
            }
            assert!(Instant::now() < deadline, "run {id} did not end");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent_request(node: &str) -> String {
    serde_json::json!({
        "agent": { "node": node, "session": "5eed0000000000000000000000000002", "version": "curl" },
        "room": 1,
        "wait_ms": 100
    })
    .to_string()
}

fn node_sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("hostile");
    sandbox.write("host.toml", "plugin-dirs = [\"plugins\"]\n");
    sandbox
}

#[test]
fn a_node_certificate_acts_only_for_its_node() {
    let server = TlsServer::start();
    let check = server.sandbox.host_env(
        &["check", "--json", "--config", "host.toml"],
        &[
            ("RUN_TOKEN", RUN_TOKEN),
            ("API_TOKEN", API_TOKEN),
            ("TOKEN_A", TOKEN_A),
            ("TOKEN_B", TOKEN_B),
        ],
    );
    let report = check.json();
    assert!(
        report["serve"]
            .as_str()
            .unwrap()
            .contains("HTTPS; agents prove their node"),
        "{report:#}"
    );
    // HTTP/2 by ALPN, and browsers told to stay on HTTPS.
    let out = Command::new("curl")
        .args([
            "-sS",
            "--http2",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "--cacert",
            &cert("ca.pem"),
        ])
        .args(["-w", "version=%{http_version}", &server.url("/healthz")])
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(head.contains("version=2"), "{head}");
    assert!(
        head.contains("strict-transport-security: max-age="),
        "{head}"
    );

    let poll = agent_request("web02");
    // B's token with A's certificate: the certificate does not name web02.
    for path in ["/agent/v1/poll", "/agent/v1/heartbeat"] {
        let (status, body) = server.curl(path, TOKEN_B, Some("web01"), &poll);
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body.contains("does not name node web02"), "{body}");
    }
    let run = server.run_on("web02", r#"{"case": "quick"}"#);
    for tail in ["events", "finish", "act"] {
        let (status, body) = server.curl(
            &format!("/agent/v1/runs/{run}/{tail}"),
            TOKEN_B,
            Some("web01"),
            &poll,
        );
        assert_eq!(status, 403, "{tail}: {body}");
    }
    // The token alone is no longer enough.
    let (status, body) = server.curl("/agent/v1/poll", TOKEN_B, None, &poll);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("client certificate"), "{body}");
    // A's own certificate with A's token, but asking for B's runs: the token decides first.
    let (status, _) = server.curl("/agent/v1/poll", TOKEN_A, Some("web01"), &poll);
    assert_eq!(status, 403);

    // The real agent of web02, with its certificate, takes and finishes the run.
    let node = node_sandbox();
    let agent = Agent::start_with(
        &node,
        &server.url(""),
        "web02",
        TOKEN_B,
        &[
            "--ca-file",
            &cert("ca.pem"),
            "--client-cert",
            &cert("client-web02.pem"),
            "--client-key",
            &cert("client-web02.key"),
        ],
    );
    let ended = server.wait_for_run(&run);
    assert_eq!(ended["status"], "no-action", "{ended:#}\n{}", agent.log());
    assert_eq!(ended["node"], "web02");
}

/// `[fleet] node-auth = "certificate"`: the nodes have no tokens; a verified client
/// certificate naming one node is that node, and nothing else is.
#[test]
fn with_certificates_alone_the_certificate_is_the_node() {
    let server = TlsServer::start_with(true);
    let poll = agent_request("web02");
    // No certificate: a token (even a node's from elsewhere) is not looked at.
    let (status, body) = server.curl("/agent/v1/poll", TOKEN_B, None, &poll);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("client certificate alone"), "{body}");
    // A's certificate asking for B's runs: refused where the request names the node, and
    // B's queued run cannot be finished, renewed or acted for by A.
    let heartbeat = serde_json::json!({
        "agent": { "node": "web02", "session": "5eed0000000000000000000000000002", "version": "curl" },
        "running": []
    })
    .to_string();
    for (path, request) in [
        ("/agent/v1/poll", &poll),
        ("/agent/v1/heartbeat", &heartbeat),
    ] {
        let (status, body) = server.curl(path, "", Some("web01"), request);
        assert_eq!(status, 403, "{path}: {body}");
    }
    let run = server.run_on("web02", r#"{"case": "quick"}"#);
    for tail in ["events", "finish", "act"] {
        let path = format!("/agent/v1/runs/{run}/{tail}");
        let (status, body) = server.curl(&path, "", Some("web01"), &poll);
        assert!((400..500).contains(&status), "{path}: {status} {body}");
    }
    let (_, body) = server.curl("/agent/v1/poll", "", Some("web01"), &poll);
    assert!(
        body.contains("client certificate is node web01's"),
        "{body}"
    );
    assert_eq!(server.get(&format!("/runs/{run}"))["status"], "queued");

    // The real agent of web02, with no token at all, takes and finishes the run.
    let node = node_sandbox();
    let agent = Agent::start_with(
        &node,
        &server.url(""),
        "web02",
        "",
        &[
            "--ca-file",
            &cert("ca.pem"),
            "--client-cert",
            &cert("client-web02.pem"),
            "--client-key",
            &cert("client-web02.key"),
        ],
    );
    let ended = server.wait_for_run(&run);
    assert_eq!(ended["status"], "no-action", "{ended:#}\n{}", agent.log());
    assert_eq!(ended["node"], "web02");

    // Certificates alone, but no CA to check them against: refused before anything starts.
    let config = Sandbox::new();
    config.write(
        "host.toml",
        "[fleet]\nnode-auth = \"certificate\"\n[fleet.nodes.web01]\n",
    );
    let check = config.host_env(&["check", "--config", "host.toml"], &[]);
    assert_ne!(check.code, 0, "{}", check.stdout);
    assert!(
        check.stderr.contains("needs [fleet] client-ca"),
        "{}",
        check.stderr
    );
}

#[test]
fn agents_and_clients_pinned_to_another_ca_refuse_the_server() {
    let server = TlsServer::start();
    let (code, out) = server.health(&cert("other-ca.pem"));
    assert_eq!(code, 1, "{out}");
    assert!(out.to_lowercase().contains("certificate"), "{out}");

    let node = node_sandbox();
    let run = server.run_on("web01", r#"{"case": "quick"}"#);
    let agent = Agent::start_with(
        &node,
        &server.url(""),
        "web01",
        TOKEN_A,
        &[
            "--ca-file",
            &cert("other-ca.pem"),
            "--client-cert",
            &cert("client-web01.pem"),
            "--client-key",
            &cert("client-web01.key"),
        ],
    );
    agent.wait_for_log("UnknownIssuer", WAIT);
    let run = server.get(&format!("/runs/{run}"));
    assert_eq!(
        run["status"],
        "queued",
        "the agent that does not trust the server took nothing: {run:#}\n{}",
        agent.log()
    );
}

/// The serial of the certificate a new connection is served.
fn served_serial(port: u16) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername 127.0.0.1 </dev/null 2>/dev/null \
             | openssl x509 -noout -serial"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn serial_of(pem: &str) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in", pem])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_rotated_certificate_is_served_after_sighup_while_open_requests_finish() {
    let server = TlsServer::start();
    assert_eq!(served_serial(server.port), serial_of(&cert("server.pem")));

    // A poll held open (poll-secs = 3) on a connection made with the old certificate.
    let held = {
        let url = server.url("/agent/v1/poll");
        let body = serde_json::json!({
            "agent": { "node": "web01", "session": "5eed0000000000000000000000000003", "version": "curl" },
            "room": 1,
            "wait_ms": 3000
        })
        .to_string();
        Command::new("curl")
            .args(["-sS", "--max-time", "20", "--cacert", &cert("ca.pem")])
            .args([
                "--cert",
                &cert("client-web01.pem"),
                "--key",
                &cert("client-web01.key"),
            ])
            .args(["-H", &format!("Authorization: Bearer {TOKEN_A}")])
            .args(["-w", "\n%{http_code}", "--data-binary", &body, &url])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    std::thread::sleep(Duration::from_millis(500));
    std::fs::copy(
        cert("server2.pem"),
        server.sandbox.path().join("server.pem"),
    )
    .unwrap();
    std::fs::copy(
        cert("server2.key"),
        server.sandbox.path().join("server.key"),
    )
    .unwrap();
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + WAIT;
    while served_serial(server.port) != serial_of(&cert("server2.pem")) {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = held.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.trim_end().ends_with("200"),
        "the poll begun before the rotation finished on its connection: {text}"
    );
    assert!(
        server.log().contains("TLS certificate reloaded"),
        "{}",
        server.log()
    );
}

#[test]
fn nothing_secret_crosses_loopback_in_clear() {
    if Command::new("tcpdump").arg("--version").output().is_err() {
        panic!("tcpdump is missing: scripts/test-env.sh installs it");
    }
    let server = TlsServer::start();
    let capture_dir = tempfile::tempdir().unwrap();
    let pcap = capture_dir.path().join("fleet.pcap");
    let said = capture_dir.path().join("tcpdump.log");
    let mut tcpdump = Command::new("tcpdump")
        .args(["-i", "lo", "-U", "--immediate-mode", "-s", "0", "-w"])
        .arg(&pcap)
        .arg(format!("tcp port {}", server.port))
        .stderr(std::fs::File::create(&said).unwrap())
        .spawn()
        .expect("starting tcpdump");
    let tcpdump_said = || std::fs::read_to_string(&said).unwrap_or_default();
    // "listening on lo" once the capture is live.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !tcpdump_said().contains("listening on") {
        assert!(
            Instant::now() < deadline,
            "tcpdump did not start: {}",
            tcpdump_said()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let marker = "evidence-9f8e7d6c5b4a";
    let node = Sandbox::new();
    node.add_plugin("hostile");
    let evidence = node.write(&format!("{marker}/report.txt"), "disk at 97%\n");
    let dir = evidence.parent().unwrap().display().to_string();
    node.write(
        "host.toml",
        format!("plugin-dirs = [\"plugins\"]\n\n[plugins.hostile.grants]\nfs-read = [\"{dir}\"]\n"),
    );
    let target = format!("{dir}/report.txt");
    let agent = Agent::start_with(
        &node,
        &server.url(""),
        "web01",
        TOKEN_A,
        &[
            "--ca-file",
            &cert("ca.pem"),
            "--client-cert",
            &cert("client-web01.pem"),
            "--client-key",
            &cert("client-web01.key"),
        ],
    );
    let run = server.run_on(
        "web01",
        &serde_json::json!({ "case": "fs-read", "target": target }).to_string(),
    );
    let ended = server.wait_for_run(&run);
    assert!(
        ended["summary"]
            .as_str()
            .unwrap_or_default()
            .contains(marker),
        "the run read the evidence and said so: {ended:#}\n{}",
        agent.log()
    );
    // Written as they come (immediate mode, packet-buffered): wait until the run's traffic is
    // in the file (or 10 s), then stop the capture.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&pcap).map_or(0, |m| m.len()) < 10_000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill")
        .args(["-INT", &tcpdump.id().to_string()])
        .status();
    let _ = tcpdump.wait();

    let captured = std::fs::read(&pcap).unwrap();
    assert!(
        captured.len() > 10_000,
        "the capture holds the run's traffic: {} bytes; tcpdump: {}",
        captured.len(),
        tcpdump_said()
    );
    let contains = |needle: &str| {
        captured
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    };
    for secret in [TOKEN_A, RUN_TOKEN, API_TOKEN, marker, "disk at 97%"] {
        assert!(!contains(secret), "{secret:?} crossed loopback in clear");
    }
    // The capture is of the right traffic: the certificate's names travel in clear in TLS 1.2
    // only; the TLS record header (0x17 0x03 0x03, application data) is always there.
    assert!(
        captured.windows(3).any(|w| w == [0x17, 0x03, 0x03]),
        "no TLS application data in the capture"
    );
}
