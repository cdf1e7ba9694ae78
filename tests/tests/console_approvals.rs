//! Answering questions in the console, over plain HTTP against a real `host serve`: a run's
//! page shows its questions (escaped), `/ui/approvals` lists the waiting ones, and the
//! Approve / Reject forms answer as `console:<[ui] user>` only with the `[ui]` credentials and
//! the CSRF token; someone not on the group's list changes nothing; a closed question is 409.

use std::time::{Duration, Instant};

use runbook_tests::Sandbox;
use runbook_tests::server::Server;
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
    _sandbox: Sandbox,
    server: Server,
    /// Plain HTTP, redirects not followed: to see the console's own status codes.
    http: ureq::Agent,
}

impl Console {
    fn start() -> Console {
        let sandbox = Sandbox::new();
        sandbox.add_plugin("asks");
        sandbox.write(
            "host.toml",
            r#"plugin-dirs = ["plugins"]
[webhooks.api]
auth = { kind = "none" }
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
"#,
        );
        let server = Server::start(
            &sandbox,
            &[("UI_PASSWORD", UI_PASSWORD), ("RUN_TOKEN", RUN_TOKEN)],
        );
        let http = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        Console {
            _sandbox: sandbox,
            server,
            http,
        }
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

fn csrf_of(form_page: &str) -> String {
    let start = form_page
        .find("name=\"csrf\" value=\"")
        .expect("a CSRF field")
        + "name=\"csrf\" value=\"".len();
    form_page[start..start + 64].to_string()
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
