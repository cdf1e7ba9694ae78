//! The console (`/ui` of `host serve`) in a real headless Chromium over WebDriver, against one
//! real `host serve`: a run started from the form shows its steps live without a reload, the
//! runs page links to it, an alert label made of HTML stays text and runs nothing, the forms
//! refuse a request without CSRF token or without `[ui]` auth, the report renders and its
//! download is `host runs report`'s Markdown; a run started from the form is recorded as
//! trigger `console` by its user; waiting runs say what they wait for and the navigation
//! counts the questions waiting; at 1400 px no table breaks a word and on a phone no text
//! overlaps; each status has its own colour, legible. Screenshots of each page go to docs/.

use std::path::PathBuf;
use std::time::Duration;

use runbook_tests::Sandbox;
use runbook_tests::browser::Browser;
use runbook_tests::server::{Server, csrf_of};
use runbook_tests::sinks::{Api, Receiver, Reply};

/// The layout at 1400 px and on a phone, the colours of the statuses.
#[path = "console/layout.rs"]
mod layout;

const UI_PASSWORD: &str = "console-pa55word";
const RUN_TOKEN: &str = "console-run-token-0123456789";
const WEB01_TOKEN: &str = "console-web01-token-0123456789";
const XSS: &str = "<img src=x onerror=alert(1)>";

