//! `host serve` reloads host.toml on SIGHUP: every key that decides who may do what (webhook
//! auth, the console's `[ui]` auth, fleet node tokens, approver groups, grants, routes,
//! schedules) applies to the next request and run, or the reload is refused naming it
//! (`[notify]`); a config that does not load changes nothing and says why.

use std::time::{Duration, Instant};

use runbook_tests::Sandbox;
use runbook_tests::host_toml::{HostToml, toml_str};
use runbook_tests::server::{Server, csrf_of};
use serde_json::{Value, json};

const OLD: &str = "reload-old-token-1234";
const NEW: &str = "reload-new-token-5678";

fn config(sandbox: &Sandbox, token_var: &str, granted: bool) -> String {
    let config = HostToml::new()
        .plugin_dirs()
        .hook_bearer("run", token_var)
        .hook_bearer("api", "RB_TEST_API_TOKEN")
        .table("plugins.hostile.grants");
    match granted {
        true => config.grant_fs_read("hostile", sandbox.path().join("evidence")),
        false => config,
    }
    .to_string()
}

fn read_run(server: &Server, token: &str, target: &str) -> (u16, Option<serde_json::Value>) {
    let body = json!({ "case": "fs-read", "target": target }).to_string();
    let reply = server.post(
        "/hooks/run/hostile",
        &[("Authorization", &format!("Bearer {token}"))],
        body.as_bytes(),
    );
    if reply.status != 202 {
        return (reply.status, None);
    }
    let id = reply.json()["runs"][0].as_str().unwrap().to_string();
    (202, Some(server.wait_for_run(&id, Duration::from_secs(60))))
}

#[test]
fn sighup_applies_a_valid_config_and_keeps_the_old_one_on_error() {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("hostile");
    let evidence = sandbox.write("evidence/a.txt", "evidence\n");
    let evidence = evidence.to_str().unwrap();
    sandbox.write("host.toml", config(&sandbox, "OLD_TOKEN", false));
    let server = Server::start(&sandbox, &[("OLD_TOKEN", OLD), ("NEW_TOKEN", NEW)]);
    let (status, run) = read_run(&server, OLD, evidence);
    assert_eq!(status, 202);
    assert_eq!(run.unwrap()["status"], "failed", "not granted yet");

    // A new token and a grant: applied at once, the old token refused.
    sandbox.write("host.toml", config(&sandbox, "NEW_TOKEN", true));
    server.hangup();
    server.wait_for_log(&sandbox, "host.toml reloaded", 1);
    assert_eq!(read_run(&server, OLD, evidence).0, 401);
    let (status, run) = read_run(&server, NEW, evidence);
    assert_eq!(status, 202);
    assert_eq!(
        run.unwrap()["status"],
        "no-action",
        "granted after the reload"
    );

    // A config that does not load (a secret that is not set, then a typo): nothing changes.
    sandbox.write("host.toml", config(&sandbox, "UNSET_TOKEN_VAR", true));
    server.hangup();
    let log = server.wait_for_log(&sandbox, "not reloaded", 1);
    assert!(log.contains("UNSET_TOKEN_VAR"), "{log}");
    sandbox.write("host.toml", "plugin-dirs = [\"plugins\"]\n[serverr]\n");
    server.hangup();
    let log = server.wait_for_log(&sandbox, "not reloaded", 2);
    assert!(log.contains("serverr"), "{log}");
    assert_eq!(
        read_run(&server, NEW, evidence).0,
        202,
        "the last good config stays"
    );
    assert_eq!(read_run(&server, OLD, evidence).0, 401);

    // What takes a restart is named, the rest applied.
    sandbox.write(
        "host.toml",
        format!(
            "{}\n[server]\nqueue-limit = 7\n",
            config(&sandbox, "OLD_TOKEN", true)
        ),
    );
    server.hangup();
    let log = server.wait_for_log(&sandbox, "host.toml reloaded", 2);
    assert!(
        log.contains("[server] changed; that takes a restart"),
        "{log}"
    );
    assert_eq!(read_run(&server, OLD, evidence).0, 202);
}

