//! Safety rails at admission, end to end over real HTTP (`host serve`, the CLI, a Slack-shaped
//! receiver for ops): an alert storm opens a playbook's circuit breaker, after which its runs
//! are recorded `held` and never executed, and ops is told exactly once; maintenance windows
//! (config, cron and ad hoc from the CLI) record matching alerts and scheduled runs
//! `suppressed` and leave the others alone, and a window's end lets the next alert run.
//! Runs on both stores (scripts/test.sh runs it again with RUNBOOK_TEST_STORE=postgres).

use std::time::{Duration, Instant};

use runbook_tests::Sandbox;
use runbook_tests::server::Server;
use runbook_tests::sinks::{Api, Receiver};
use serde_json::{Value, json};

const TOKEN: &str = "rb-safety-token";
const UI_PASSWORD: &str = "console-password-for-tests";
const FAST: &str = "[notify.ops.delivery]\nretry-base-ms = 50\nmin-interval-ms = 0\n";

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn rfc3339(offset_secs: i64) -> String {
    let now = std::time::SystemTime::now();
    let at = if offset_secs >= 0 {
        now + Duration::from_secs(offset_secs as u64)
    } else {
        now - Duration::from_secs((-offset_secs) as u64)
    };
    humantime::format_rfc3339_seconds(at).to_string()
}

fn start(slack: &Receiver) -> (Sandbox, Server) {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("hostile");
    sandbox.add_plugin("noop");
    sandbox.write(
        "host.toml",
        format!(
            "plugin-dirs = [\"plugins\"]\n\
             [server]\nqueue-limit = 100000\nmax-concurrent-runs = 4\n\
             [notify.ops]\nkind = \"slack\"\nwebhook-url = {{ env = \"SLACK_URL\" }}\n{FAST}\
             [plugins.hostile]\nmax-concurrent = 4\n\
             breaker = {{ failures = 3, within = \"15m\", cool-down = \"30m\" }}\n\
             [plugins.noop]\nmax-concurrent = 4\n\
             [ui]\nauth = {{ kind = \"basic\", username = \"oncall\", password = {{ env = \"UI_PASSWORD\" }} }}\n\
             [webhooks.alertmanager]\nauth = {{ kind = \"bearer\", token = {{ env = \"RB_TOKEN\" }} }}\n\
             [[route]]\nmatchers = ['alertname=\"Flapping\"']\nplaybook = \"hostile\"\n\
             params = {{ case = \"fail-on-purpose\" }}\n\
             [[route]]\nmatchers = ['alertname=\"Noop\"']\nplaybook = \"noop\"\n\
             [[schedule]]\nname = \"tick\"\ncron = \"*/2 * * * * *\"\nplaybook = \"noop\"\n\
             [[maintenance]]\nname = \"db-upgrade\"\nmatchers = ['team=\"db\"']\n\
             start = \"{}\"\nend = \"{}\"\nreason = \"replacing the primary\"\n\
             [[maintenance]]\nname = \"quiet-ticks\"\nmatchers = ['schedule=\"tick\"']\n\
             cron = \"* * * * *\"\nduration = \"2m\"\n",
            rfc3339(-3600),
            rfc3339(3600),
        ),
    );
    let hook = slack.url("/services/T000/B000/XXXX");
    let server = Server::start(
        &sandbox,
        &[
            ("RB_TOKEN", TOKEN),
            ("SLACK_URL", &hook),
            ("UI_PASSWORD", UI_PASSWORD),
        ],
    );
    (sandbox, server)
}

fn alert(name: &str, fingerprint: &str, labels: &[(&str, &str)]) -> Value {
    let mut all = serde_json::Map::new();
    all.insert("alertname".into(), json!(name));
    for (k, v) in labels {
        all.insert((*k).into(), json!(v));
    }
    json!({ "status": "firing", "labels": all, "annotations": {},
            "startsAt": "2026-12-07T03:00:00Z", "fingerprint": fingerprint })
}

