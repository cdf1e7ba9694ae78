//! Answering questions in the console, over plain HTTP against a real `host serve`: a run's
//! page shows its questions (escaped), `/ui/approvals` lists the waiting ones, and the
//! Approve / Reject forms answer as `console:<[ui] user>` only with the `[ui]` credentials and
//! the CSRF token of that question's form (good on every replica of the store); someone not on
//! the group's list changes nothing; a closed question is 409. Every console route asks a
//! browser without credentials to sign in, and `[ui]` alone opens the console.

use std::time::{Duration, Instant};

use runbook_tests::Sandbox;
use runbook_tests::server::{Server, csrf_of};
use serde_json::Value;

const UI_PASSWORD: &str = "console-approvals-password";
const RUN_TOKEN: &str = "console-approvals-run-token";
const WAIT: Duration = Duration::from_secs(60);

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

struct Console {
    sandbox: Sandbox,
    server: Server,
    /// Plain HTTP, redirects not followed: to see the console's own status codes.
    http: ureq::Agent,
}

const ENV: [(&str, &str); 2] = [("UI_PASSWORD", UI_PASSWORD), ("RUN_TOKEN", RUN_TOKEN)];

/// Only `[ui]` (and the run hook the tests ask through): no `[webhooks.api]`.
const ONLY_UI: &str = r#"plugin-dirs = ["plugins"]
[webhooks.run]
auth = { kind = "bearer", token = { env = "RUN_TOKEN" } }
[ui]
auth = { kind = "basic", username = "oncall", password = { env = "UI_PASSWORD" } }

[approvers.oncall]
users = ["oncall"]

[approvers.others]
users = ["someone-else"]

[plugins.asks.grants]
approval = ["oncall", "others"]
"#;

impl Console {
    fn start() -> Console {
        Self::start_with(
            &format!("{ONLY_UI}\n[webhooks.api]\nauth = {{ kind = \"none\" }}\n"),
            true,
        )
    }

    /// With `config` as host.toml; `api_token`: the harness adds its bearer `[webhooks.api]`
    /// when the config has none.
    fn start_with(config: &str, api_token: bool) -> Console {
        let sandbox = Sandbox::new();
        sandbox.add_plugin("asks");
        sandbox.write("host.toml", config);
        let server = if api_token {
            Server::start(&sandbox, &ENV)
        } else {
            Server::start_as_configured(&sandbox, &ENV)
        };
        // A fresh connection per request: the server may close one after refusing a POST
        // before reading its body (401/403), and a pooled connection reused at that moment
        // failed once under load with "Peer disconnected".
        let http = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_idle_connections(0)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        Console {
            sandbox,
            server,
            http,
        }
    }

    /// (status, WWW-Authenticate) of a request, its body left unread (a live stream).
    fn head(&self, method: &str, path: &str, authorization: Option<&str>) -> (u16, String) {
        let url = self.server.url(path);
        let mut request = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(auth) = authorization {
            request = request.header("authorization", auth);
        }
        if method == "POST" {
            request = request.header("content-type", "application/x-www-form-urlencoded");
        }
        let response = self
            .http
            .run(request.body(Vec::<u8>::new()).unwrap())
            .expect("an answer");
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (response.status().as_u16(), challenge)
    }

    fn ask(&self, params: Value) -> String {
        self.server
            .submit_run("/hooks/run/asks", RUN_TOKEN, params.to_string().as_bytes())
    }

