//! Stopping runs on request, against a real `host serve` (SQLite, or PostgreSQL with
//! `RUNBOOK_TEST_STORE=postgres`): a run waiting for an approval, spinning on the CPU, parked in
//! an http call or in a WASI sleep is cancelled from the API, the CLI (on the store, or through
//! the server) and the console, and ends `cancelled` within seconds saying who asked; a queued
//! run cancelled never starts; an ended run is 409, an unknown one 404, a stranger 401; the
//! server goes on serving. A `host run` process is stopped from another process through the
//! store.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use runbook_tests::Sandbox;
use runbook_tests::agent::Agent;
use runbook_tests::http::Peer;
use runbook_tests::server::{API_TOKEN, Server, csrf_of};
use serde_json::{Value, json};

const RUN_TOKEN: &str = "cancel-run-token";
const UI_PASSWORD: &str = "cancel-ui-password";
const NODE_A_TOKEN: &str = "cancel-node-a-token-0123456789";
/// How soon a cancelled run must have ended.
const PROMPT: Duration = Duration::from_secs(5);
const WAIT: Duration = Duration::from_secs(60);
/// The API's caller as runs name it: the bearer token's secret's name.
const API_CALLER: &str = "api:RB_TEST_API_TOKEN";

struct Fixture {
    server: Server,
    sandbox: Sandbox,
    /// Granted to the hostile playbook; accepts and never answers.
    silent: Peer,
    /// Plain HTTP, redirects not followed: the console's own status codes.
    http: ureq::Agent,
}

/// One server for every test of this binary, torn down when the last test using it ends.
fn fixture() -> Arc<Fixture> {
    static SHARED: Mutex<Weak<Fixture>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(fixture) = shared.upgrade() {
        return fixture;
    }
    let fixture = Arc::new(Fixture::start());
    *shared = Arc::downgrade(&fixture);
    fixture
}

impl Fixture {
    fn start() -> Fixture {
        let sandbox = Sandbox::new();
        sandbox.add_plugin("asks");
        sandbox.add_plugin("hostile");
        let silent = Peer::silent();
        sandbox.write(
            "host.toml",
            format!(
                r#"plugin-dirs = ["plugins"]
[server]
lease-secs = 3
[fleet.nodes.node-a]
token = {{ env = "NODE_A_TOKEN" }}
[webhooks.api]
auth = {{ kind = "bearer", token = {{ env = "RB_TEST_API_TOKEN" }} }}
# Cancelling is an operator's act; the read token is a viewer unless it says so.
role = "operator"
[webhooks.run]
auth = {{ kind = "bearer", token = {{ env = "RUN_TOKEN" }} }}
[ui]
auth = {{ kind = "basic", username = "alice", password = {{ env = "UI_PASSWORD" }} }}

[approvers.oncall]
users = ["alice"]

[plugins.asks]
max-concurrent = 1
[plugins.asks.grants]
approval = ["oncall"]

[plugins.hostile]
max-concurrent = 8
deadline-secs = 300
[plugins.hostile.grants]
http = ["http://127.0.0.1:{silent}"]
"#,
                silent = silent.port
            ),
        );
        let server = Server::start(
            &sandbox,
            &[
                ("RUN_TOKEN", RUN_TOKEN),
                ("UI_PASSWORD", UI_PASSWORD),
                ("NODE_A_TOKEN", NODE_A_TOKEN),
            ],
        );
        let http = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        Fixture {
            server,
            sandbox,
            silent,
            http,
        }
    }

    fn submit(&self, playbook: &str, params: Value) -> String {
        self.server.submit_run(
            &format!("/hooks/run/{playbook}"),
            RUN_TOKEN,
            params.to_string().as_bytes(),
        )
    }

    fn run(&self, id: &str) -> Value {
        self.server.get(&format!("/runs/{id}")).json()
    }

    fn wait_for(&self, id: &str, status: &str) {
        self.server.wait_for_status(id, status, WAIT);
    }

    /// `POST /runs/{id}/cancel` with this `Authorization` (none: a stranger).
    fn cancel(&self, id: &str, authorization: Option<&str>) -> (u16, Value) {
        let headers: Vec<(&str, &str)> = authorization
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        let reply = self
            .server
            .post(&format!("/runs/{id}/cancel"), &headers, b"");
        (reply.status, reply.json())
    }

    fn host(&self, args: &[&str], env: &[(&str, &str)]) -> runbook_tests::Run {
        self.sandbox.host_env(args, env)
    }

