//! What a playbook hands the host to send, keep and show is bounded and made safe: it cannot
//! choose transport headers, its words cannot drive the operator's terminal, its sizes cannot
//! bloat the host or the store, and the runs it leaves behind are not open to anyone who asks.

use runbook_tests::http::Peer;
use runbook_tests::server::{API_TOKEN, Server};
use runbook_tests::{Run, Sandbox, calls};
use serde_json::Value;

/// A sandbox with the hostile playbook in its plugin dir, granted `ops` and one peer's origin.
fn sandbox(peer: &Peer) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("hostile");
    sandbox.write(
        "host.toml",
        format!(
            "plugin-dirs = [\"plugins\"]\n\
             [plugins.hostile]\ndeadline-secs = 60\n\
             [plugins.hostile.grants]\nnotify = [\"ops\"]\nhttp = [\"{}\"]\nfs-read = [\"/tmp\"]\n",
            peer.url("")
        ),
    );
    sandbox
}

fn hostile(sandbox: &Sandbox, params: &[(&str, &str)], json: bool) -> Run {
    let mut args = vec!["run", "hostile"];
    if json {
        args.push("--json");
    }
    let pairs: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for pair in &pairs {
        args.extend(["-p", pair]);
    }
    sandbox.host(&args)
}

#[test]
fn a_playbook_cannot_choose_transport_headers() {
    let peer = Peer::status(200);
    let sandbox = sandbox(&peer);
    let target = peer.url("/");
    for header in [
        "Host",
        "host",
        "Connection",
        "Transfer-Encoding",
        "Content-Length",
        "TE",
        "Upgrade",
        "Proxy-Authorization",
        "proxy-connection",
    ] {
        let run = hostile(
            &sandbox,
            &[
                ("case", "http-header"),
                ("target", &target),
                ("header", header),
            ],
            true,
        )
        .json();
        assert_eq!(run["status"], "failed", "{header}: {run:#}");
        let call = calls(&run, "http", "send")[0];
        assert_eq!(call["result"], "invalid", "{header}: {call:#}");
        assert!(
            call["detail"].as_str().unwrap().contains("set by the host"),
            "{header}: {call:#}"
        );
    }
    assert_eq!(peer.hits(), 0, "a refused request reached the peer");
    // An ordinary header still goes out.
    let run = hostile(
        &sandbox,
        &[
            ("case", "http-header"),
            ("target", &target),
            ("header", "X-Request-Id"),
        ],
        true,
    )
    .json();
    assert_eq!(calls(&run, "http", "send")[0]["result"], "ok", "{run:#}");
    assert_eq!(peer.hits(), 1);
}

/// No raw control characters, C1 controls or bidi marks; line breaks only where the host put
/// them, so the forged outcome line never starts a line.
fn assert_terminal_safe(what: &str, text: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|c| {
            (c.is_control() && *c != '\n')
                || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}')
        })
        .collect();
    assert!(bad.is_empty(), "{what} prints raw {bad:?}:\n{text}");
    assert!(
        !text.lines().any(|l| l.starts_with("RESOLVED")),
        "{what} lets the playbook forge an outcome line:\n{text}"
    );
}

#[test]
fn a_playbooks_words_reach_the_terminal_and_the_report_escaped() {
    let peer = Peer::status(200);
    let sandbox = sandbox(&peer);
    let run = hostile(&sandbox, &[("case", "terminal")], false);
    assert_eq!(run.code, 3, "escalated: {}{}", run.stdout, run.stderr);
    assert_terminal_safe("host run", &run.stdout);
    assert_terminal_safe("host run (stderr)", &run.stderr);
    assert!(
        run.stdout
            .contains("ESCALATED: summary \\u{1b}[2K\\r\\nRESOLVED: all good"),
        "the summary is shown, escaped: {}",
        run.stdout
    );
    assert!(run.stdout.contains("\\u{9b}1A\\u{202e}"), "{}", run.stdout);

    let json = hostile(&sandbox, &[("case", "terminal")], true);
    assert_terminal_safe("host run --json", &json.stdout);
    let doc = json.json();
    // The data itself is kept as the playbook wrote it: escaping is for display only.
    assert!(doc["summary"].as_str().unwrap().contains("\u{1b}]52;c;"));

    let id = doc["run_id"].as_str().unwrap();
    for args in [
        vec!["runs"],
        vec!["runs", "show", id],
        vec!["runs", "show", id, "--json"],
        vec!["runs", "report", id],
    ] {
        let shown = sandbox.host(&args);
        assert_eq!(shown.code, 0, "{args:?}: {}", shown.stderr);
        assert_terminal_safe(&format!("host {}", args.join(" ")), &shown.stdout);
    }
    let report = sandbox.host(&["runs", "report", id]).stdout;
    assert!(report.contains("summary \\u{1b}[2K"), "{report}");
}

fn failed_with(run: &Value, expected: &str) {
    assert_eq!(run["status"], "failed", "{run:#}");
    let reason = run["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(expected),
        "expected {expected:?} in {reason:?}"
    );
}