    /// The run's question once it is pending.
    fn pending_question(&self, run: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let asked = self.server.get(&format!("/approvals?run={run}")).json();
            if let Some(q) = asked.as_array().and_then(|a| a.first()) {
                return q.clone();
            }
            assert!(Instant::now() < deadline, "run {run} asked nothing");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn question(&self, run: &str) -> Value {
        self.server.get(&format!("/approvals?run={run}")).json()[0].clone()
    }

    fn get(&self, path: &str, authorization: Option<&str>) -> (u16, String) {
        let mut request = self.http.get(self.server.url(path));
        if let Some(auth) = authorization {
            request = request.header("authorization", auth);
        }
        let response = request.call().expect("an answer");
        let status = response.status().as_u16();
        (status, response.into_body().read_to_string().unwrap())
    }

    fn post_form(&self, path: &str, authorization: Option<&str>, body: &str) -> (u16, String) {
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

/// `text` percent-encoded as a form value.
fn form_value(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn questions_are_shown_and_answered_in_the_console() {
    let c = Console::start();
    let oncall = basic("oncall", UI_PASSWORD);

    // A question whose title is HTML: shown as text everywhere.
    let run = c.ask(serde_json::json!({ "title": "<script>alert(1)</script> Restart web-1?" }));
    let q = c.pending_question(&run);
    let id = q["id"].as_str().unwrap().to_string();
    let form = format!("/ui/approvals/{id}");

    let (status, page) = c.get(&format!("/ui/runs/{run}"), None);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Questions"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt; Restart web-1?"),
        "{page}"
    );
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(
        page.contains("restart web-1"),
        "the proposed action: {page}"
    );
    assert!(page.contains(&form), "a link to answer: {page}");
    assert!(
        !page.contains("name=\"csrf\""),
        "no form without [ui] credentials: {page}"
    );
    // With the [ui] credentials the run's page carries the Approve / Reject forms itself.
    let (_, page) = c.get(&format!("/ui/runs/{run}"), Some(&oncall));
    assert!(page.contains(&format!("action=\"{form}\"")), "{page}");
    assert!(
        page.contains("class=\"approve\" type=\"submit\">Approve<")
            && page.contains("class=\"reject\" type=\"submit\">Reject<"),
        "{page}"
    );

    let (status, list) = c.get("/ui/approvals", None);
    assert_eq!(status, 200);
    assert!(
        list.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{list}"
    );
    assert!(list.contains(&run) && list.contains(&form), "{list}");

    // The form is behind [ui] auth; submissions need it and the token bound to it.
    let (status, _) = c.get(&form, None);
    assert_eq!(status, 401);
    let (status, page) = c.get(&form, Some(&oncall));
    assert_eq!(status, 200, "{page}");
    let token = csrf_of(&page);
    let approve = format!("decision=approve&csrf={token}");
    assert_eq!(c.post_form(&form, None, &approve).0, 401, "no [ui] auth");
    assert_eq!(
        c.post_form(&form, Some(&basic("oncall", "wrong")), &approve)
            .0,
        401,
        "wrong password"
    );
    assert_eq!(
        c.post_form(&form, Some(&oncall), "decision=approve").0,
        403,
        "no CSRF token"
    );
    assert_eq!(
        c.post_form(
            &form,
            Some(&oncall),
            &format!("decision=approve&csrf={}", "0".repeat(64))
        )
        .0,
        403,
        "a forged CSRF token"
    );
    assert_eq!(
        c.question(&run)["state"],
        "pending",
        "a refused form answered"
    );

    let (status, body) = c.post_form(&form, Some(&oncall), &approve);
    assert_eq!(status, 303, "{body}");
    let done = c.server.wait_for_run(&run, WAIT);
    assert_eq!(done["status"], "resolved", "{done:#}");
    assert_eq!(done["summary"], "approved by console:oncall", "{done:#}");
    let q = c.question(&run);
    assert_eq!(
        (&q["state"], &q["answered_by"], &q["answered_via"]),
        (
            &Value::from("approved"),
            &Value::from("console:oncall"),
            &Value::from("console")
        ),
        "{q:#}"
    );
    assert!(q["answered_at"].is_string(), "{q:#}");
    // Answered: the page says who, and offers no buttons.
    let (_, page) = c.get(&format!("/ui/runs/{run}"), Some(&oncall));
    assert!(page.contains("console:oncall via console"), "{page}");
    assert!(!page.contains(">Approve<"), "{page}");
    // A second answer changes nothing.
    let (status, body) = c.post_form(
        &form,
        Some(&oncall),
        &format!("decision=reject&reason=late&csrf={token}"),
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(c.question(&run)["state"], "approved");

    // Rejected with a reason made of HTML: the playbook gets it, the page shows it as text.
    let run = c.ask(serde_json::json!({ "title": "Pause db-1?" }));
    let id = c.pending_question(&run)["id"].as_str().unwrap().to_string();
    let reason = "<b>not</b> during the sale";
    // A token is good for its own question's form only.
    let (status, _) = c.post_form(
        &format!("/ui/approvals/{id}"),
        Some(&oncall),
        &format!("decision=reject&reason=x&csrf={token}"),
    );
    assert_eq!(status, 403, "the first question's token on the second");
    let (_, page) = c.get(&format!("/ui/approvals/{id}"), Some(&oncall));
    let token = csrf_of(&page);
    let (status, body) = c.post_form(
        &format!("/ui/approvals/{id}"),
        Some(&oncall),
        &format!("decision=reject&reason={}&csrf={token}", form_value(reason)),
    );
    assert_eq!(status, 303, "{body}");
    let done = c.server.wait_for_run(&run, WAIT);
    assert_eq!(done["status"], "no-action", "{done:#}");
    assert_eq!(
        done["summary"],
        format!("rejected by console:oncall: {reason}"),
        "{done:#}"
    );
    let (_, page) = c.get(&format!("/ui/runs/{run}"), None);
    assert!(
        page.contains("&lt;b&gt;not&lt;/b&gt; during the sale"),
        "{page}"
    );
    assert!(!page.contains("<b>not</b>"), "{page}");
    // Nothing done because a person said no: calm, not the amber of an escalation.
    let heading = &page[page.find("<h1>").unwrap()..page.find("</h1>").unwrap()];
    assert!(
        heading.contains("class=\"status t-calm\">no-action<"),
        "{heading}"
    );

    // A group the console user is not in: refused, still pending, then it expires.
    let run = c.ask(serde_json::json!({ "group": "others", "timeout": "3" }));
    let id = c.pending_question(&run)["id"].as_str().unwrap().to_string();
    let (_, page) = c.get(&format!("/ui/approvals/{id}"), Some(&oncall));
    let approve = format!("decision=approve&csrf={}", csrf_of(&page));
    let (status, body) = c.post_form(&format!("/ui/approvals/{id}"), Some(&oncall), &approve);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not on the approvers list"), "{body}");
    let done = c.server.wait_for_run(&run, WAIT);
    assert_eq!(done["status"], "escalated", "{done:#}");
    assert_eq!(c.question(&run)["state"], "expired");
    let (_, page) = c.get(&format!("/ui/runs/{run}"), None);
    let heading = &page[page.find("<h1>").unwrap()..page.find("</h1>").unwrap()];
    assert!(
        heading.contains("class=\"status t-warn\">escalated<"),
        "{heading}"
    );

    let (_, list) = c.get("/ui/approvals", None);
    assert!(list.contains("No question is waiting"), "{list}");
}

#[test]
fn every_console_route_asks_a_browser_to_sign_in_and_ui_alone_opens_it() {
    // Only [ui]: before, every page answered 401 (reading needed [webhooks.api]).
    let c = Console::start_with(ONLY_UI, false);
    let oncall = basic("oncall", UI_PASSWORD);
    let run = c.ask(serde_json::json!({ "title": "Signed in?", "timeout": "120" }));
    // No read API here: the question as `host approvals` lists it.
    let deadline = Instant::now() + WAIT;
    let id = loop {
        let pending = c.sandbox.host_env(&["approvals", "--json"], &ENV).json();
        if let Some(q) = pending
            .as_array()
            .and_then(|a| a.iter().find(|q| q["run_id"] == run.as_str()))
        {
            break q["id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "run {run} asked nothing");
        std::thread::sleep(Duration::from_millis(100));
    };
    let pages = [
        "/ui".to_string(),
        "/ui/".into(),
        "/ui/runs".into(),
        format!("/ui/runs/{run}"),
        format!("/ui/runs/{run}/report"),
        format!("/ui/runs/{run}/report.md"),
        "/ui/alerts".into(),
        "/ui/playbooks".into(),
        "/ui/playbooks/asks/run".into(),
        "/ui/approvals".into(),
        format!("/ui/approvals/{id}"),
        "/ui/outbox".into(),
    ];
    // Routes whose answer with the right password is not a page (a stream, a missing row).
    let others = [
        ("GET", format!("/ui/runs/{run}/events")),
        ("GET", format!("/ui/runs/{run}/artifacts/0")),
        ("GET", "/ui/outbox/1/retry".to_string()),
        ("POST", "/ui/playbooks/asks/run".to_string()),
        ("POST", format!("/ui/approvals/{id}")),
        ("POST", "/ui/outbox/1/retry".to_string()),
    ];
    let every = pages
        .iter()
        .map(|p| ("GET", p.clone()))
        .chain(others.iter().cloned());
    for (method, path) in every {
        for auth in [
            None,
            Some(basic("oncall", "wrong")),
            Some(basic("mallory", UI_PASSWORD)),
        ] {
            let (status, challenge) = c.head(method, &path, auth.as_deref());
            assert_eq!(status, 401, "{method} {path} as {auth:?}");
            assert!(
                challenge.starts_with("Basic realm=\"runbook console\""),
                "{method} {path}: {challenge:?}"
            );
        }
        let (status, _) = c.head(method, &path, Some(&oncall));
        assert_ne!(status, 401, "{method} {path} with the [ui] password");
    }
    // The right password (positive control): every page.
    for path in &pages {
        let (status, page) = c.get(path, Some(&oncall));
        assert_eq!(status, 200, "{path}: {page}");
    }
    // The link in every chat message is the run page: it prompts, then shows the run.
    assert!(
        c.get(&format!("/ui/runs/{run}"), Some(&oncall))
            .1
            .contains("Signed in?")
    );

    // `host check` agrees: nothing keeps this console closed…
    let check = c.sandbox.host_env(&["check"], &ENV);
    assert!(!check.stderr.contains("console"), "{}", check.stderr);
    // …while the README's bearer read API without [ui] does, and says which section.
    c.sandbox.write(
        "host.toml",
        "plugin-dirs = [\"plugins\"]\n[webhooks.api]\nauth = { kind = \"bearer\", token = { env = \"RUN_TOKEN\" } }\n",
    );
    let check = c.sandbox.host_env(&["check"], &ENV);
    assert!(
        check.stderr.contains(
            "warning: the console (/ui) is closed to browsers: [webhooks.api] uses bearer auth, \
             which a browser cannot send, and there is no [ui] auth; set [ui] auth = "
        ),
        "{}",
        check.stderr
    );
    assert!(!check.stdout.contains("all good"), "{}", check.stdout);
}

#[test]
fn csrf_tokens_are_per_form_and_good_on_every_replica_of_the_store() {
    let c = Console::start();
    // A second `host serve` on the same store (another replica).
    let replica = Server::start(&c.sandbox, &ENV);
    let oncall = basic("oncall", UI_PASSWORD);
    let run = c.ask(serde_json::json!({ "title": "Across replicas?", "timeout": "120" }));
    let id = c.pending_question(&run)["id"].as_str().unwrap().to_string();
    let form = format!("/ui/approvals/{id}");
    let (_, page) = c.get(&form, Some(&oncall));
    let token = csrf_of(&page);
    let (_, page) = c.get("/ui/playbooks/asks/run", Some(&oncall));
    let run_form_token = csrf_of(&page);

    let post = |body: &str| {
        c.http
            .post(replica.url(&form))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", &oncall)
            .send(body)
            .expect("an answer")
            .status()
            .as_u16()
    };
    // The run form's token on the question's form: refused, on either replica.
    assert_eq!(
        post(&format!("decision=approve&csrf={run_form_token}")),
        403
    );
    assert_eq!(
        c.post_form(
            &form,
            Some(&oncall),
            &format!("decision=approve&csrf={run_form_token}")
        )
        .0,
        403
    );
    assert_eq!(c.question(&run)["state"], "pending");
    // The question's own token, served by the first replica, answers on the second.
    assert_eq!(post(&format!("decision=approve&csrf={token}")), 303);
    let done = c.server.wait_for_run(&run, WAIT);
    assert_eq!(done["summary"], "approved by console:oncall", "{done:#}");
}
