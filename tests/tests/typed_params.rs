//! A parameter's value of the wrong type ("abc" for disk-full's numeric `warn-percent`) is
//! refused before any run exists, at every entry point, naming the parameter, its type and
//! the value: `host run -p` (exit 2), `/hooks/run/{playbook}` (422, JSON error), a route whose
//! template renders it (the alert is recorded rejected), and the console's run form (shown
//! again with the error and what was typed). A good value is accepted at each (the positive
//! control), and unknown parameters still list the valid ones.

use runbook_tests::Sandbox;
use runbook_tests::server::Server;
use serde_json::{Value, json};

const RUN_TOKEN: &str = "typed-params-run-token";
const UI_PASSWORD: &str = "typed-params-ui-password";
/// What every refusal names.
const NAMED: [&str; 3] = ["\"warn-percent\"", "number", "\"abc\""];

fn quiet(extra: Value) -> Value {
    let mut params = json!({ "paths": "", "backups": "", "critical-percent": "100" });
    params
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    params
}

fn assert_names_the_problem(text: &str) {
    for part in NAMED {
        assert!(text.contains(part), "{part} missing from: {text}");
    }
}

fn run_count(server: &Server) -> usize {
    server
        .get("/runs?limit=1000")
        .json()
        .as_array()
        .unwrap()
        .len()
}

fn alert(threshold: &str, fingerprint: &str) -> String {
    json!({
        "version": "4", "status": "firing", "receiver": "host",
        "groupLabels": {}, "commonLabels": {},
        "alerts": [{
            "status": "firing",
            "labels": { "alertname": "DiskFull", "threshold": threshold },
            "annotations": {}, "startsAt": "2026-11-25T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z", "fingerprint": fingerprint,
        }],
    })
    .to_string()
}

#[test]
fn a_value_of_the_wrong_type_is_refused_before_a_run_exists() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "host.toml",
        r#"[webhooks.run]
auth = { kind = "bearer", token = { env = "RUN_TOKEN" } }
[webhooks.alertmanager]
auth = { kind = "bearer", token = { env = "RUN_TOKEN" } }
[ui]
auth = { kind = "basic", username = "alice", password = { env = "UI_PASSWORD" } }

[[route]]
matchers = ['alertname="DiskFull"']
playbook = "disk-full"
dry-run = true
params = { paths = "", backups = "", critical-percent = "100", warn-percent = "{{ labels.threshold }}" }
"#,
    );
    let server = Server::start(
        &sandbox,
        &[("RUN_TOKEN", RUN_TOKEN), ("UI_PASSWORD", UI_PASSWORD)],
    );
    let bearer = format!("Bearer {RUN_TOKEN}");

    // The types as `host inspect` shows them (derived from the defaults).
    let inspect = sandbox.host(&["inspect", "disk-full", "--json"]).json();
    let type_of = |name: &str| {
        inspect["params"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["type"]
            .clone()
    };
    assert_eq!(type_of("warn-percent"), "number");
    assert_eq!(type_of("mounts"), "string");

    // The CLI: exit 2, nothing stored; the good value runs.
    let refused = sandbox.host(&["run", "disk-full", "--dry-run", "-p", "warn-percent=abc"]);
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert_names_the_problem(&refused.stderr);
    assert_eq!(run_count(&server), 0, "a refused CLI run is not stored");
    let unknown = sandbox.host(&["run", "disk-full", "-p", "warn-percnt=80"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown
            .stderr
            .contains("its parameters: mounts, warn-percent"),
        "{}",
        unknown.stderr
    );
    let accepted = sandbox.host(&[
        "run",
        "disk-full",
        "--dry-run",
        "-p",
        "paths=",
        "-p",
        "backups=",
        "-p",
        "warn-percent=85",
    ]);
    assert!(
        accepted.code == 0 || accepted.code == 3,
        "{}{}",
        accepted.stdout,
        accepted.stderr
    );
    assert_eq!(run_count(&server), 1);

    // The webhook: 422 with the reason as JSON, nothing queued; the good value is accepted.
    let reply = server.post(
        "/hooks/run/disk-full?dry_run=true",
        &[("Authorization", &bearer)],
        quiet(json!({ "warn-percent": "abc" }))
            .to_string()
            .as_bytes(),
    );
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert_names_the_problem(reply.json()["error"].as_str().unwrap());
    assert_eq!(run_count(&server), 1);
    let id = server.submit_run(
        "/hooks/run/disk-full?dry_run=true",
        RUN_TOKEN,
        quiet(json!({ "warn-percent": "85" }))
            .to_string()
            .as_bytes(),
    );
    server.wait_for_run(&id, std::time::Duration::from_secs(60));
    assert_eq!(run_count(&server), 2);

    // A route's template renders the label: the alert is rejected with why, no run.
    let reply = server.post(
        "/hooks/alertmanager",
        &[("Authorization", &bearer)],
        alert("abc", "fp-bad").as_bytes(),
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    let outcome = &reply.json()["alerts"][0];
    assert_eq!(outcome["disposition"], "rejected", "{outcome:#}");
    assert_names_the_problem(outcome["detail"].as_str().unwrap());
    assert_eq!(run_count(&server), 2);
    let reply = server.post(
        "/hooks/alertmanager",
        &[("Authorization", &bearer)],
        alert("85", "fp-good").as_bytes(),
    );
    assert_eq!(
        reply.json()["alerts"][0]["disposition"],
        "started",
        "{}",
        reply.body
    );
    assert_eq!(run_count(&server), 3);

    // The console form: shown again (422) with the error and what was typed; the good value
    // starts the run.
    let http = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .new_agent();
    use base64::Engine as _;
    let alice = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("alice:{UI_PASSWORD}"))
    );
    let form = server.url("/ui/playbooks/disk-full/run");
    let page = http
        .get(&form)
        .header("authorization", &alice)
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    let marker = "name=\"csrf\" value=\"";
    let at = page.find(marker).expect("a CSRF field") + marker.len();
    let csrf = &page[at..at + page[at..].find('"').expect("the field's closing quote")];
    let submit = |warn: &str| {
        let body = format!(
            "csrf={csrf}&dry_run=1&param%3Apaths=&param%3Abackups=&param%3Acritical-percent=100&param%3Awarn-percent={warn}"
        );
        let response = http
            .post(&form)
            .header("authorization", &alice)
            .header("content-type", "application/x-www-form-urlencoded")
            .send(body.as_str())
            .unwrap();
        let status = response.status().as_u16();
        (status, response.into_body().read_to_string().unwrap())
    };
    let (status, page) = submit("abc");
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("id=\"form-error\""), "{page}");
    assert!(page.contains("is a number"), "{page}");
    assert!(
        page.contains("value=\"abc\""),
        "what was typed is kept: {page}"
    );
    assert!(page.contains("id=\"run-form\""), "{page}");
    assert_eq!(run_count(&server), 3);
    let (status, page) = submit("85");
    assert_eq!(status, 303, "{page}");
    assert_eq!(run_count(&server), 4);
}