    fn get_ui(&self, path: &str, authorization: Option<&str>) -> (u16, String) {
        let mut request = self.http.get(self.server.url(path));
        if let Some(auth) = authorization {
            request = request.header("authorization", auth);
        }
        let response = request.call().expect("an answer");
        let status = response.status().as_u16();
        (status, response.into_body().read_to_string().unwrap())
    }

    fn post_ui(&self, path: &str, authorization: Option<&str>, body: &str) -> (u16, String) {
        let mut request = self
            .http
            .post(self.server.url(path))
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(auth) = authorization {
            request = request.header("authorization", auth);
        }
        let response = request.send(body).expect("an answer");
        let status = response.status().as_u16();
        (status, response.into_body().read_to_string().unwrap())
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn messages(run: &Value) -> Vec<String> {
    run["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str().map(String::from))
        .collect()
}

/// Waits until `id` is cancelled, at most `PROMPT` after `asked`.
fn cancelled_promptly(fx: &Fixture, id: &str, asked: Instant) -> Value {
    loop {
        let run = fx.run(id);
        if run["status"] == "cancelled" {
            return run;
        }
        assert!(
            asked.elapsed() < PROMPT,
            "run {id} still {} {PROMPT:?} after the cancel: {run:#}",
            run["status"]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The server goes on: a well-behaved run completes after the cancels.
fn still_serving(fx: &Fixture) {
    let good = fx.submit("hostile", json!({ "case": "nap", "target": "10" }));
    let good = fx.server.wait_for_run(&good, WAIT);
    assert_eq!(good["status"], "no-action", "{good:#}");
}

#[test]
fn queued_and_waiting_runs_are_cancelled_over_the_api() {
    let fx = fixture();
    // One asks run at a time: the first waits for an answer, the second stays queued.
    let waiting = fx.submit("asks", json!({ "timeout": "600" }));
    fx.wait_for(&waiting, "waiting-approval");
    let queued = fx.submit("asks", json!({ "timeout": "600" }));
    assert_eq!(fx.run(&queued)["status"], "queued");

    // Strangers change nothing.
    assert_eq!(fx.cancel(&queued, None).0, 401);
    assert_eq!(fx.cancel(&queued, Some(&bearer("not-the-token"))).0, 401);
    assert_eq!(fx.run(&queued)["status"], "queued");

    // Queued: ended at once, never started (it asked nothing, its timeline is the cancel).
    let (status, answer) = fx.cancel(&queued, Some(&bearer(API_TOKEN)));
    assert_eq!(status, 200, "{answer:#}");
    assert_eq!(answer["status"], "cancelled");
    let run = fx.run(&queued);
    assert_eq!(run["status"], "cancelled", "{run:#}");
    assert_eq!(run["summary"], format!("cancelled by {API_CALLER}"));
    assert_eq!(messages(&run), [format!("cancelled by {API_CALLER}")]);
    let asked = fx.server.get(&format!("/approvals?run={queued}")).json();
    assert_eq!(asked, json!([]), "a cancelled queued run never started");

    // Waiting for an approval: stopped within seconds, its question closed as rejected.
    let asked_at = Instant::now();
    let (status, answer) = fx.cancel(&waiting, Some(&bearer(API_TOKEN)));
    assert_eq!(status, 202, "{answer:#}");
    assert_eq!(answer["status"], "cancelling");
    let run = cancelled_promptly(&fx, &waiting, asked_at);
    assert_eq!(run["summary"], format!("cancelled by {API_CALLER}"));
    assert_eq!(run["reason"], format!("cancelled by {API_CALLER}"));
    assert!(
        messages(&run).contains(&format!("run cancelled by {API_CALLER}")),
        "{run:#}"
    );
    let question = &fx.server.get(&format!("/approvals?run={waiting}")).json()[0];
    assert_eq!(question["state"], "rejected", "{question:#}");
    assert_eq!(question["answered_by"], API_CALLER);

    // Twice, or an unknown run: refused with why.
    let (status, answer) = fx.cancel(&waiting, Some(&bearer(API_TOKEN)));
    assert_eq!(status, 409, "{answer:#}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("has already ended (cancelled)"),
        "{answer:#}"
    );
    let (status, answer) = fx.cancel("r-no-such-run", Some(&bearer(API_TOKEN)));
    assert_eq!(status, 404, "{answer:#}");

    // The slot the waiting run held is free: the next asks run starts and asks.
    let next = fx.submit("asks", json!({ "timeout": "600" }));
    fx.wait_for(&next, "waiting-approval");
    assert_eq!(fx.cancel(&next, Some(&bearer(API_TOKEN))).0, 202);
    cancelled_promptly(&fx, &next, Instant::now());
    still_serving(&fx);
}

#[test]
fn the_cli_cancels_on_the_store_and_through_the_server() {
    let fx = fixture();
    // Spinning on the CPU: stopped at an epoch tick, from another process, through the store.
    let spinning = fx.submit("hostile", json!({ "case": "loop" }));
    fx.wait_for(&spinning, "running");
    let asked = Instant::now();
    let cli = fx.host(&["runs", "cancel", &spinning], &[]);
    assert_eq!(cli.code, 0, "{}{}", cli.stdout, cli.stderr);
    assert!(
        cli.stdout.contains(&format!("run {spinning} cancelled")),
        "{}",
        cli.stdout
    );
    let run = cancelled_promptly(&fx, &spinning, asked);
    let summary = run["summary"].as_str().unwrap();
    assert!(summary.starts_with("cancelled by cli:"), "{run:#}");

    // Parked in an http call to a peer that never answers: through the server's API.
    let parked = fx.submit(
        "hostile",
        json!({ "case": "hang", "target": fx.silent.url("/") }),
    );
    fx.wait_for(&parked, "running");
    let server = fx.server.url("");
    let asked = Instant::now();
    let cli = fx.host(
        &["runs", "cancel", &parked, "--server", &server],
        &[("RUNBOOK_API_TOKEN", API_TOKEN)],
    );
    assert_eq!(cli.code, 0, "{}{}", cli.stdout, cli.stderr);
    let run = cancelled_promptly(&fx, &parked, asked);
    assert_eq!(run["summary"], format!("cancelled by {API_CALLER}"));

    // Refusals: already ended (1), unknown (2), the wrong token (1, naming the fix).
    let again = fx.host(&["runs", "cancel", &parked], &[]);
    assert_eq!(again.code, 1, "{}{}", again.stdout, again.stderr);
    assert!(
        again.stderr.contains("has already ended (cancelled)"),
        "{}",
        again.stderr
    );
    let unknown = fx.host(&["runs", "cancel", "r-no-such-run"], &[]);
    assert_eq!(unknown.code, 2, "{}{}", unknown.stdout, unknown.stderr);
    let stranger = fx.host(
        &["runs", "cancel", &parked, "--server", &server],
        &[("RUNBOOK_API_TOKEN", "not-the-token")],
    );
    assert_eq!(stranger.code, 1, "{}", stranger.stderr);
    assert!(
        stranger.stderr.contains("RUNBOOK_API_TOKEN"),
        "{}",
        stranger.stderr
    );

    // `host runs` lists them as cancelled.
    let listed = fx.host(&["runs", "--json", "--limit", "100"], &[]).json();
    for id in [&spinning, &parked] {
        let run = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == **id)
            .unwrap_or_else(|| panic!("{id} not listed: {listed:#}"));
        assert_eq!(run["status"], "cancelled");
    }
    still_serving(&fx);
}

#[test]
fn the_console_cancels_with_its_csrf_token() {
    let fx = fixture();
    let alice = basic("alice", UI_PASSWORD);
    // Parked in a WASI sleep.
    let run = fx.submit("hostile", json!({ "case": "sleep" }));
    fx.wait_for(&run, "running");
    let page = format!("/ui/runs/{run}");
    let form = format!("/ui/runs/{run}/cancel");

    // Readers (a viewer token) see a link; the [ui] user gets the form with its token.
    let made = fx.host(
        &[
            "tokens",
            "create",
            "--name",
            "reader",
            "--role",
            "viewer",
            "--expires",
            "1h",
            "--json",
        ],
        &[],
    );
    let reader = made.json()["token"].as_str().unwrap().to_string();
    let (status, body) = fx.get_ui(&page, Some(&bearer(&reader)));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("id=\"cancel-link\""), "{body}");
    assert!(!body.contains("id=\"cancel-run\""), "{body}");
    let (status, body) = fx.get_ui(&form, Some(&alice));
    assert_eq!(status, 200, "{body}");
    let token = csrf_of(&body);

    // Without [ui] credentials, without the token or with another one: nothing changes.
    assert_eq!(fx.post_ui(&form, None, &format!("csrf={token}")).0, 401);
    assert_eq!(fx.post_ui(&form, Some(&alice), "").0, 403);
    assert_eq!(
        fx.post_ui(&form, Some(&alice), &format!("csrf={}", "0".repeat(64)))
            .0,
        403
    );
    assert_eq!(fx.run(&run)["status"], "running");

    let asked = Instant::now();
    let (status, body) = fx.post_ui(&form, Some(&alice), &format!("csrf={token}"));
    assert_eq!(status, 303, "{body}");
    let ended = cancelled_promptly(&fx, &run, asked);
    assert_eq!(ended["summary"], "cancelled by console:alice");
    let (_, body) = fx.get_ui(&page, Some(&bearer(API_TOKEN)));
    assert!(body.contains("cancelled by console:alice"), "{body}");
    assert!(
        !body.contains("cancel-link"),
        "no Cancel on an ended run: {body}"
    );

    // Twice: 409 with why.
    let (status, body) = fx.post_ui(&form, Some(&alice), &format!("csrf={token}"));
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("already ended"), "{body}");
    still_serving(&fx);
}

#[test]
fn a_host_run_process_is_stopped_from_another_process() {
    let fx = fixture();
    // `host run` in the background on the same store, spinning.
    let child = Command::new("timeout")
        .arg("120")
        .arg(runbook_tests::host_bin())
        .args(["run", "hostile", "-p", "case=loop", "--json"])
        .current_dir(fx.sandbox.path())
        .env("RUNBOOK_CACHE_DIR", fx.sandbox.cache_dir())
        .env("RUNBOOK_STORE", fx.sandbox.store())
        .env_remove("RUNBOOK_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let id = loop {
        let listed = fx.host(&["runs", "--json", "--limit", "50"], &[]).json();
        let running = listed.as_array().unwrap().iter().find(|r| {
            r["trigger"] == "cli" && r["playbook"] == "hostile" && r["status"] == "running"
        });
        if let Some(run) = running {
            break run["id"].as_str().unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the CLI run never showed: {listed:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let asked = Instant::now();
    let cli = fx.host(&["runs", "cancel", &id], &[]);
    assert_eq!(cli.code, 0, "{}{}", cli.stdout, cli.stderr);
    let output = child.wait_with_output().unwrap();
    assert!(asked.elapsed() < PROMPT, "took {:?}", asked.elapsed());
    assert_eq!(
        output.status.code(),
        Some(1),
        "a cancelled run is not a success"
    );
    let record: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(record["status"], "cancelled", "{record:#}");
    assert!(
        record["summary"]
            .as_str()
            .unwrap()
            .starts_with("cancelled by cli:"),
        "{record:#}"
    );
    assert_eq!(fx.run(&id)["status"], "cancelled");
}

#[test]
fn a_run_on_a_fleet_node_ends_at_once_and_its_agent_stops_it() {
    let fx = fixture();
    let node = Sandbox::new();
    node.add_plugin("hostile");
    node.write(
        "host.toml",
        "plugin-dirs = [\"plugins\"]\n[plugins.hostile]\ndeadline-secs = 600\n",
    );
    let agent = Agent::start(&node, &fx.server.url(""), "node-a", NODE_A_TOKEN);
    let spinning = fx.server.submit_run(
        "/hooks/run/hostile?node=node-a",
        RUN_TOKEN,
        json!({ "case": "loop" }).to_string().as_bytes(),
    );
    fx.wait_for(&spinning, "running");

    // Ended in the store at once: the agent holds nothing to write to.
    let (status, answer) = fx.cancel(&spinning, Some(&bearer(API_TOKEN)));
    assert_eq!(status, 200, "{answer:#}");
    let run = fx.run(&spinning);
    assert_eq!(run["status"], "cancelled", "{run:#}");
    assert_eq!(run["summary"], format!("cancelled by {API_CALLER}"));
    // Its next heartbeat or upload is refused, and the agent stops the run.
    agent.wait_for_log(
        &format!("run {spinning}: the server no longer counts it as this agent's"),
        PROMPT,
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        fx.run(&spinning)["status"],
        "cancelled",
        "the agent wrote nothing more"
    );

    // The agent goes on taking runs.
    let next = fx.server.submit_run(
        "/hooks/run/hostile?node=node-a",
        RUN_TOKEN,
        json!({ "case": "nap", "target": "10" })
            .to_string()
            .as_bytes(),
    );
    assert_eq!(fx.server.wait_for_run(&next, WAIT)["status"], "no-action");
}