/// One Alertmanager delivery of `alerts`: each one's (disposition, run id, detail).
fn deliver(server: &Server, alerts: Vec<Value>) -> Vec<(String, Option<String>, Option<String>)> {
    let body = json!({ "version": "4", "status": "firing", "alerts": alerts });
    let auth = format!("Bearer {TOKEN}");
    let reply = server.post(
        "/hooks/alertmanager",
        &[("Authorization", &auth)],
        body.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    reply.json()["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["disposition"].as_str().unwrap().to_string(),
                a["run_id"].as_str().map(String::from),
                a["detail"].as_str().map(String::from),
            )
        })
        .collect()
}

fn runs(server: &Server, playbook: &str) -> Vec<Value> {
    server
        .get(&format!("/runs?limit=1000&playbook={playbook}"))
        .json()
        .as_array()
        .unwrap()
        .clone()
}

fn count(runs: &[Value], status: &str) -> usize {
    runs.iter().filter(|r| r["status"] == status).count()
}

/// A line of /metrics with these labels (0 when absent).
fn metric(server: &Server, line_start: &str) -> f64 {
    server
        .get("/metrics")
        .body
        .lines()
        .find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn oncall() -> String {
    use base64::Engine as _;
    let pair = format!("oncall:{UI_PASSWORD}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// The CSRF token of the form posting to `action` on a console page.
fn csrf_for(page: &str, action: &str) -> String {
    let form = page
        .find(&format!("action=\"{action}\""))
        .unwrap_or_else(|| panic!("no form posting to {action}: {page}"));
    runbook_tests::server::csrf_of(&page[form..])
}

/// (status, body) of a console form POST with the `[ui]` credentials.
fn post_form(server: &Server, path: &str, body: &str) -> (u16, String) {
    let http = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent();
    let response = http
        .post(server.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", &oncall())
        .send(body)
        .expect("an answer");
    let status = response.status().as_u16();
    (status, response.into_body().read_to_string().unwrap())
}

fn console_page(server: &Server) -> String {
    let page = server.get_authorized("/ui/maintenance", &oncall());
    assert_eq!(page.status, 200, "{}", page.body);
    page.body
}

fn breaker_notices(slack: &Receiver) -> usize {
    slack
        .accepted()
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("Circuit breaker open: hostile"))
        .count()
}

#[test]
fn an_alert_storm_opens_the_breaker_and_windows_suppress_what_they_match() {
    let slack = Receiver::start(Api::Slack);
    let (sandbox, server) = start(&slack);

    // -- Maintenance windows --------------------------------------------------------------
    // A config window (start/end) takes the db team's alerts; the others run.
    let got = deliver(
        &server,
        vec![
            alert("Noop", "db-1", &[("team", "db")]),
            alert("Noop", "web-1", &[("team", "web")]),
        ],
    );
    assert_eq!(got[0].0, "suppressed", "{got:?}");
    assert!(
        got[0].2.as_deref().unwrap().contains("db-upgrade"),
        "{got:?}"
    );
    assert_eq!(got[1].0, "started", "{got:?}");
    let suppressed = server.wait_for_run(got[0].1.as_deref().unwrap(), Duration::from_secs(5));
    assert_eq!(suppressed["status"], "suppressed");
    assert!(
        suppressed["reason"]
            .as_str()
            .unwrap()
            .contains("maintenance window db-upgrade"),
        "{suppressed:#}"
    );
    assert!(suppressed.get("running_since").is_none(), "never executed");
    let ran = server.wait_for_run(got[1].1.as_deref().unwrap(), Duration::from_secs(30));
    assert_eq!(ran["status"], "no-action");
    // A re-send of the suppressed alert is deduplicated like any other.
    let again = deliver(&server, vec![alert("Noop", "db-1", &[("team", "db")])]);
    assert_eq!(again[0].0, "deduplicated", "{again:?}");
    assert_eq!(again[0].1, got[0].1);

    // The cron window (every minute, for two) takes every firing of the `tick` schedule.
    wait_until(
        "a suppressed firing of tick",
        Duration::from_secs(15),
        || {
            runs(&server, "noop")
                .iter()
                .any(|r| r["trigger"] == "schedule" && r["status"] == "suppressed")
        },
    );
    assert!(
        runs(&server, "noop")
            .iter()
            .filter(|r| r["trigger"] == "schedule")
            .all(|r| r["status"] == "suppressed"),
        "a scheduled run ran inside its window"
    );

    // Bad windows from the CLI: exit 2, a clear error, nothing stored.
    for (args, says) in [
        (
            vec!["--for", "2 fortnights", "--match", "instance=\"web01\""],
            "duration",
        ),
        (
            vec!["--for", "2h", "--match", "instance=web01"],
            "expected name=\"value\"",
        ),
        (vec!["--for", "2h"], "at least one matcher or node"),
        (
            vec!["--for", "90d", "--match", "instance=\"web01\""],
            "30 days",
        ),
    ] {
        let mut all = vec!["maintenance", "start"];
        all.extend(args);
        let bad = sandbox.host(&all);
        assert_eq!(bad.code, 2, "{all:?}: {}", bad.stderr);
        assert!(bad.stderr.contains(says), "{all:?}: {}", bad.stderr);
    }
    let long_reason = "x".repeat(600);
    let bad = sandbox.host(&[
        "maintenance",
        "start",
        "--for",
        "1h",
        "--match",
        "instance=\"web01\"",
        "--reason",
        &long_reason,
    ]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    let listed = sandbox.host(&["maintenance", "list", "--json", "--all"]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert_eq!(listed.json(), json!([]), "a refused window was stored");

    // An ad hoc window from the CLI takes web01's alerts (within the server's 1 s cache).
    let started = sandbox.host(&[
        "maintenance",
        "start",
        "--for",
        "2h",
        "--match",
        "instance=\"web01\"",
        "--reason",
        "swapping a disk",
        "--json",
    ]);
    assert_eq!(started.code, 0, "{}", started.stderr);
    let window = started.json();
    let id = window["id"].as_str().unwrap().to_string();
    assert_eq!(window["active"], true);
    let mut n = 0;
    wait_until("web01's alert suppressed", Duration::from_secs(10), || {
        n += 1;
        let got = deliver(
            &server,
            vec![alert(
                "Noop",
                &format!("web01-{n}"),
                &[("instance", "web01")],
            )],
        );
        got[0].0 == "suppressed" && got[0].2.as_deref().unwrap().contains(&id)
    });
    let other = deliver(
        &server,
        vec![alert("Noop", "web02-1", &[("instance", "web02")])],
    );
    assert_eq!(other[0].0, "started", "{other:?}");
    let listed = sandbox.host(&["maintenance", "list"]);
    assert!(
        listed.stdout.contains(&id) && listed.stdout.contains("swapping a disk"),
        "{}",
        listed.stdout
    );
    // Its end lets the next alert run.
    let ended = sandbox.host(&["maintenance", "end", &id]);
    assert_eq!(ended.code, 0, "{}", ended.stderr);
    assert_eq!(sandbox.host(&["maintenance", "end", &id]).code, 1);
    let mut ran = None;
    wait_until(
        "web01's alert to run again",
        Duration::from_secs(10),
        || {
            n += 1;
            let got = deliver(
                &server,
                vec![alert(
                    "Noop",
                    &format!("web01-{n}"),
                    &[("instance", "web01")],
                )],
            );
            ran = got[0].1.clone().filter(|_| got[0].0 == "started");
            ran.is_some()
        },
    );
    let run = server.wait_for_run(&ran.unwrap(), Duration::from_secs(30));
    assert_eq!(run["status"], "no-action");
    assert!(
        metric(
            &server,
            "runbook_alerts_suppressed_total{window=\"db-upgrade\"}"
        ) >= 1.0
    );
    assert!(
        metric(
            &server,
            "runbook_alerts_suppressed_total{window=\"quiet-ticks\"}"
        ) >= 1.0
    );

    // -- The storm ------------------------------------------------------------------------
    // 200 re-fires of a flapping alert, each with its own fingerprint. The first three run and
    // fail (at most two have ended when the third is admitted); then the breaker opens at the next
    // admission and the rest are held.
    let flapping = |i: usize| alert("Flapping", &format!("flap-{i}"), &[("instance", "bot01")]);
    let first = deliver(&server, (0..3).map(flapping).collect());
    assert!(first.iter().all(|(d, _, _)| d == "started"), "{first:?}");
    wait_until("three failed runs", Duration::from_secs(30), || {
        count(&runs(&server, "hostile"), "failed") >= 3
    });
    let mut held = Vec::new();
    for batch in [3..70, 70..135, 135..200] {
        held.extend(deliver(&server, batch.map(flapping).collect()));
    }
    assert_eq!(held.len(), 197);
    assert!(
        held.iter().all(|(d, _, _)| d == "held"),
        "{:?}",
        held.iter().find(|(d, _, _)| d != "held")
    );
    assert!(
        held[0]
            .2
            .as_deref()
            .unwrap()
            .contains("circuit breaker of hostile is open")
    );
    wait_until(
        "the first three runs to end",
        Duration::from_secs(30),
        || count(&runs(&server, "hostile"), "failed") == 3,
    );
    let all = runs(&server, "hostile");
    assert_eq!(all.len(), 200);
    assert_eq!(count(&all, "held"), 197);
    // Held runs were never claimed: no running time, no timeline.
    let one = server
        .get(&format!("/runs/{}", held[100].1.as_deref().unwrap()))
        .json();
    assert_eq!(one["status"], "held");
    assert!(one.get("running_since").is_none(), "{one:#}");
    assert_eq!(one["timeline"], json!([]));
    assert!(
        one["reason"]
            .as_str()
            .unwrap()
            .contains("host breaker reset hostile")
    );
    let report = server.get(&format!(
        "/ui/runs/{}/report.md",
        held[100].1.as_deref().unwrap()
    ));
    assert!(
        report
            .body
            .contains("Not executed: a circuit breaker held the run"),
        "{}",
        report.body
    );

    // Ops hears once per opening, however many runs were held.
    wait_until("the breaker's notice", Duration::from_secs(15), || {
        breaker_notices(&slack) >= 1
    });
    wait_until("the outbox to drain", Duration::from_secs(15), || {
        metric(&server, "runbook_notifications_pending{channel=\"ops\"}") == 0.0
    });
    assert_eq!(breaker_notices(&slack), 1);
    assert_eq!(
        metric(&server, "runbook_breaker_open{playbook=\"hostile\"}"),
        1.0
    );
    assert_eq!(
        metric(&server, "runbook_runs_held_total{playbook=\"hostile\"}"),
        197.0
    );

    // The CLI sees it open; the console's Reset (CSRF-checked) closes it, and the next alert
    // runs again.
    let status = sandbox.host(&["breaker", "status", "--json"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    let breakers = status.json();
    assert_eq!(breakers[0]["playbook"], "hostile");
    assert_eq!(breakers[0]["open"], true);
    let page = console_page(&server);
    let reset = "/ui/maintenance/breakers/hostile/reset";
    let token = csrf_for(&page, reset);
    assert_eq!(post_form(&server, reset, "").0, 403, "no CSRF token");
    let (code, body) = post_form(&server, reset, &format!("csrf={token}"));
    assert_eq!(code, 303, "{body}");
    let again = sandbox.host(&["breaker", "reset", "hostile"]);
    assert_eq!(again.code, 1, "already closed: {}", again.stderr);
    assert!(
        sandbox
            .host(&["breaker", "status"])
            .stdout
            .contains("reset by console:oncall")
    );
    // A bad window from the console's form is refused whole, like the CLI's.
    let start = "/ui/maintenance/windows";
    let token = csrf_for(&page, start);
    let (code, body) = post_form(
        &server,
        start,
        &format!("csrf={token}&for=2h&match=instance%3Dweb01&nodes=&reason="),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("expected name=&quot;value&quot;"), "{body}");
    let (code, _) = post_form(
        &server,
        start,
        &format!("csrf={token}&for=1h&match=instance%3D%22web09%22&nodes=&reason=console"),
    );
    assert_eq!(code, 303);
    let listed = sandbox.host(&["maintenance", "list", "--json"]).json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed:#}");
    assert_eq!(listed[0]["created_by"], "console:oncall");
    let after = deliver(&server, vec![flapping(200)]);
    assert_eq!(after[0].0, "started", "{after:?}");
    assert_eq!(
        metric(&server, "runbook_breaker_open{playbook=\"hostile\"}"),
        0.0
    );
    // The console's page shows the breaker and the windows.
    let page = server.get("/ui/maintenance");
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("hostile") && page.body.contains("db-upgrade"),
        "{}",
        page.body
    );
}