fn docs(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(name)
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

struct Console {
    sandbox: Sandbox,
    /// The `pager` channel's webhook receiver.
    pager: Receiver,
    server: Server,
    browser: Browser,
    /// Plain HTTP, redirects not followed: to see the console's own status codes.
    http: ureq::Agent,
}

impl Console {
    fn start() -> Console {
        let sandbox = Sandbox::new();
        sandbox.add_plugin("hostile");
        sandbox.add_plugin("asks");
        let pager = Receiver::start(Api::Webhook);
        sandbox.write(
            "host.toml",
            "plugin-dirs = [\"plugins\"]\n\
             [server]\npublic-url = \"https://console.example/\"\n\
             [notify.ops]\nkind = \"file\"\npath = \"ops.jsonl\"\n\
             [plugins.hostile.grants]\nnotify = [\"ops\", \"pager\"]\n\
             [webhooks.api]\nauth = { kind = \"none\" }\n\
             [webhooks.alertmanager]\nauth = { kind = \"none\" }\n\
             [webhooks.run]\nauth = { kind = \"bearer\", token = { env = \"RUN_TOKEN\" } }\n\
             [approvers.oncall]\nusers = [\"oncall\"]\n\
             [plugins.asks.grants]\napproval = [\"oncall\"]\n\
             [fleet.nodes.web01]\ntoken = { env = \"WEB01_TOKEN\" }\n\
             [ui]\nauth = { kind = \"basic\", username = \"oncall\", password = { env = \"UI_PASSWORD\" } }\n\
             [[route]]\nmatchers = ['alertname=\"ConsoleXss\"']\nplaybook = \"hostile\"\n\
             params = { case = \"console-steps\", target = \"10\" }\n"
                .to_string()
                + &format!(
                    "[notify.pager]\nkind = \"webhook\"\nurl = \"{}\"\n",
                    pager.url("/in")
                ),
        );
        let server = Server::start(
            &sandbox,
            &[
                ("UI_PASSWORD", UI_PASSWORD),
                ("RUN_TOKEN", RUN_TOKEN),
                ("WEB01_TOKEN", WEB01_TOKEN),
            ],
        );
        let http = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        Console {
            sandbox,
            pager,
            server,
            browser: Browser::start(1400, 900),
            http,
        }
    }

    fn page(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// The URL with the `[ui]` credentials in it, as a browser is given them.
    fn page_as_oncall(&self, path: &str) -> String {
        format!(
            "http://oncall:{UI_PASSWORD}@127.0.0.1:{}{path}",
            self.server.port
        )
    }

    fn run_count(&self) -> usize {
        let reply = self.server.get("/runs?limit=1000");
        reply.json().as_array().expect("a list").len()
    }

    /// A console page over plain HTTP (the read API needs no credentials here).
    fn get_page(&self, path: &str) -> String {
        let response = self.http.get(self.page(path)).call().unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.into_body().read_to_string().unwrap()
    }

    /// (status, body) of a form POST.
    fn post_form(&self, path: &str, authorization: Option<&str>, body: &str) -> (u16, String) {
        let mut request = self
            .http
            .post(self.page(path))
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(auth) = authorization {
            request = request.header("authorization", auth);
        }
        let response = request.send(body).expect("an answer");
        let status = response.status().as_u16();
        (status, response.into_body().read_to_string().unwrap())
    }
}

#[test]
fn the_console_in_a_real_browser() {
    let console = Console::start();
    let run_id = a_run_started_from_the_form_shows_its_steps_live(&console);
    the_form_records_trigger_console_and_the_user(&console, &run_id);
    the_runs_page_links_to_the_run(&console, &run_id);
    let question = waiting_runs_say_what_they_wait_for_and_the_badge_counts(&console);
    the_report_renders_and_downloads_as_host_runs_report(&console, &run_id);
    an_alert_label_made_of_html_is_text_and_runs_nothing(&console);
    the_forms_refuse_requests_without_csrf_token_or_auth(&console);
    every_page_has_a_strict_csp_and_the_script_is_served_by_hash(&console);
    a_failed_message_is_retried_from_the_outbox(&console);
    layout::at_1400_px_no_word_breaks_and_each_status_has_its_colour(&console, &run_id, &question);
    layout::on_a_phone_nothing_overlaps(&console, &run_id);
    playbooks_outbox_and_a_phone_in_dark_mode(&console, &run_id);
}

fn a_run_started_from_the_form_shows_its_steps_live(c: &Console) -> String {
    let b = &c.browser;
    b.goto(&c.page_as_oncall("/ui/playbooks/hostile/run"));
    b.wait_for("the run form", Duration::from_secs(20), |b| {
        b.count("#run-form") == 1
    });
    assert_eq!(
        b.eval("return document.getElementById('dry-run').checked"),
        true,
        "dry run is ticked by default"
    );
    b.screenshot(&docs("console-run-form.png"));
    b.fill("#param-case", "console-steps");
    b.fill("#param-target", "1500");
    b.click("#start");
    b.wait_for("the new run's page", Duration::from_secs(20), |b| {
        b.current_url().contains("/ui/runs/") && b.count("#timeline") == 1
    });
    let run_id = b
        .current_url()
        .rsplit('/')
        .next()
        .expect("a run id")
        .to_string();
    assert!(b.count("#live") == 1, "the run is live when its page opens");
    // A mark in the page: a reload would wipe it.
    b.eval("window.notReloaded = true; return true");
    b.wait_for("the second step, live", Duration::from_secs(20), |b| {
        b.text("#timeline").contains("act done")
    });
    assert_eq!(
        b.eval("return window.notReloaded === true"),
        true,
        "the step arrived without reloading the page"
    );
    assert!(b.count("#timeline li") >= 4);
    b.screenshot(&docs("console-run-live.png"));
    // At the end the page reloads itself once to show the outcome.
    b.wait_for("the outcome", Duration::from_secs(30), |b| {
        b.text("#summary").contains("three steps done")
    });
    assert_eq!(b.text("h1 .status"), "resolved");
    let timeline = b.text("#timeline");
    for step in ["look done", "act done", "verify done"] {
        assert!(timeline.contains(step), "{timeline}");
    }
    let page = b.text("main");
    assert!(page.contains("evidence.txt"), "{page}");
    assert!(
        page.contains("dry run\nyes") || page.contains("dry run yes"),
        "{page}"
    );
    b.screenshot(&docs("console-run.png"));
    // The run's steps and calls as a Gantt chart: a bar each, in order.
    assert!(
        b.count("#run-timeline rect") >= 3,
        "{}",
        b.text("#run-timeline")
    );
    assert!(b.text("#run-timeline").contains("look"));

    // The artifact as text: its HTML is not rendered.
    b.goto(&c.page(&format!("/ui/runs/{run_id}/artifacts/0")));
    b.wait_for("the artifact", Duration::from_secs(10), |b| {
        b.text("body").contains("<b>not bold</b>")
    });
    assert_eq!(b.count("b"), 0);
    run_id
}

fn the_runs_page_links_to_the_run(c: &Console, run_id: &str) {
    let b = &c.browser;
    // /ui is the dashboard; it links to the runs table.
    b.goto(&c.page("/ui"));
    b.wait_for("the dashboard", Duration::from_secs(10), |b| {
        b.count("figure.chart svg[role=img]") == 4
    });
    b.click("p.spans a[href='/ui/runs']");
    b.wait_for("the runs table", Duration::from_secs(10), |b| {
        b.count("#runs tr.run") >= 1
    });
    assert!(b.text("#runs").contains("three steps done"));
    b.click(&format!("a.run-link[href='/ui/runs/{run_id}']"));
    b.wait_for("the run's timeline", Duration::from_secs(10), |b| {
        b.text("#timeline").contains("verify done")
    });
    // Filters narrow the list: no run has failed.
    b.goto(&c.page("/ui/runs?status=failed"));
    b.wait_for("the filtered page", Duration::from_secs(10), |b| {
        b.text("main").contains("No runs.")
    });
}

fn the_report_renders_and_downloads_as_host_runs_report(c: &Console, run_id: &str) {
    let b = &c.browser;
    b.goto(&c.page(&format!("/ui/runs/{run_id}/report")));
    b.wait_for("the report's headings", Duration::from_secs(10), |b| {
        b.count("article.report h1") == 1 && b.count("article.report h2") >= 2
    });
    // The incident's times from detection, as a table in the report and a chart above it.
    assert_eq!(b.count("#incident-times svg"), 1);
    assert!(b.text("article.report").contains("Incident times"));
    b.screenshot(&docs("console-report.png"));
    let download = c
        .http
        .get(c.page(&format!("/ui/runs/{run_id}/report.md")))
        .call()
        .unwrap();
    assert_eq!(download.status(), 200);
    let disposition = download.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    let markdown = download.into_body().read_to_string().unwrap();
    let cli = c.sandbox.host(&["runs", "report", run_id]);
    assert_eq!(cli.code, 0, "{}", cli.stderr);
    assert_eq!(markdown, cli.stdout);
}

fn an_alert_label_made_of_html_is_text_and_runs_nothing(c: &Console) {
    let payload = serde_json::json!({
        "version": "4", "status": "firing", "receiver": "host",
        "groupLabels": {}, "commonLabels": {},
        "alerts": [{
            "status": "firing",
            "labels": { "alertname": "ConsoleXss", "evil": XSS },
            "annotations": { "summary": XSS },
            "startsAt": "2026-11-25T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "console-xss",
        }],
    });
    let reply = c
        .server
        .post("/hooks/alertmanager", &[], payload.to_string().as_bytes());
    assert_eq!(reply.status, 202, "{}", reply.body);
    let run_id = reply.json()["runs"][0].as_str().unwrap().to_string();
    c.server
        .wait_for_status(&run_id, "resolved", Duration::from_secs(30));
    // Its notification (not a dry run) links to its page ([server] public-url).
    let ops = std::fs::read_to_string(c.sandbox.path().join("ops.jsonl")).unwrap();
    let message: serde_json::Value = serde_json::from_str(ops.lines().next().unwrap()).unwrap();
    assert_eq!(message["run_id"], run_id.as_str());
    assert_eq!(
        message["run_url"],
        format!("https://console.example/ui/runs/{run_id}")
    );

    let b = &c.browser;
    b.goto(&c.page("/ui/alerts"));
    b.wait_for("the alert", Duration::from_secs(10), |b| {
        b.text("#alerts").contains(XSS)
    });
    assert_eq!(b.count("img"), 0, "the label became an element");
    assert_eq!(b.alert_text(), None, "a script ran");
    b.screenshot(&docs("console-alerts.png"));

    b.goto(&c.page(&format!("/ui/runs/{run_id}")));
    b.wait_for("the run's labels", Duration::from_secs(10), |b| {
        b.text("#labels").contains(XSS)
    });
    assert_eq!(b.count("img"), 0);
    assert_eq!(b.alert_text(), None);
}

fn the_forms_refuse_requests_without_csrf_token_or_auth(c: &Console) {
    let oncall = basic("oncall", UI_PASSWORD);
    let form = "/ui/playbooks/hostile/run";
    // The form itself is behind [ui] auth, and asks a browser for it.
    let anonymous = c.http.get(c.page(form)).call().unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(
        anonymous.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let page = c
        .http
        .get(c.page(form))
        .header("authorization", &oncall)
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    let token = csrf_of(&page);
    let before = c.run_count();
    let params = "param%3Acase=console-steps&param%3Atarget=10&dry_run=1";

    let (status, body) = c.post_form(form, Some(&oncall), params);
    assert_eq!(status, 403, "no CSRF token: {body}");
    let (status, _) = c.post_form(
        form,
        Some(&oncall),
        &format!("{params}&csrf={}", "0".repeat(64)),
    );
    assert_eq!(status, 403, "a forged CSRF token");
    let (status, _) = c.post_form(form, None, &format!("{params}&csrf={token}"));
    assert_eq!(status, 401, "no [ui] auth");
    let (status, _) = c.post_form(
        form,
        Some(&basic("oncall", "wrong")),
        &format!("{params}&csrf={token}"),
    );
    assert_eq!(status, 401, "wrong [ui] password");
    // The read API's credentials are not the console's.
    let (status, _) = c.post_form(
        form,
        Some(&format!("Bearer {}", runbook_tests::server::API_TOKEN)),
        &format!("{params}&csrf={token}"),
    );
    assert_eq!(status, 401);
    assert_eq!(c.run_count(), before, "a refused form started a run");

    let response = c
        .http
        .post(c.page(form))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", &oncall)
        .send(format!("{params}&csrf={token}").as_str())
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(c.run_count(), before + 1);
    // Three steps 10 ms apart: its time reads in milliseconds, not "0.0 s".
    let fast = response.headers()["location"]
        .to_str()
        .unwrap()
        .trim_start_matches("/ui/runs/")
        .to_string();
    c.server.wait_for_run(&fast, Duration::from_secs(30));
    let page = c.get_page(&format!("/ui/runs/{fast}"));
    let took = between(&page, "id=\"took\">", "<");
    let ms = took.strip_suffix(" ms").map(str::parse::<u32>);
    assert!(matches!(ms, Some(Ok(n)) if n < 1000), "took {took:?}");

    // The retry form too.
    let (status, _) = c.post_form("/ui/outbox/1/retry", Some(&oncall), "");
    assert_eq!(status, 403);
    let (status, _) = c.post_form("/ui/outbox/1/retry", None, &format!("csrf={token}"));
    assert_eq!(status, 401);
}

fn every_page_has_a_strict_csp_and_the_script_is_served_by_hash(c: &Console) {
    let page = c.http.get(c.page("/ui/runs")).call().unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = page.into_body().read_to_string().unwrap();
    assert!(!html.contains("<script>"), "no inline script");
    let script = html
        .split("script src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the script's path");
    assert!(script.starts_with("/ui/static/console-") && script.ends_with(".js"));
    let served = c.http.get(c.page(script)).call().unwrap();
    assert_eq!(served.status(), 200);
    assert!(
        served.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    let missing = c
        .http
        .get(c.page("/ui/static/console-0.js"))
        .call()
        .unwrap();
    assert_eq!(missing.status(), 404);
}

fn playbooks_outbox_and_a_phone_in_dark_mode(c: &Console, run_id: &str) {
    let b = &c.browser;
    b.goto(&c.page("/ui/playbooks"));
    b.wait_for("the playbooks", Duration::from_secs(20), |b| {
        b.text("main").contains("Misbehaves on purpose")
    });
    assert!(b.count("a.run-form") >= 1);
    b.screenshot(&docs("console-playbooks.png"));

    b.window_size(390, 844);
    b.color_scheme("dark");
    b.goto(&c.page(&format!("/ui/runs/{run_id}")));
    b.wait_for("the run on a phone", Duration::from_secs(10), |b| {
        b.text("#timeline").contains("verify done")
    });
    assert_eq!(
        b.eval("return getComputedStyle(document.body).backgroundColor"),
        "rgb(13, 17, 23)"
    );
    // Nothing wider than the phone's screen.
    let wider = b.eval(
        "return [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
            .map(e => e.tagName + '.' + e.className)",
    );
    assert_eq!(wider, serde_json::json!([]), "wider than the phone");
    b.screenshot(&docs("console-run-phone-dark.png"));
}

fn a_failed_message_is_retried_from_the_outbox(c: &Console) {
    // The pager refuses the first message for good (400): it is failed, not retried.
    c.pager
        .script([Reply::new(400, r#"{"error":"bad request"}"#)]);
    let b = &c.browser;
    b.goto(&c.page_as_oncall("/ui/playbooks/hostile/run"));
    b.wait_for("the run form", Duration::from_secs(10), |b| {
        b.count("#run-form") == 1
    });
    b.fill("#param-case", "notify");
    b.fill("#param-target", "pager");
    b.click("#dry-run");
    b.click("#start");
    b.wait_for("the run's outcome", Duration::from_secs(30), |b| {
        b.count("h1 .status") == 1
            && b.count("#live") == 0
            && b.text("#summary").contains("ESCAPED")
    });
    b.goto(&c.page("/ui/outbox?state=failed"));
    b.wait_for("the failed message", Duration::from_secs(30), |b| {
        b.count("a.retry") == 1 || {
            b.goto(&c.page("/ui/outbox?state=failed"));
            false
        }
    });
    assert!(b.text("#outbox").contains("400"), "{}", b.text("#outbox"));
    b.screenshot(&docs("console-outbox.png"));
    let retry = b.eval("return document.querySelector('a.retry').getAttribute('href')");
    b.goto(&c.page_as_oncall(retry.as_str().unwrap()));
    b.wait_for("the retry form", Duration::from_secs(10), |b| {
        b.count("#retry-form") == 1
    });
    b.click("#retry");
    let delivered = c.pager.wait_accepted(1, Duration::from_secs(30));
    assert_eq!(delivered[0].json()["title"], "hostile");
    b.goto(&c.page("/ui/outbox?state=delivered"));
    b.wait_for("the message delivered", Duration::from_secs(10), |b| {
        b.text("#outbox").contains("delivered")
    });
}

/// The text between the first `start` and the next `end` after it.
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} in {text}"))
        + start.len();
    let to = text[from..].find(end).expect("an end") + from;
    &text[from..to]
}

fn the_form_records_trigger_console_and_the_user(c: &Console, run_id: &str) {
    let run = c.server.get(&format!("/runs/{run_id}")).json();
    assert_eq!(run["trigger"], "console", "{run:#}");
    assert_eq!(run["by"], "oncall", "{run:#}");
    let page = c.get_page(&format!("/ui/runs/{run_id}"));
    assert!(
        page.contains("started by oncall from the console"),
        "{page}"
    );
    // Three steps 1.5 s apart: seconds with one decimal.
    let took = between(&page, "id=\"took\">", "<");
    let secs = took.strip_suffix(" s").map(str::parse::<f64>);
    assert!(
        matches!(secs, Some(Ok(s)) if (4.0..60.0).contains(&s)),
        "took {took:?}"
    );
    // A run from elsewhere is not "by" anyone.
    let runs = c.server.get("/runs?limit=1000").json();
    assert!(
        runs.as_array()
            .unwrap()
            .iter()
            .all(|r| r["trigger"] == "console" || r.get("by").is_none()),
        "{runs:#}"
    );
}

/// Starts a run that waits for oncall's answer and one queued for a node no agent serves;
/// returns the pending question's id.
fn waiting_runs_say_what_they_wait_for_and_the_badge_counts(c: &Console) -> String {
    // Nothing waits yet: no badge.
    let page = c.get_page("/ui/runs");
    assert!(!page.contains("pending-count"), "{page}");

    let asking = c.server.submit_run(
        "/hooks/run/asks",
        RUN_TOKEN,
        br#"{"title": "Restart web-1?", "timeout": "900"}"#,
    );
    let queued = c.server.submit_run(
        "/hooks/run/hostile?node=web01",
        RUN_TOKEN,
        br#"{"case": "console-steps", "target": "1"}"#,
    );
    c.server
        .wait_for_status(&asking, "waiting-approval", Duration::from_secs(30));
    let question = c.server.get(&format!("/approvals?run={asking}")).json()[0]["id"]
        .as_str()
        .expect("a pending question")
        .to_string();

    let page = c.get_page("/ui/runs");
    let row = |id: &str| {
        let at = page
            .find(&format!("href=\"/ui/runs/{id}\""))
            .unwrap_or_else(|| panic!("no row for {id}: {page}"));
        let end = page[at..].find("</tr>").unwrap() + at;
        page[at..end].to_string()
    };
    let asking_row = row(&asking);
    assert!(
        asking_row.contains("waiting for approval from oncall"),
        "{asking_row}"
    );
    let queued_row = row(&queued);
    assert!(
        queued_row.contains("waiting for agent web01"),
        "{queued_row}"
    );
    assert!(queued_row.contains("queued for "), "{queued_row}");
    assert!(!queued_row.contains("running for"), "{queued_row}");
    // The navigation counts the question, on every page, and links to the approvals.
    for path in ["/ui/runs", "/ui/alerts", "/ui/outbox"] {
        let page = c.get_page(path);
        let badge = between(&page, "<a href=\"/ui/approvals\">", "</a>");
        assert!(
            badge.contains("id=\"pending-count\"") && badge.ends_with(">1</span>"),
            "{path}: {badge}"
        );
    }
    let run_page = c.get_page(&format!("/ui/runs/{queued}"));
    assert!(
        between(&run_page, "id=\"summary\">", "</p>").contains("waiting for agent web01"),
        "{run_page}"
    );
    assert!(
        between(&run_page, "id=\"took\">", "<").starts_with("queued for "),
        "{run_page}"
    );
    let run_page = c.get_page(&format!("/ui/runs/{asking}"));
    assert!(
        between(&run_page, "id=\"summary\">", "</p>").contains("waiting for approval from oncall"),
        "{run_page}"
    );
    question
}
