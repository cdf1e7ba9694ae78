//! The console's single sign-on through a real OpenID provider (panva's oidc-provider,
//! tests/oidc/provider.mjs, one per test binary) against a real `host serve` (SQLite, or
//! PostgreSQL with `RUNBOOK_TEST_STORE=postgres`): real Chromium signs in and out; roles come
//! from the provider's groups through `[roles]`, so a viewer gets no Run form nor Approve
//! buttons and 403 on their POSTs, and an approver of one `[approvers.X] groups` cannot answer
//! another group's question; ID tokens for another audience, expired, signed by an unknown key
//! or forged, and a replayed nonce or callback are refused without a session; a rotation of
//! the provider's keys is picked up (and refetching them is bounded); signing out on one
//! replica ends the session on the other (PostgreSQL only); a person the provider vouched for
//! but whose groups give no role is an audited `login-refused`; a provider's reply past the
//! size cap is refused with a page that names the cap.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use runbook_tests::Sandbox;
use runbook_tests::browser::Browser;
use runbook_tests::docker::free_port;
use runbook_tests::oidc::{CLIENT_SECRET, Client, Provider};
use runbook_tests::postgres::{self, Database};
use runbook_tests::server::{Server, csrf_of};
use serde_json::{Value, json};

const RUN_TOKEN: &str = "oidc-run-token";
const SESSION: &str = "__Host-runbook-session";
const WAIT: Duration = Duration::from_secs(60);
const ENV: [(&str, &str); 2] = [("RUN_TOKEN", RUN_TOKEN), ("OIDC_SECRET", CLIENT_SECRET)];

fn config(issuer: &str, port: u16) -> String {
    format!(
        r#"plugin-dirs = ["plugins"]
[webhooks.run]
auth = {{ kind = "bearer", token = {{ env = "RUN_TOKEN" }} }}

[ui.oidc]
issuer = "{issuer}"
client-id = "{client}"
client-secret = {{ env = "OIDC_SECRET" }}
redirect-url = "http://127.0.0.1:{port}/ui/login/callback"

[roles]
viewer = ["sre-all"]
operator = ["sre-oncall"]
approver = ["db-approvers", "web-approvers"]
admin = ["sre-admins"]

[approvers.db]
groups = ["db-approvers"]
[approvers.web]
groups = ["web-approvers"]

[plugins.asks.grants]
approval = ["db", "web"]
"#,
        client = runbook_tests::oidc::CLIENT_ID
    )
}

struct Fixture {
    provider: Provider,
    sandbox: Sandbox,
    server: Server,
}

/// One provider and one server for every test of this binary but the replicas'.
fn fixture() -> Arc<Fixture> {
    static SHARED: Mutex<Weak<Fixture>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(fixture) = shared.upgrade() {
        return fixture;
    }
    let provider = Provider::start();
    let sandbox = Sandbox::new();
    sandbox.add_plugin("asks");
    let port = free_port();
    sandbox.write("host.toml", config(&provider.issuer, port));
    let server = Server::start_on(&sandbox, &ENV, port);
    let fixture = Arc::new(Fixture {
        provider,
        sandbox,
        server,
    });
    *shared = Arc::downgrade(&fixture);
    fixture
}

impl Fixture {
    fn console(&self) -> String {
        self.server.url("")
    }

    /// A browser-like client signed in as `user`.
    fn signed_in(&self, user: &str) -> Client {
        let client = Client::default();
        let answer = client.sign_in(&self.console(), user);
        assert_eq!(answer.status, 303, "{user}: {}", answer.body);
        assert_eq!(answer.location.as_deref(), Some("/ui/runs"));
        assert!(client.cookie(SESSION).is_some(), "{:?}", answer.set_cookies);
        client
    }

    /// Asks `group` a question through the `asks` playbook: (run, question id) once pending.
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

    fn audit(&self, act: &str) -> Vec<Value> {
        let all = self.sandbox.host_env(&["audit", "--json"], &ENV).json();
        all.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["act"] == act)
            .cloned()
            .collect()
    }
}

/// Waits until the page shows an element matching `css`.
fn wait(browser: &Browser, css: &str) {
    browser.wait_for(css, Duration::from_secs(20), |b| b.count(css) > 0);
}

