//! The HTTP surface against its own OpenAPI document: `/openapi.json` is served to anyone,
//! and schemathesis (from PyPI, in the venv scripts/test-env.sh makes) sends property-based
//! requests to every operation of one live `host serve` with every auth kind configured. Any
//! 5xx but a documented 503, a status, media type, header or body the document does not
//! describe, or an answer slower than the bound fails the test, with schemathesis' report.
//!
//! Bounded for CI (`RUNBOOK_SCHEMATHESIS_EXAMPLES`, default 6 per operation and phase);
//! `scripts/schemathesis.sh [EXAMPLES]` runs longer.

use std::process::Command;

use runbook_tests::Sandbox;
use runbook_tests::server::Server;

const API_TOKEN: &str = "st-api-token-0123456789";
const NODE_TOKEN: &str = "st-node-token-0123456789";
const HMAC_SECRET: &str = "st-hmac-secret";
/// whsec_ + base64("schemathesis-standard-key")
const WHSEC: &str = "whsec_c2NoZW1hdGhlc2lzLXN0YW5kYXJkLWtleQ==";
const UI_USER: &str = "oncall";
const UI_PASSWORD: &str = "st-ui-password";

/// The schemathesis the test set-up installs (`RUNBOOK_SCHEMATHESIS` names another).
fn schemathesis() -> String {
    std::env::var("RUNBOOK_SCHEMATHESIS")
        .unwrap_or_else(|_| "/opt/runbook-venv/bin/schemathesis".into())
}

/// One server with every auth kind: hmac-sha256 on the Alertmanager hook, Standard Webhooks on
/// the run hook, a bearer token on the read API, basic auth on the console, a node's token.
fn server(sandbox: &Sandbox) -> Server {
    sandbox.write(
        "host.toml",
        "[webhooks.alertmanager]\n\
         auth = { kind = \"hmac-sha256\", secret = { env = \"ST_HMAC\" } }\n\
         [webhooks.run]\n\
         auth = { kind = \"standard-webhooks\", secret = { env = \"ST_WHSEC\" } }\n\
         [webhooks.api]\n\
         auth = { kind = \"bearer\", token = { env = \"ST_API\" } }\n\
         [ui]\n\
         auth = { kind = \"basic\", username = \"oncall\", password = { env = \"ST_UI\" } }\n\
         [fleet]\n\
         poll-secs = 1\n\
         [fleet.nodes.node-a]\n\
         token = { env = \"ST_NODE\" }\n",
    );
    Server::start_as_configured(
        sandbox,
        &[
            ("ST_HMAC", HMAC_SECRET),
            ("ST_WHSEC", WHSEC),
            ("ST_API", API_TOKEN),
            ("ST_UI", UI_PASSWORD),
            ("ST_NODE", NODE_TOKEN),
        ],
    )
}

#[test]
fn the_document_is_served_to_anyone_and_names_every_kind_of_route() {
    let sandbox = Sandbox::new();
    let server = server(&sandbox);
    let reply = server.get_anonymous("/openapi.json");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let doc = reply.json();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for (path, method) in [
        ("/hooks/alertmanager", "post"),
        ("/runs/{id}", "get"),
        ("/agent/v1/poll", "post"),
        ("/ui/runs/{id}", "get"),
        ("/openapi.json", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "no {method} {path}");
    }
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for kind in [
        "bearer",
        "basic",
        "hmac_sha256",
        "standard_webhooks",
        "node_token",
    ] {
        assert!(schemes.contains_key(kind), "no security scheme {kind}");
    }
    // The same document whoever asks: credentials change nothing in it.
    let with_token = server.get("/openapi.json");
    assert_eq!(with_token.body, reply.body);
}

