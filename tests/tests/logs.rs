//! `host serve`'s logs as a log collector reads them (`--log-format json`, debug level): one
//! line per request with its status, latency, auth outcome and runs; a run's start and end;
//! capability calls inside the run's span; and no secret anywhere: not the tokens (right or
//! wrong), not a header value, not a body, not a query string.

use std::time::{Duration, Instant};

use runbook_tests::Sandbox;
use runbook_tests::server::Server;
use serde_json::{Value, json};

const TOKEN: &str = "logs-bearer-s3cret-7f3a";
const WRONG: &str = "logs-wrong-guess-91c2";
const BODY_SECRET: &str = "body-only-s3cret-d00d";
const HEADER_SECRET: &str = "header-only-s3cret-beef";
const QUERY_SECRET: &str = "query-only-s3cret-cafe";

fn lines(log: &str) -> Vec<Value> {
    log.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

#[test]
fn logs_are_json_lines_with_requests_runs_and_calls_and_never_a_secret() {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("hostile");
    let evidence = sandbox.write("evidence/a.txt", "evidence\n");
    sandbox.write(
        "host.toml",
        format!(
            r#"plugin-dirs = ["plugins"]
[webhooks.run]
auth = {{ kind = "bearer", token = {{ env = "LOGS_TOKEN" }} }}
[plugins.hostile.grants]
fs-read = ["{}"]
"#,
            sandbox.path().join("evidence").display()
        ),
    );
    let server = Server::start(
        &sandbox,
        &[
            ("LOGS_TOKEN", TOKEN),
            ("RUNBOOK_LOG", "debug"),
            ("RUNBOOK_LOG_FORMAT", "json"),
        ],
    );
    // Refused: a wrong token, a secret in a header, the body and the query.
    let body = json!({ "case": "fs-read", "target": evidence, "note": BODY_SECRET }).to_string();
    let refused = server.post(
        &format!("/hooks/run/hostile?token={QUERY_SECRET}"),
        &[
            ("Authorization", &format!("Bearer {WRONG}")),
            ("X-Extra", HEADER_SECRET),
        ],
        body.as_bytes(),
    );
    assert_eq!(refused.status, 401);
    // Accepted: the right token; the run reads a file (a capability call).
    let body = json!({ "case": "fs-read", "target": evidence }).to_string();
    let id = server.submit_run(
        &format!("/hooks/run/hostile?token={QUERY_SECRET}"),
        TOKEN,
        body.as_bytes(),
    );
    let run = server.wait_for_run(&id, Duration::from_secs(60));
    assert_eq!(run["status"], "no-action", "{run}");
    // The run's end is logged after its outcome is stored: wait for the line.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.log(&sandbox).contains("run ended") {
        assert!(Instant::now() < deadline, "{}", server.log(&sandbox));
        std::thread::sleep(Duration::from_millis(50));
    }

    let log = server.log(&sandbox);
    for secret in [TOKEN, WRONG, BODY_SECRET, HEADER_SECRET, QUERY_SECRET] {
        assert!(!log.contains(secret), "{secret} was logged:\n{log}");
    }
    let lines = lines(&log);
    assert!(
        lines
            .iter()
            .all(|l| l["timestamp"].is_string() && l["level"].is_string())
    );
    let requests: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request").collect();
    let refused_line = requests
        .iter()
        .find(|l| l["status"] == 401)
        .unwrap_or_else(|| panic!("no refused request line:\n{log}"));
    assert_eq!(refused_line["auth"], "refused");
    assert_eq!(refused_line["method"], "POST");
    assert_eq!(refused_line["path"], "/hooks/run/hostile");
    assert!(
        refused_line["span"]["request_id"].is_u64(),
        "{refused_line}"
    );
    assert!(
        refused_line["span"]["remote"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    let accepted = requests
        .iter()
        .find(|l| l["status"] == 202)
        .unwrap_or_else(|| panic!("no accepted request line:\n{log}"));
    assert_eq!(accepted["auth"], "ok");
    assert_eq!(accepted["runs"], id.as_str());
    assert!(accepted["latency_ms"].is_number());
    // The run's start and end, and its capability call inside the run's span.
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "run started" && l["run_id"] == id.as_str())
    );
    let ended = lines
        .iter()
        .find(|l| l["message"] == "run ended" && l["run_id"] == id.as_str())
        .unwrap_or_else(|| panic!("no run end:\n{log}"));
    assert_eq!(ended["status"], "no-action");
    assert_eq!(ended["playbook"], "hostile");
    let call = lines
        .iter()
        .find(|l| l["message"] == "capability call")
        .unwrap_or_else(|| panic!("no capability call at debug:\n{log}"));
    assert_eq!(call["level"], "DEBUG");
    assert_eq!(call["function"], "read");
    assert_eq!(call["result"], "ok");
    assert_eq!(call["span"]["run_id"], id.as_str());
    assert_eq!(call["span"]["playbook"], "hostile");
}

#[test]
fn a_bad_log_filter_is_refused_with_its_text() {
    let sandbox = Sandbox::new();
    let run = sandbox.host(&["--log-level", "runbook_host=loud", "list"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("runbook_host=loud"), "{}", run.stderr);
}