#[test]
fn chromium_signs_in_through_the_provider_and_out() {
    let f = fixture();
    let browser = Browser::start(1200, 800);
    browser.goto(&f.server.url("/ui/playbooks"));
    wait(&browser, "#sign-in");
    let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs");
    browser.screenshot(&std::path::Path::new(docs).join("console-sign-in.png"));
    browser.click("#sign-in");
    // The provider's own sign-in page.
    wait(&browser, "input[name=login]");
    assert!(
        browser.current_url().starts_with(&f.provider.issuer),
        "{}",
        browser.current_url()
    );
    browser.fill("input[name=login]", "vera");
    browser.fill("input[name=password]", "any");
    browser.screenshot(&std::path::Path::new(docs).join("provider-sign-in.png"));
    browser.click("button[type=submit]");
    wait(&browser, "#signed-in");
    assert_eq!(browser.text("#signed-in"), "vera");
    browser.screenshot(&std::path::Path::new(docs).join("console-signed-in.png"));
    assert!(
        browser.current_url().ends_with("/ui/playbooks"),
        "back where the sign-in began: {}",
        browser.current_url()
    );
    // A viewer: the playbooks, and no Run form.
    assert!(browser.text("main").contains("asks"));
    assert_eq!(browser.count(".run-form"), 0);
    assert_eq!(browser.count("a[href$='/run']"), 0);
    browser.click("#sign-out");
    wait(&browser, "#sign-out-button");
    browser.click("#sign-out-button");
    wait(&browser, "#signed-out");
    browser.goto(&f.server.url("/ui/runs"));
    wait(&browser, "#sign-in");
    let events = f.audit("logout");
    assert!(
        events
            .iter()
            .any(|e| e["actor"] == "vera" && e["proof"] == "oidc"),
        "{events:?}"
    );
}