#[test]
fn sizes_a_playbook_controls_are_capped() {
    let peer = Peer::status(200);
    let sandbox = sandbox(&peer);
    // Every run below, with what the store keeps of it at most.
    let mut kept: Vec<(String, usize)> = Vec::new();
    let mut keep = |run: &Value, at_most: usize| {
        kept.push((run["run_id"].as_str().unwrap().to_string(), at_most));
    };

    let run = hostile(&sandbox, &[("case", "big-summary")], true).json();
    keep(&run, 64 << 10);
    failed_with(
        &run,
        "limit exceeded: a summary of 33554432 bytes (at most 4096)",
    );
    let run = hostile(&sandbox, &[("case", "many-actions")], true).json();
    keep(&run, 64 << 10);
    failed_with(&run, "limit exceeded: 1000000 actions (at most 100)");
    let run = hostile(&sandbox, &[("case", "timeline-flood")], true).json();
    keep(&run, (4 << 20) + (64 << 10));
    failed_with(
        &run,
        "limit exceeded: more than 4194304 bytes of timeline (log lines, steps, calls) in one run",
    );

    // Fifty calls with a 4 MiB argument: recorded, each argument cut to a KiB with its length.
    let run = hostile(&sandbox, &[("case", "big-args")], true).json();
    keep(&run, 256 << 10);
    assert_eq!(run["status"], "no-action", "{run:#}");
    let stats = calls(&run, "fs-read", "stat");
    assert_eq!(stats.len(), 50);
    for call in &stats {
        let path = call["args"]["path"].as_str().unwrap();
        assert!(path.len() < 1100, "{} bytes recorded", path.len());
        assert!(
            path.contains("4194305 bytes"),
            "{}",
            &path[path.len() - 40..]
        );
        assert!(call["detail"].as_str().unwrap_or_default().len() <= 2100);
    }

    let run = hostile(&sandbox, &[("case", "big-notification")], true).json();
    keep(&run, 64 << 10);
    assert_eq!(run["status"], "failed", "{run:#}");
    let call = calls(&run, "notify", "send")[0];
    assert_eq!(call["result"], "invalid", "{call:#}");
    assert!(
        call["detail"]
            .as_str()
            .unwrap()
            .contains("body is 8388608 bytes; at most 16384")
    );

    for (name, content_type, expected) in [
        (
            "../../etc/cron.d/x",
            "text/plain",
            "no control characters or `/`",
        ),
        (
            &"n".repeat(4096) as &str,
            "text/plain",
            "artifact name of 4096 bytes",
        ),
        ("ok.txt", "text", "expected type/subtype"),
        (
            "ok.txt",
            "text/plain\r\nX-Injected: 1",
            "expected type/subtype",
        ),
        ("evil\u{1b}[2J.txt", "text/plain", "no control characters"),
    ] {
        let run = hostile(
            &sandbox,
            &[
                ("case", "artifact-label"),
                ("name", name),
                ("content-type", content_type),
            ],
            true,
        )
        .json();
        keep(&run, 64 << 10);
        assert_eq!(run["status"], "failed", "{name:?}: {run:#}");
        let reason = run["reason"].as_str().unwrap();
        assert!(
            reason.contains("invalid") && reason.contains(expected),
            "{name:?}: {reason}"
        );
    }

    // The runs above were handed a 32 MiB summary, a million actions, 200 MiB of arguments,
    // 40 MiB of steps and an 8 MiB body; what the store gives back of each (its timeline,
    // outcome, reason and artifacts) stays within the caps.
    for (id, at_most) in kept {
        let stored = sandbox.host(&["runs", "show", &id, "--json"]);
        assert_eq!(stored.code, 0, "{}", stored.stderr);
        assert!(
            stored.stdout.len() <= at_most,
            "run {id} is {} bytes in the store (at most {at_most})",
            stored.stdout.len()
        );
    }
}

#[test]
fn the_read_api_needs_auth_unless_the_operator_opens_it() {
    let peer = Peer::status(200);
    let sandbox = sandbox(&peer);
    let id = hostile(&sandbox, &[("case", "terminal")], true).json()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let paths = [
        "/runs".to_string(),
        format!("/runs/{id}"),
        format!("/runs/{id}/report"),
        "/alerts".to_string(),
    ];

    // No [webhooks.api] at all: closed, and the answer says what to configure.
    let unconfigured = Server::start_as_configured(&sandbox, &[]);
    for path in &paths {
        let reply = unconfigured.get_authorized(path, &format!("Bearer {API_TOKEN}"));
        assert_eq!(reply.status, 401, "{path}: {}", reply.body);
        assert!(
            reply.body.contains("needs [webhooks.api] auth"),
            "{}",
            reply.body
        );
        assert!(!reply.body.contains("summary"), "{}", reply.body);
    }
    assert_eq!(unconfigured.get_anonymous("/healthz").status, 200);
    drop(unconfigured);

    // A bearer token configured: only the right token reads.
    let server = Server::start(&sandbox, &[]);
    for path in &paths {
        assert_eq!(server.get_anonymous(path).status, 401, "{path}");
        assert_eq!(
            server.get_authorized(path, "Bearer not-the-token").status,
            401,
            "{path}"
        );
        assert_eq!(server.get(path).status, 200, "{path} with the token");
    }
    drop(server);

    // Opened explicitly by the operator.
    std::fs::write(
        sandbox.path().join("host.toml"),
        "plugin-dirs = [\"plugins\"]\n[webhooks.api]\nauth = { kind = \"none\" }\n",
    )
    .unwrap();
    let open = Server::start(&sandbox, &[]);
    let runs = open.get_anonymous("/runs");
    assert_eq!(runs.status, 200);
    assert!(runs.body.contains(&id), "{}", runs.body);
}