// ---- the console's password, and the schedules ---------------------------------------------

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Plain HTTP, redirects not followed: the console's own status codes.
struct Browser {
    http: ureq::Agent,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .new_agent(),
        }
    }

    /// (status, WWW-Authenticate, body)
    fn get(&self, server: &Server, path: &str, auth: Option<&str>) -> (u16, String, String) {
        let mut request = self.http.get(server.url(path));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let mut response = request.call().expect("an answer");
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let status = response.status().as_u16();
        (
            status,
            challenge,
            response.body_mut().read_to_string().unwrap(),
        )
    }

    fn post_form(&self, server: &Server, path: &str, auth: Option<&str>, body: &str) -> u16 {
        let mut request = self
            .http
            .post(server.url(path))
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        request.send(body).expect("an answer").status().as_u16()
    }
}

/// `[ui]` with the password in `password_file`; the read API (bearer, the harness's token)
/// stays the same across the reload.
fn console_config(password_file: &str) -> String {
    HostToml::new()
        .plugin_dirs()
        .ui_basic_file("oncall", password_file)
        .hook_bearer("api", "RB_TEST_API_TOKEN")
        .to_string()
}

#[test]
fn sighup_revokes_a_console_password_and_its_csrf_tokens() {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("hostile");
    sandbox.write("old-password", "old-pa55word\n");
    sandbox.write("new-password", "new-pa55word\n");
    sandbox.write("host.toml", console_config("old-password"));
    let server = Server::start(&sandbox, &[]);
    let browser = Browser::new();
    let (old, new) = (
        basic("oncall", "old-pa55word"),
        basic("oncall", "new-pa55word"),
    );
    let form = "/ui/playbooks/hostile/run";
    let params = "param%3Acase=quick&dry_run=1";

    // Before: the old password reads the console (only [ui] configured: that is enough) and
    // gets the form; the new one is refused.
    assert_eq!(browser.get(&server, "/ui/runs", Some(&old)).0, 200);
    assert_eq!(browser.get(&server, "/ui/runs", Some(&new)).0, 401);
    let (status, _, page) = browser.get(&server, form, Some(&old));
    assert_eq!(status, 200, "{page}");
    let old_token = csrf_of(&page);

    sandbox.write("host.toml", console_config("new-password"));
    server.hangup();
    let log = server.wait_for_log(&sandbox, "host.toml reloaded", 1);
    assert!(log.contains("console forms basic"), "{log}");

    // After: the old password is refused everywhere (and a browser is asked to sign in)…
    for path in ["/ui/runs", "/ui/playbooks", form] {
        let (status, challenge, _) = browser.get(&server, path, Some(&old));
        assert_eq!(status, 401, "{path}");
        assert!(
            challenge.starts_with("Basic realm="),
            "{path}: {challenge:?}"
        );
    }
    let before = server.get("/runs").json().as_array().unwrap().len();
    assert_eq!(
        browser.post_form(
            &server,
            form,
            Some(&old),
            &format!("{params}&csrf={old_token}")
        ),
        401,
        "the old password with its token"
    );
    // …its tokens die with it, even presented with the new password…
    assert_eq!(
        browser.post_form(
            &server,
            form,
            Some(&new),
            &format!("{params}&csrf={old_token}")
        ),
        403,
        "the old password's token with the new password"
    );
    assert_eq!(server.get("/runs").json().as_array().unwrap().len(), before);
    // …and the new password works (positive control).
    assert_eq!(browser.get(&server, "/ui/runs", Some(&new)).0, 200);
    let (_, _, page) = browser.get(&server, form, Some(&new));
    let new_token = csrf_of(&page);
    assert_eq!(
        browser.post_form(
            &server,
            form,
            Some(&new),
            &format!("{params}&csrf={new_token}")
        ),
        303
    );
    assert_eq!(
        server.get("/runs").json().as_array().unwrap().len(),
        before + 1
    );
}