#[test]
fn roles_come_from_the_groups_and_approvers_answer_their_own_group_only() {
    let f = fixture();
    let console = f.console();
    let (run_db, question_db) = f.ask("db");

    // A viewer: no Run form nor Approve buttons, and 403 on their POSTs.
    let vera = f.signed_in("vera");
    let page = vera.get(&format!("{console}/ui/playbooks"));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("asks") && !page.body.contains("run-form"));
    let run_page = vera.get(&format!("{console}/ui/runs/{run_db}"));
    assert_eq!(run_page.status, 200);
    assert!(
        !run_page.body.contains("name=\"decision\""),
        "{}",
        run_page.body
    );
    assert_eq!(
        vera.get(&format!("{console}/ui/playbooks/asks/run")).status,
        403
    );
    for path in [
        "/ui/playbooks/asks/run".to_string(),
        format!("/ui/approvals/{question_db}"),
        format!("/ui/runs/{run_db}/cancel"),
    ] {
        let posted = vera.post_form(&format!("{console}{path}"), &[("decision", "approve")]);
        assert_eq!(posted.status, 403, "{path}: {}", posted.body);
    }
    assert_eq!(vera.get(&format!("{console}/ui/safety")).status, 403);

    // An operator sees the Run form; an admin the safety page.
    let olga = f.signed_in("olga");
    assert!(
        olga.get(&format!("{console}/ui/playbooks"))
            .body
            .contains("run-form")
    );
    assert_eq!(
        f.signed_in("adam")
            .get(&format!("{console}/ui/safety"))
            .status,
        200
    );
    // Someone whose groups give no role gets no session.
    let nora = Client::default();
    let refused = nora.sign_in(&console, "nora");
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(nora.cookie(SESSION).is_none());
    // The provider vouched for her: the refusal is an audit event naming her, from where, why.
    let refusals: Vec<Value> = f
        .audit("login-refused")
        .into_iter()
        .filter(|e| e["actor"] == "nora")
        .collect();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0]["source"], "127.0.0.1");
    let detail = refusals[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("gives a role") && detail.contains("elsewhere"),
        "{detail}"
    );
    assert!(f.audit("login").iter().all(|e| e["actor"] != "nora"));

    // An approver of group web is shown the form, and refused for group db's question.
    let walt = f.signed_in("walt");
    let form = walt.get(&format!("{console}/ui/approvals/{question_db}"));
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(form.body.contains("name=\"csrf\""), "{}", form.body);
    let answer = |who: &Client, page: &str| {
        who.post_form(
            &format!("{console}/ui/approvals/{question_db}"),
            &[("csrf", &csrf_of(page)), ("decision", "approve")],
        )
    };
    let wrong = answer(&walt, &form.body);
    assert_eq!(wrong.status, 403, "web answered db: {}", wrong.body);
    assert!(wrong.body.contains("group"), "{}", wrong.body);
    assert_eq!(
        f.server.get(&format!("/runs/{run_db}")).json()["status"],
        "waiting-approval"
    );

    // An approver of group db answers it, from the run's page with its Approve button.
    let anna = f.signed_in("anna");
    let run_page = anna.get(&format!("{console}/ui/runs/{run_db}"));
    assert!(
        run_page.body.contains("name=\"decision\""),
        "{}",
        run_page.body
    );
    let done = answer(&anna, &run_page.body);
    assert_eq!(done.status, 303, "{}", done.body);
    let run = f.server.wait_for_run(&run_db, WAIT);
    assert_eq!(run["status"], "resolved", "{run}");
    let approvals = f.server.get(&format!("/approvals?run={run_db}")).json();
    assert_eq!(approvals[0]["answered_by"], "console:anna", "{approvals}");

    // Sign-in is audited: who, from where, how.
    let logins = f.audit("login");
    let anna_in = logins
        .iter()
        .find(|e| e["actor"] == "anna")
        .unwrap_or_else(|| panic!("{logins:?}"));
    assert_eq!(anna_in["proof"], "oidc");
    assert_eq!(anna_in["source"], "127.0.0.1");

    // Signing out ends the session: the old cookie reads nothing any more.
    let cookie = anna.cookie(SESSION).unwrap();
    let form = anna.get(&format!("{console}/ui/logout"));
    let token = csrf_of(&form.body);
    let stale = anna.post_form(&format!("{console}/ui/logout"), &[("csrf", "1.00")]);
    assert_eq!(stale.status, 403, "a sign-out without its token");
    let out = anna.post_form(&format!("{console}/ui/logout"), &[("csrf", &token)]);
    assert_eq!(out.status, 200, "{}", out.body);
    assert!(anna.cookie(SESSION).is_none(), "{:?}", out.set_cookies);
    anna.set_cookie(SESSION, &cookie);
    assert_eq!(anna.get(&format!("{console}/ui/runs")).status, 401);
}

