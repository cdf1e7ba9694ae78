//! Who may do what, against a real `host serve` (SQLite, or PostgreSQL with
//! `RUNBOOK_TEST_STORE=postgres`): every route of the access table (`host serve --routes`)
//! answers 401 without credentials and 403 to each role that does not cover its own; API
//! tokens made by `host tokens create` are refused once expired or revoked, and their role is
//! their ceiling; a viewer is shown no Run link nor Approve buttons; an approver of one group
//! cannot answer another's question; each audited act is exactly one event, shipped to a file
//! sink through the outbox, across a restart.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use runbook_core::access::Role;
use runbook_tests::Sandbox;
use runbook_tests::server::{API_TOKEN, Server};
use serde_json::json;

const RUN_TOKEN: &str = "authz-run-token";
const UI_PASSWORD: &str = "authz-ui-password";
const WAIT: Duration = Duration::from_secs(60);
const ENV: [(&str, &str); 2] = [("RUN_TOKEN", RUN_TOKEN), ("UI_PASSWORD", UI_PASSWORD)];

const CONFIG: &str = r#"plugin-dirs = ["plugins"]
[webhooks.api]
auth = { kind = "bearer", token = { env = "RB_TEST_API_TOKEN" } }
[webhooks.run]
auth = { kind = "bearer", token = { env = "RUN_TOKEN" } }
[ui]
auth = { kind = "basic", username = "root", password = { env = "UI_PASSWORD" } }

[approvers.group-a]
users = ["approver-a"]
[approvers.group-b]
users = ["approver-b"]

[plugins.asks.grants]
approval = ["group-a", "group-b"]

[notify.audit-file]
kind = "file"
path = "audit.jsonl"

[audit]
sinks = ["audit-file"]
"#;

struct Fixture {
    sandbox: Sandbox,
    server: Server,
    http: ureq::Agent,
    /// A usable token per role, by role.
    tokens: Vec<(Role, String)>,
}

/// One server for every test of this binary but the restart's.
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

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// `host tokens create` as the sandbox's user: the token printed once.
fn create_token(sandbox: &Sandbox, name: &str, role: &str, expires: &str) -> String {
    let made = sandbox.host_env(
        &[
            "tokens",
            "create",
            "--name",
            name,
            "--role",
            role,
            "--expires",
            expires,
            "--json",
        ],
        &ENV,
    );
    let doc = made.json();
    let token = doc["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {doc}"));
    assert!(token.starts_with("rbk_"), "{token}");
    token.to_string()
}

impl Fixture {
    fn start() -> Fixture {
        let sandbox = Sandbox::new();
        sandbox.add_plugin("asks");
        sandbox.write("host.toml", CONFIG);
        let server = Server::start(&sandbox, &ENV);
        let tokens = Role::ALL
            .into_iter()
            .map(|role| {
                let name = format!("{role}-token");
                (role, create_token(&sandbox, &name, role.as_str(), "1h"))
            })
            .collect();
        Fixture {
            sandbox,
            server,
            http: agent(),
            tokens,
        }
    }

    fn token(&self, role: Role) -> String {
        let (_, token) = self.tokens.iter().find(|(r, _)| *r == role).unwrap();
        format!("Bearer {token}")
    }

    /// (status, body) of `method path` with this Authorization (none: a stranger).
    fn call(&self, method: &str, path: &str, auth: Option<&str>, body: &str) -> (u16, String) {
        call(&self.http, &self.server, method, path, auth, body)
    }