/// `host schedules --json --history 1000`: the firings of `name`.
fn firings(sandbox: &Sandbox, name: &str) -> Vec<Value> {
    let run = sandbox.host(&["schedules", "--json", "--history", "1000"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.json()
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .and_then(|s| s["history"].as_array().cloned())
        .unwrap_or_default()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Fires `hostile` every second.
fn every_second(name: &str) -> [String; 4] {
    [
        format!("name = {}", toml_str(name)),
        r#"cron = "* * * * * *""#.into(),
        r#"playbook = "hostile""#.into(),
        r#"params = { case = "quick" }"#.into(),
    ]
}

fn schedule_config(name: &str) -> String {
    HostToml::new()
        .plugin_dirs()
        .plugin("hostile", "max-concurrent", "8")
        .schedule(&every_second(name))
        .to_string()
}

#[test]
fn sighup_stops_a_removed_schedule_and_starts_an_added_one() {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("hostile");
    sandbox.write("host.toml", schedule_config("tick"));
    let server = Server::start(&sandbox, &[]);
    wait_until("two tick firings", || firings(&sandbox, "tick").len() >= 2);

    sandbox.write("host.toml", schedule_config("tock"));
    server.hangup();
    let log = server.wait_for_log(&sandbox, "host.toml reloaded", 1);
    assert!(
        log.contains("schedules started: tock") && log.contains("schedules stopped: tick"),
        "{log}"
    );
    // A firing being recorded when the reload came completes; none comes after it.
    std::thread::sleep(Duration::from_millis(1500));
    let ticks = firings(&sandbox, "tick").len();
    wait_until("three tock firings", || {
        firings(&sandbox, "tock").len() >= 3
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        firings(&sandbox, "tick").len(),
        ticks,
        "the removed schedule kept firing:\n{}",
        server.log(&sandbox)
    );
}

// ---- the whole class: every key that decides who may do what --------------------------------

/// What the table test's host.toml says, key by key.
#[derive(Clone)]
struct Access {
    run_token: &'static str,
    api_token: &'static str,
    node_token: &'static str,
    ui_password: &'static str,
    approvers: &'static str,
    granted: bool,
    routed: bool,
    scheduled: bool,
    notify_file: &'static str,
}

impl Access {
    fn render(&self, sandbox: &Sandbox) -> String {
        let mut config = HostToml::new()
            .plugin_dirs()
            .hook_bearer("run", self.run_token)
            .hook_bearer("api", self.api_token)
            .hook_open("alertmanager")
            .ui_basic_env("oncall", self.ui_password)
            .node("web01", self.node_token)
            .notify_file("ops", self.notify_file)
            .set(
                "approvers.oncall",
                "users",
                &format!("[{}]", self.approvers),
            )
            .grant("asks", "approval", r#"["oncall"]"#)
            .table("plugins.hostile.grants");
        if self.granted {
            config = config.grant_fs_read("hostile", sandbox.path().join("evidence"));
        }
        if self.routed {
            config = config.route_with(
                &[r#"alertname="ReloadProbe""#],
                "hostile",
                &[r#"params = { case = "quick" }"#],
            );
        }
        if self.scheduled {
            config = config.schedule(&every_second("probe"));
        }
        config.to_string()
    }
}

const TOKENS: [(&str, &str); 8] = [
    ("RUN_A", "run-token-a-123456"),
    ("RUN_B", "run-token-b-123456"),
    ("API_A", "api-token-a-123456"),
    ("API_B", "api-token-b-123456"),
    ("NODE_A", "node-token-a-123456"),
    ("NODE_B", "node-token-b-123456"),
    ("UI_A", "ui-password-a"),
    ("UI_B", "ui-password-b"),
];

fn token(var: &str) -> &'static str {
    TOKENS.iter().find(|(v, _)| *v == var).unwrap().1
}

struct Probe<'a> {
    sandbox: &'a Sandbox,
    server: &'a Server,
    browser: Browser,
}

impl Probe<'_> {
    fn api(&self, var: &str) -> u16 {
        self.server
            .get_authorized("/runs", &format!("Bearer {}", token(var)))
            .status
    }

    fn run_hook(&self, var: &str) -> u16 {
        self.server
            .post(
                "/hooks/run/hostile",
                &[("Authorization", &format!("Bearer {}", token(var)))],
                json!({"case": "quick"}).to_string().as_bytes(),
            )
            .status
    }

    fn node(&self, var: &str) -> u16 {
        let body = json!({
            "agent": {"node": "web01", "session": "0123456789abcdef0123456789abcdef", "version": "probe"},
            "running": [],
        });
        self.server
            .post(
                "/agent/v1/heartbeat",
                &[("Authorization", &format!("Bearer {}", token(var)))],
                body.to_string().as_bytes(),
            )
            .status
    }

    fn console(&self, var: &str) -> u16 {
        self.browser
            .get(self.server, "/ui/runs", Some(&basic("oncall", token(var))))
            .0
    }

    /// The disposition of a `ReloadProbe` alert (a new one each time).
    fn route(&self) -> String {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let body = json!({"version": "4", "status": "firing", "alerts": [{
            "status": "firing", "labels": {"alertname": "ReloadProbe", "n": n.to_string()},
            "annotations": {}, "startsAt": "2026-01-01T00:00:00Z", "fingerprint": format!("{n:x}"),
        }]});
        let reply = self
            .server
            .post("/hooks/alertmanager", &[], body.to_string().as_bytes());
        assert_eq!(reply.status, 202, "{}", reply.body);
        reply.json()["alerts"][0]["disposition"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn fs_read(&self, var: &str) -> String {
        let evidence = self.sandbox.path().join("evidence/a.txt");
        let body = json!({"case": "fs-read", "target": evidence.to_str().unwrap()}).to_string();
        let id = self
            .server
            .submit_run("/hooks/run/hostile", token(var), body.as_bytes());
        let run = self.server.wait_for_run_as(&id, token("API_B"));
        run["status"].as_str().unwrap().to_string()
    }
}

trait WaitAs {
    fn wait_for_run_as(&self, id: &str, api_token: &str) -> Value;
}

impl WaitAs for Server {
    fn wait_for_run_as(&self, id: &str, api_token: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let reply = self.get_authorized(&format!("/runs/{id}"), &format!("Bearer {api_token}"));
            if reply.status == 200 {
                let run = reply.json();
                if !matches!(
                    run["status"].as_str(),
                    Some("queued" | "running" | "waiting-approval")
                ) {
                    return run;
                }
            }
            assert!(Instant::now() < deadline, "run {id} did not end");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn every_key_that_decides_access_applies_on_sighup_or_refuses_the_reload() {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("hostile");
    sandbox.add_plugin("asks");
    sandbox.write("evidence/a.txt", "evidence\n");
    let mut access = Access {
        run_token: "RUN_A",
        api_token: "API_A",
        node_token: "NODE_A",
        ui_password: "UI_A",
        approvers: "\"nobody\"",
        granted: false,
        routed: false,
        scheduled: false,
        notify_file: "ops.jsonl",
    };
    sandbox.write("host.toml", access.render(&sandbox));
    let server = Server::start_as_configured(&sandbox, &TOKENS);
    let probe = Probe {
        sandbox: &sandbox,
        server: &server,
        browser: Browser::new(),
    };
    // A question to `oncall`, waiting the whole test; `oncall` is nobody yet.
    let asking = server.submit_run(
        "/hooks/run/asks",
        token("RUN_A"),
        json!({"title": "Reloaded?", "timeout": "600"})
            .to_string()
            .as_bytes(),
    );
    let question = {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let asked = server
                .get_authorized(
                    &format!("/approvals?run={asking}"),
                    &format!("Bearer {}", token("API_A")),
                )
                .json();
            if let Some(id) = asked[0]["id"].as_str() {
                break id.to_string();
            }
            assert!(Instant::now() < deadline, "no question");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let answer = |password: &str| {
        let form = format!("/ui/approvals/{question}");
        let auth = basic("oncall", token(password));
        let (status, _, page) = probe.browser.get(&server, &form, Some(&auth));
        assert_eq!(status, 200, "{page}");
        let body = format!("decision=approve&csrf={}", csrf_of(&page));
        probe.browser.post_form(&server, &form, Some(&auth), &body)
    };

    // Each case: the key, what it changes, then the probe of the old and the new behaviour.
    type Change = Box<dyn Fn(&mut Access)>;
    type Check = Box<dyn Fn(&Probe)>;
    fn case(
        key: &'static str,
        change: impl Fn(&mut Access) + 'static,
        before: impl Fn(&Probe) + 'static,
        after: impl Fn(&Probe) + 'static,
    ) -> (&'static str, Change, Check, Check) {
        (key, Box::new(change), Box::new(before), Box::new(after))
    }
    let cases = vec![
        case(
            "[webhooks.run]",
            |a: &mut Access| a.run_token = "RUN_B",
            |p: &Probe| assert_eq!((p.run_hook("RUN_A"), p.run_hook("RUN_B")), (202, 401)),
            |p: &Probe| assert_eq!((p.run_hook("RUN_A"), p.run_hook("RUN_B")), (401, 202)),
        ),
        case(
            "[webhooks.api]",
            |a: &mut Access| a.api_token = "API_B",
            |p: &Probe| assert_eq!((p.api("API_A"), p.api("API_B")), (200, 401)),
            |p: &Probe| assert_eq!((p.api("API_A"), p.api("API_B")), (401, 200)),
        ),
        case(
            "[fleet.nodes]",
            |a: &mut Access| a.node_token = "NODE_B",
            |p: &Probe| assert_eq!((p.node("NODE_A"), p.node("NODE_B")), (200, 401)),
            |p: &Probe| assert_eq!((p.node("NODE_A"), p.node("NODE_B")), (401, 200)),
        ),
        case(
            "[ui]",
            |a: &mut Access| a.ui_password = "UI_B",
            |p: &Probe| assert_eq!((p.console("UI_A"), p.console("UI_B")), (200, 401)),
            |p: &Probe| assert_eq!((p.console("UI_A"), p.console("UI_B")), (401, 200)),
        ),
        case(
            "[plugins] grants",
            |a: &mut Access| a.granted = true,
            |p: &Probe| assert_eq!(p.fs_read("RUN_B"), "failed"),
            |p: &Probe| assert_eq!(p.fs_read("RUN_B"), "no-action"),
        ),
        case(
            "[[route]]",
            |a: &mut Access| a.routed = true,
            |p: &Probe| assert_eq!(p.route(), "unrouted"),
            |p: &Probe| assert_eq!(p.route(), "started"),
        ),
        case(
            "[[schedule]]",
            |a: &mut Access| a.scheduled = true,
            |p: &Probe| assert!(firings(p.sandbox, "probe").is_empty()),
            |p: &Probe| {
                wait_until("a firing of the added schedule", || {
                    !firings(p.sandbox, "probe").is_empty()
                })
            },
        ),
    ];
    let mut reloads = 0;
    for (key, change, before, after) in &cases {
        before(&probe);
        change(&mut access);
        sandbox.write("host.toml", access.render(&sandbox));
        server.hangup();
        reloads += 1;
        let log = server.wait_for_log(&sandbox, "host.toml reloaded", reloads);
        assert!(!log.contains("not reloaded"), "{key}: {log}");
        after(&probe);
    }

    // [approvers]: the console user is refused while `oncall` is nobody, answers once listed.
    assert_eq!(answer("UI_B"), 403, "not on the list yet");
    access.approvers = "\"oncall\"";
    sandbox.write("host.toml", access.render(&sandbox));
    server.hangup();
    reloads += 1;
    server.wait_for_log(&sandbox, "host.toml reloaded", reloads);
    assert_eq!(answer("UI_B"), 303, "listed after the reload");
    let done = server.wait_for_run_as(&asking, token("API_B"));
    assert_eq!(done["summary"], "approved by console:oncall", "{done:#}");

    // [notify] decides who vouches for answers and cannot be swapped live: the reload is
    // refused, naming it, and nothing of it applies (the token changed with it stays old).
    access.notify_file = "elsewhere.jsonl";
    access.run_token = "RUN_A";
    sandbox.write("host.toml", access.render(&sandbox));
    server.hangup();
    let log = server.wait_for_log(&sandbox, "not reloaded", 1);
    assert!(
        log.contains("[notify] changed") && log.contains("nothing was reloaded"),
        "{log}"
    );
    assert_eq!(
        (probe.run_hook("RUN_A"), probe.run_hook("RUN_B")),
        (401, 202)
    );
    assert_eq!(
        log.matches("host.toml reloaded").count(),
        reloads,
        "a refused reload said reloaded"
    );
}