#[test]
fn bad_id_tokens_and_callbacks_are_refused() {
    let f = fixture();
    let console = f.console();
    f.signed_in("mallory");
    // Tokens the provider spoils on purpose: refused, no session, and no 5xx.
    for (mode, why) in [
        ("wrong-aud", "audience"),
        ("expired", "expired"),
        ("unknown-key", "key"),
        ("forged", "signature"),
    ] {
        f.provider.mischief("mallory", mode);
        let client = Client::default();
        let answer = client.sign_in(&console, "mallory");
        assert_eq!(answer.status, 401, "{mode}: {}", answer.body);
        assert!(
            answer.body.to_lowercase().contains(why),
            "{mode}: {}",
            answer.body
        );
        assert!(client.cookie(SESSION).is_none(), "{mode}");
    }

    // A replayed ID token (the previous sign-in's, with its nonce) is refused.
    f.provider.mischief("mallory", "replay");
    let replayed = Client::default().sign_in(&console, "mallory");
    assert_eq!(replayed.status, 401, "{}", replayed.body);
    assert!(replayed.body.contains("nonce"), "{}", replayed.body);

    // A callback is good once, and only in the browser that began the sign-in.
    let client = Client::default();
    let callback = client.to_callback(&console, "mallory");
    let stranger = Client::default();
    stranger.set_cookie("__Host-runbook-login", "x".repeat(22).as_str());
    assert_eq!(
        stranger.get(&callback).status,
        400,
        "another browser's callback"
    );
    assert_eq!(client.get(&callback).status, 303);
    let again = Client::default();
    again.set_cookie(
        "__Host-runbook-login",
        callback
            .split("state=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap(),
    );
    let replay = again.get(&callback);
    assert_eq!(replay.status, 400, "{}", replay.body);
    assert!(replay.body.contains("already used"), "{}", replay.body);

    // Hostile callbacks: clear 4xx pages, never a 5xx.
    let base = format!("{console}/ui/login/callback");
    let long = "a".repeat(10_000);
    for (query, status) in [
        ("".to_string(), 400),
        ("code=x".to_string(), 400),
        (format!("state=abcdefghijklmnopqrstuv&code={long}"), 400),
        ("state=%00%01&code=x".to_string(), 400),
        ("state=abcdefghijklmnopqrstuv&code=x".to_string(), 400),
        (
            "error=access_denied&error_description=%1b%5b2J+no".to_string(),
            401,
        ),
        (format!("state={long}"), 400),
    ] {
        let answer = Client::default().get(&format!("{base}?{query}"));
        assert_eq!(answer.status, status, "{query:.60}: {}", answer.body);
        assert!(!answer.body.contains('\u{1b}'));
    }
    // None of these verified anyone: logged only, never an audit event (an unauthenticated
    // caller cannot grow the trail).
    let audited = f.audit("login-refused");
    assert!(audited.iter().all(|e| e["actor"] == "nora"), "{audited:?}");
    // A session cookie that names nothing, or has the wrong shape, is a stranger.
    for junk in ["0".repeat(64), "not-a-session".into(), "z".repeat(5000)] {
        let client = Client::default();
        client.set_cookie(SESSION, &junk);
        assert_eq!(client.get(&format!("{console}/ui/runs")).status, 401);
    }
}

/// A provider and a server of its own: rotating the keys would spoil the other tests' sign-ins
/// under way.
#[test]
fn a_rotation_of_the_providers_keys_is_picked_up_and_refetching_is_bounded() {
    let provider = Provider::start();
    let sandbox = Sandbox::new();
    let port = free_port();
    sandbox.write("host.toml", config(&provider.issuer, port));
    let server = Server::start_on(&sandbox, &ENV, port);
    let console = server.url("");
    let signed_in = |user: &str| {
        let answer = Client::default().sign_in(&console, user);
        assert_eq!(answer.status, 303, "{user}: {}", answer.body);
    };
    signed_in("vera");
    // The provider rotates its signing key: the next token names a key the server never saw;
    // it reads the key set again and takes it.
    let before = provider.key_ids();
    let rotated = provider.rotate_keys();
    assert_eq!(provider.key_ids(), std::slice::from_ref(&rotated));
    assert!(!before.contains(&rotated));
    signed_in("vera");
    // Just read again: tokens of unknown keys cost no fetch each, and are refused.
    for _ in 0..2 {
        provider.mischief("mallory", "unknown-key");
        let answer = Client::default().sign_in(&console, "mallory");
        assert_eq!(answer.status, 401, "{}", answer.body);
    }
    signed_in("vera");
    let log = server.log(&sandbox);
    let refetched = log.matches("fetched the provider's keys again").count();
    assert!(
        (1..=2).contains(&refetched),
        "{refetched} refetches:\n{log}"
    );
    assert!(log.contains("fetched just now"), "{log}");
}

#[test]
fn signing_out_on_one_replica_ends_the_session_on_the_other() {
    if postgres::cluster().is_none() {
        eprintln!("skipped: RUNBOOK_TEST_POSTGRES not set (scripts/test.sh sets it)");
        return;
    }
    let f = fixture();
    let database = Database::create();
    let replicas: Vec<(Sandbox, Server)> = (0..2)
        .map(|_| {
            let sandbox = Sandbox::new();
            sandbox.add_plugin("asks");
            let port = free_port();
            sandbox.write("host.toml", config(&f.provider.issuer, port));
            let mut env = ENV.to_vec();
            env.push(("RUNBOOK_STORE", &database.url));
            let server = Server::start_on(&sandbox, &env, port);
            (sandbox, server)
        })
        .collect();
    let (one, two) = (&replicas[0].1, &replicas[1].1);
    // Signed in on the first; cookies know no port, so the browser sends it to both.
    let client = Client::default();
    let answer = client.sign_in(&one.url(""), "vera");
    assert_eq!(answer.status, 303, "{}", answer.body);
    for replica in [one, two] {
        assert_eq!(client.get(&replica.url("/ui/runs")).status, 200);
    }
    // Signed out on the second (its CSRF key is the store's, shared).
    let form = client.get(&two.url("/ui/logout"));
    let out = client.post_form(&two.url("/ui/logout"), &[("csrf", &csrf_of(&form.body))]);
    assert_eq!(out.status, 200, "{}", out.body);
    let cookie = answer
        .set_cookies
        .iter()
        .find_map(|c| c.strip_prefix(&format!("{SESSION}=")))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    client.set_cookie(SESSION, &cookie);
    for replica in [one, two] {
        assert_eq!(client.get(&replica.url("/ui/runs")).status, 401);
    }
}

/// An identity provider on 127.0.0.1 that misbehaves on size: its discovery document is
/// 4 MiB (and says so in Content-Length) while `huge_document` is set; otherwise the document
/// is valid and its key set never ends (no length: the stream goes on until the reader stops).
fn oversized_provider(huge_document: Arc<std::sync::atomic::AtomicBool>) -> (String, u16) {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let issuer = format!("http://127.0.0.1:{port}");
    let discovery = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    })
    .to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (huge, discovery) = (huge_document.load(Ordering::SeqCst), discovery.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap_or_default();
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 2 {
                    line.clear();
                }
                let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
                let head = |length: Option<usize>| {
                    let length = length
                        .map(|n| format!("content-length: {n}\r\n"))
                        .unwrap_or_default();
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{length}connection: close\r\n\r\n"
                    )
                };
                if path.ends_with("/.well-known/openid-configuration") && !huge {
                    let _ = stream.write_all(head(Some(discovery.len())).as_bytes());
                    let _ = stream.write_all(discovery.as_bytes());
                    return;
                }
                let filler = [b' '; 64 * 1024];
                if path.ends_with("/.well-known/openid-configuration") {
                    let size = 4 * 1024 * 1024;
                    let _ = stream.write_all(head(Some(size)).as_bytes());
                    for _ in 0..size / filler.len() {
                        if stream.write_all(&filler).is_err() {
                            return;
                        }
                    }
                    return;
                }
                // The key set: `{"keys": [` and blanks for ever (until the host hangs up).
                let _ = stream.write_all(head(None).as_bytes());
                let _ = stream.write_all(b"{\"keys\": [");
                while stream.write_all(&filler).is_ok() {}
            });
        }
    });
    (issuer, port)
}