    /// Asks `group` a question through the `asks` playbook; the question's id once pending.
    fn ask(&self, group: &str) -> (String, String) {
        let params =
            json!({ "group": group, "title": format!("ok for {group}?"), "timeout": "120" });
        let run =
            self.server
                .submit_run("/hooks/run/asks", RUN_TOKEN, params.to_string().as_bytes());
        let deadline = Instant::now() + WAIT;
        loop {
            let asked = self.server.get(&format!("/approvals?run={run}")).json();
            if let Some(id) = asked[0]["id"].as_str() {
                return (run, id.to_string());
            }
            assert!(Instant::now() < deadline, "run {run} asked nothing");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn call(
    http: &ureq::Agent,
    server: &Server,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(server.url(path));
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    if method == "POST" {
        let kind = if path.starts_with("/ui") {
            "application/x-www-form-urlencoded"
        } else {
            "application/json"
        };
        request = request.header("content-type", kind);
    }
    let response = http
        .run(request.body(body.as_bytes().to_vec()).unwrap())
        .expect("an answer");
    let status = response.status().as_u16();
    // A live stream never ends: its status is enough.
    let text = if path.ends_with("/events") {
        String::new()
    } else {
        response.into_body().read_to_string().unwrap_or_default()
    };
    (status, text)
}

/// The table as the binary prints it.
fn access_table(sandbox: &Sandbox) -> Vec<(String, String, String)> {
    let printed = sandbox.host_env(&["serve", "--routes"], &ENV).json();
    printed
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|r| {
            let field = |k: &str| r[k].as_str().unwrap().to_string();
            (field("method"), field("path"), field("needs"))
        })
        .collect()
}

/// The pattern with every `{param}` filled with a value that names nothing.
fn concrete(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|segment| match segment {
            "{n}" | "{id}" if pattern.starts_with("/ui/outbox") => "999999".to_string(),
            "{n}" => "0".into(),
            s if s.starts_with('{') => "no-such-thing".into(),
            s => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn every_route_refuses_the_roles_below_it() {
    let f = fixture();
    let table = access_table(&f.sandbox);
    assert!(table.len() > 40, "{table:?}");
    let mut checked = 0;
    for (method, pattern, needs) in &table {
        let path = concrete(pattern);
        let Ok(needed) = needs.parse::<Role>() else {
            if needs == "open" {
                let (status, _) = f.call(method, &path, None, "");
                assert!(status != 401 && status != 403, "{method} {path}: {status}");
            }
            continue;
        };
        let (status, _) = f.call(method, &path, None, "");
        assert_eq!(status, 401, "{method} {path} without credentials");
        for role in Role::ALL {
            let (status, body) = f.call(method, &path, Some(&f.token(role)), "");
            if role.covers(needed) {
                // A POST of the console is refused for its CSRF token (403 too): the
                // positive control is the GETs' and the API's.
                if method == "GET" || !path.starts_with("/ui") {
                    assert!(
                        status != 401 && status != 403,
                        "{method} {path} as {role}: {status} {body}"
                    );
                }
            } else {
                assert_eq!(
                    status, 403,
                    "{method} {path} as {role} (needs {needed}): {body}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked}");
}

#[test]
fn expired_and_revoked_tokens_are_refused_and_a_role_is_a_ceiling() {
    let f = fixture();
    let brief = create_token(&f.sandbox, "brief", "admin", "1s");
    let revoked = create_token(&f.sandbox, "to-revoke", "admin", "1h");
    let brief = format!("Bearer {brief}");
    let revoked = format!("Bearer {revoked}");
    assert_eq!(f.call("GET", "/runs", Some(&revoked), "").0, 200);
    let out = f.sandbox.host_env(&["tokens", "revoke", "to-revoke"], &ENV);
    assert!(out.stdout.contains("revoked"), "{}", out.stderr);
    assert_eq!(f.call("GET", "/runs", Some(&revoked), "").0, 401);
    assert_eq!(f.call("GET", "/ui/runs", Some(&revoked), "").0, 401);
    // Revoking again says there is nothing to revoke.
    let again = f.sandbox.host_env(&["tokens", "revoke", "to-revoke"], &ENV);
    assert_eq!(again.code, 1, "{}", again.stderr);
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.call("GET", "/runs", Some(&brief), "").0 != 401 {
        assert!(Instant::now() < deadline, "an expired token still reads");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A token that looks like ours but is not stored, and the list that never shows a token.
    let forged = format!("Bearer rbk_{}", "0".repeat(64));
    assert_eq!(f.call("GET", "/runs", Some(&forged), "").0, 401);
    let listed = f.sandbox.host_env(&["tokens", "list"], &ENV).stdout;
    assert!(
        listed.contains("revoked") && listed.contains("expired"),
        "{listed}"
    );
    assert!(!listed.contains("rbk_"), "{listed}");
    // The ceiling: a viewer token reads, and cannot cancel or reach admin pages.
    let viewer = f.token(Role::Viewer);
    assert_eq!(f.call("GET", "/runs", Some(&viewer), "").0, 200);
    assert_eq!(f.call("POST", "/runs/r1/cancel", Some(&viewer), "").0, 403);
    assert_eq!(
        f.call("GET", "/ui/safety", Some(&f.token(Role::Operator)), "")
            .0,
        403
    );
    // The static read token is a viewer by default; [ui]'s user an admin.
    let read = format!("Bearer {API_TOKEN}");
    assert_eq!(f.call("GET", "/runs", Some(&read), "").0, 200);
    assert_eq!(f.call("POST", "/runs/r1/cancel", Some(&read), "").0, 403);
    let root = basic("root", UI_PASSWORD);
    assert_eq!(f.call("GET", "/ui/safety", Some(&root), "").0, 200);
    // Bad input stores nothing and says why.
    for args in [
        ["--role", "root", "--expires", "1h"],
        ["--role", "viewer", "--expires", "forever"],
        ["--role", "viewer", "--expires", "400d"],
    ] {
        let mut all = vec!["tokens", "create", "--name", "bad"];
        all.extend(args);
        let refused = f.sandbox.host_env(&all, &ENV);
        assert_eq!(refused.code, 2, "{args:?}: {}", refused.stderr);
    }
    let list = f
        .sandbox
        .host_env(&["tokens", "list", "--json"], &ENV)
        .json();
    assert!(
        list.as_array().unwrap().iter().all(|t| t["name"] != "bad"),
        "{list}"
    );
}

#[test]
fn a_viewer_sees_no_run_link_nor_answer_forms_and_approvers_answer_their_group_only() {
    let f = fixture();
    let viewer = f.token(Role::Viewer);
    let (_, playbooks) = f.call("GET", "/ui/playbooks", Some(&viewer), "");
    assert!(
        playbooks.contains("asks") && !playbooks.contains("run-form"),
        "{playbooks}"
    );
    let (_, as_operator) = f.call("GET", "/ui/playbooks", Some(&f.token(Role::Operator)), "");
    assert!(as_operator.contains("run-form"), "{as_operator}");
    assert_eq!(
        f.call("GET", "/ui/playbooks/asks/run", Some(&viewer), "").0,
        403
    );
    assert_eq!(
        f.call("POST", "/ui/playbooks/asks/run", Some(&viewer), "")
            .0,
        403
    );

    let (run_b, question_b) = f.ask("group-b");
    let (_, page) = f.call("GET", &format!("/ui/runs/{run_b}"), Some(&viewer), "");
    assert!(
        !page.contains("name=\"decision\""),
        "a viewer got answer forms: {page}"
    );
    assert_eq!(
        f.call(
            "GET",
            &format!("/ui/approvals/{question_b}"),
            Some(&viewer),
            ""
        )
        .0,
        403
    );

    // Approvers, named as the groups' users list them.
    let a = format!(
        "Bearer {}",
        create_token(&f.sandbox, "approver-a", "approver", "1h")
    );
    let b = format!(
        "Bearer {}",
        create_token(&f.sandbox, "approver-b", "approver", "1h")
    );
    let answer = json!({ "approve": true }).to_string();
    let path = format!("/approvals/{question_b}");
    let (status, body) = f.call("POST", &path, Some(&a), &answer);
    assert_eq!(status, 403, "group A answered group B: {body}");
    assert_eq!(f.call("POST", &path, Some(&viewer), &answer).0, 403);
    assert_eq!(f.call("POST", &path, Some(&b), "not json").0, 400);
    assert_eq!(
        f.call("GET", &format!("/runs/{run_b}"), Some(&viewer), "")
            .0,
        200
    );
    // `host approve --server` with B's token: no store needed.
    let url = f.server.url("");
    let b_token = b.trim_start_matches("Bearer ");
    let approved = f.sandbox.host_env(
        &["approve", &run_b, "--server", &url],
        &[
            ("RUNBOOK_API_TOKEN", b_token),
            ("RUNBOOK_STORE", "/nonexistent/dir/x.sqlite3"),
        ],
    );
    assert_eq!(approved.code, 0, "{} {}", approved.stdout, approved.stderr);
    let run = f.server.wait_for_run(&run_b, WAIT);
    assert_eq!(run["status"], "resolved", "{run}");
    // Answered once: a second answer is 409.
    assert_eq!(f.call("POST", &path, Some(&b), &answer).0, 409);
}

#[path = "authz/audit.rs"]
mod audit;