#[test]
fn every_operation_answers_as_the_document_says() {
    let sandbox = Sandbox::new();
    let server = server(&sandbox);
    // The console's playbook pages compile every playbook on their first view (a cold cache):
    // seconds, once. Done here, so the 5 s bound below holds for what a warm server answers.
    use base64::Engine as _;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{UI_USER}:{UI_PASSWORD}"));
    let warm = server.get_authorized("/ui/playbooks", &format!("Basic {basic}"));
    assert_eq!(warm.status, 200, "{}", warm.body);
    let examples = std::env::var("RUNBOOK_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "6".into());
    let report = sandbox.path().join("schemathesis.ndjson");
    let output = Command::new(schemathesis())
        .arg("run")
        .arg(server.url("/openapi.json"))
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance",
            "--max-examples",
            &examples,
            // A fixed seed: the same requests on every CI run (the script varies it).
            "--seed",
            &std::env::var("RUNBOOK_SCHEMATHESIS_SEED").unwrap_or_else(|_| "33".into()),
            "--workers",
            "2",
            // Every endpoint answers well within 5 s (an agent's poll is held 1 s at most:
            // `[fleet] poll-secs`).
            "--request-timeout",
            "10",
            "--max-response-time",
            "5",
            "--suppress-health-check",
            "all",
            "--report",
            "ndjson",
            "--report-ndjson-path",
        ])
        .arg(&report)
        .env(
            "SCHEMATHESIS_HOOKS",
            concat!(env!("CARGO_MANIFEST_DIR"), "/schemathesis/hooks.py"),
        )
        .env("RB_ST_HMAC_SECRET", HMAC_SECRET)
        .env("RB_ST_WHSEC", WHSEC)
        .env("RB_ST_API_TOKEN", API_TOKEN)
        .env("RB_ST_NODE_TOKEN", NODE_TOKEN)
        .env("RB_ST_UI_USER", UI_USER)
        .env("RB_ST_UI_PASSWORD", UI_PASSWORD)
        .env("NO_COLOR", "1")
        .current_dir(sandbox.path())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running {} (scripts/test-env.sh installs it): {e}",
                schemathesis()
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "schemathesis found problems ({}):\n{stdout}\n{}\nserver log:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        server.log(&sandbox)
    );
    // Every operation of the document was exercised, not skipped; schemathesis leaves out
    // the document's own URL, which the test above reads.
    let doc = server.get("/openapi.json").json();
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    let tested = format!("Tested: {}", operations - 1);
    assert!(
        stdout.lines().any(|line| line.trim() == tested),
        "not every one of the {operations} operations was tested (want {tested:?}):\n{stdout}"
    );
}

/// Found by schemathesis on PostgreSQL: a NUL byte in a heartbeat's run id reached the store,
/// which refuses NUL in text, and the agent was answered 503 ("try again") for good. Refused
/// as a bad request now, as is a NUL in an agent's version or in any path or query; the same
/// requests without it still go through.
#[test]
fn a_nul_byte_is_a_bad_request_not_a_store_outage() {
    let sandbox = Sandbox::new();
    let server = server(&sandbox);
    let node = format!("Bearer {NODE_TOKEN}");
    let heartbeat = |running: &str, version: &str| {
        let body = serde_json::json!({
            "agent": {
                "node": "node-a",
                "session": "0123456789abcdef0123456789abcdef",
                "version": version,
            },
            "running": [running],
        });
        server.post(
            "/agent/v1/heartbeat",
            &[("Authorization", &node)],
            body.to_string().as_bytes(),
        )
    };
    for (running, version) in [("run\u{0}1", "1.0"), ("run-1", "1.0\u{0}")] {
        let reply = heartbeat(running, version);
        assert_eq!(reply.status, 400, "{running:?} {version:?}: {}", reply.body);
        assert!(!reply.body.contains("run store"), "{}", reply.body);
    }
    let reply = heartbeat("run-1", "1.0");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["held"], serde_json::json!([]));

    let api = format!("Bearer {API_TOKEN}");
    for path in [
        "/runs/%00",
        "/runs/a%00b/report",
        "/runs?playbook=a%00b",
        "/approvals?run=%00",
        "/ui/runs/%00",
    ] {
        let reply = server.get_authorized(path, &api);
        assert_eq!(reply.status, 400, "{path}: {}", reply.body);
    }
    let reply = server.post("/runs/%00/cancel", &[("Authorization", &api)], b"");
    assert_eq!(reply.status, 400, "{}", reply.body);
    let reply = server.get_authorized("/runs/no-such-run", &api);
    assert_eq!(reply.status, 404, "{}", reply.body);
}