/// A provider whose discovery document or key set is past the cap: the sign-in answers a
/// clear 502 page naming the cap and the URL, at once (not at the timeout), and the server
/// lives on.
#[test]
fn a_providers_oversized_replies_are_refused_at_the_cap() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let huge = Arc::new(AtomicBool::new(true));
    let (issuer, _) = oversized_provider(huge.clone());
    let sandbox = Sandbox::new();
    sandbox.add_plugin("asks");
    let port = free_port();
    sandbox.write("host.toml", config(&issuer, port));
    let server = Server::start_on(&sandbox, &ENV, port);
    let login = server.url("/ui/login");
    for (what, url) in [
        (
            "discovery",
            format!("{issuer}/.well-known/openid-configuration"),
        ),
        ("key set", format!("{issuer}/jwks")),
    ] {
        let started = Instant::now();
        let answer = Client::default().get(&login);
        assert_eq!(answer.status, 502, "{what}: {}", answer.body);
        assert!(
            answer.body.contains("larger than 1048576 bytes") && answer.body.contains(&url),
            "{what}: {}",
            answer.body
        );
        // The timeout is 10 s; the cap stops the endless key set well before it.
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{what}: {:?}",
            started.elapsed()
        );
        huge.store(false, Ordering::SeqCst);
    }
    assert_eq!(server.get("/healthz").status, 200);
    assert!(server.log(&sandbox).contains("the cap on its replies"));
}
