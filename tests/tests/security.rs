//! The security playbook on generated logs with known attacks, containment against a real
//! container, evidence hashes, and the incident report of security and bot-down runs.

use runbook_tests::docker::{TestContainer, docker};
use runbook_tests::server::Server;
use runbook_tests::{Sandbox, calls};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Brute force from two sources (12 and 6 failures), one of them then logs in; a normal
/// login; sudo; unrelated noise.
fn auth_log() -> String {
    let mut lines = Vec::new();
    for i in 0..12 {
        lines.push(format!("Nov 25 10:00:{i:02} web-1 sshd[{}]: Failed password for invalid user admin from 203.0.113.7 port {} ssh2", 1000 + i, 50000 + i));
    }
    for i in 0..6 {
        lines.push(format!("Nov 25 10:01:{i:02} web-1 sshd[{}]: Failed password for deploy from 198.51.100.23 port {} ssh2", 2000 + i, 51000 + i));
    }
    lines.push("Nov 25 10:02:00 web-1 sshd[3000]: Accepted password for deploy from 198.51.100.23 port 52000 ssh2".into());
    lines.push("Nov 25 10:03:00 web-1 sshd[3001]: Accepted publickey for ops from 192.0.2.10 port 52001 ssh2".into());
    lines.push("Nov 25 10:04:00 web-1 sudo:   deploy : TTY=pts/0 ; PWD=/home/deploy ; USER=root ; COMMAND=/bin/cat /etc/shadow".into());
    lines.push(
        "Nov 25 10:05:00 web-1 CRON[4000]: pam_unix(cron:session): session opened for user root"
            .into(),
    );
    lines.join("\n") + "\n"
}

/// Unauthorized API calls and rate limiting from one client, and a healthy request.
fn app_log() -> String {
    let mut lines = Vec::new();
    for i in 0..4 {
        lines.push(format!(
            "2026-11-25T10:1{i}:00Z WARN api: 401 Unauthorized GET /api/admin from 192.0.2.50"
        ));
    }
    for i in 0..3 {
        lines.push(format!(
            "2026-11-25T10:2{i}:00Z WARN api: rate limit exceeded for 192.0.2.50"
        ));
    }
    lines.push("2026-11-25T10:30:00Z INFO api: GET /healthz 200".into());
    lines.join("\n") + "\n"
}

/// Logs under the sandbox, the security channel to a file, and `extra` grants.
fn setup(docker_verbs: &str) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.write("logs/auth.log", auth_log());
    sandbox.write("logs/app.log", app_log());
    sandbox.write(
        "host.toml",
        format!(
            "[notify.security]\nkind = \"file\"\npath = \"security.jsonl\"\n\
             [webhooks.api]\nauth = {{ kind = \"none\" }}\n\
             [plugins.security.grants]\nfs-read = [\"logs\"]\nnotify = [\"security\"]\n\
             docker = [{{ containers = [\"rbt-api-*\"], verbs = [{docker_verbs}] }}]\n"
        ),
    );
    sandbox
}

fn logs_param(sandbox: &Sandbox) -> String {
    let dir = sandbox.path().canonicalize().unwrap().join("logs");
    format!(
        "logs={},{}",
        dir.join("auth.log").display(),
        dir.join("app.log").display()
    )
}

fn run_security(sandbox: &Sandbox, extra: &[&str]) -> (i32, Value) {
    let logs = logs_param(sandbox);
    let mut args = vec!["run", "security", "--json", "-p", &logs];
    args.extend_from_slice(extra);
    let run = sandbox.host(&args);
    (run.code, run.json())
}

fn artifact<'a>(run: &'a Value, name: &str) -> Option<&'a Value> {
    run["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
}

fn findings(run: &Value) -> Value {
    let text = artifact(run, "findings.json").expect("findings.json")["text"]
        .as_str()
        .unwrap();
    serde_json::from_str(text).unwrap()
}

#[test]
fn attacks_are_counted_exactly_with_top_sources_and_hashed_evidence() {
    let sandbox = setup("\"read\"");
    let (code, run) = run_security(&sandbox, &[]);
    assert_eq!(code, 3, "{run:#}");
    assert_eq!(run["status"], "escalated");
    let f = findings(&run);
    let c = &f["categories"];
    assert_eq!(c["failed-login"]["count"], 18);
    assert_eq!(
        c["failed-login"]["top_sources"],
        json!([["203.0.113.7", 12], ["198.51.100.23", 6]])
    );
    assert_eq!(c["failed-login"]["first_seen"], "Nov 25 10:00:00");
    assert_eq!(c["failed-login"]["last_seen"], "Nov 25 10:01:05");
    assert_eq!(c["successful-login"]["count"], 2);
    assert_eq!(c["unauthorized"]["count"], 4);
    assert_eq!(c["unauthorized"]["top_sources"], json!([["192.0.2.50", 4]]));
    assert_eq!(c["rate-limit"]["count"], 3);
    assert_eq!(c["sudo"]["count"], 1);
    assert_eq!(
        f["brute_force_sources"],
        json!([["203.0.113.7", 12], ["198.51.100.23", 6]])
    );
    assert_eq!(
        f["successful_login_after_failures"],
        json!(["198.51.100.23"])
    );
    assert_eq!(f["contained"], Value::Null);

    // Evidence: the matching lines, bounded, and every artifact's hash is its content's.
    let evidence = artifact(&run, "evidence-failed-login.log").unwrap();
    assert_eq!(evidence["text"].as_str().unwrap().lines().count(), 18);
    let stored = sandbox.host(&["runs", "show", run["run_id"].as_str().unwrap(), "--json"]);
    let stored: Value = serde_json::from_str(&stored.stdout).unwrap();
    let artifacts = stored["artifacts"].as_array().unwrap();
    assert!(artifacts.len() >= 6, "{artifacts:?}");
    for a in artifacts {
        let digest = hex::encode(Sha256::digest(a["text"].as_str().unwrap().as_bytes()));
        assert_eq!(a["sha256"], digest, "{}", a["name"]);
    }

    // The security channel got the findings and the checklist a machine must not do.
    let line = std::fs::read_to_string(sandbox.path().join("security.jsonl")).unwrap();
    let message: Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(message["severity"], "critical");
    let body = message["body"].as_str().unwrap();
    assert!(
        body.contains("Brute force from: 203.0.113.7 (12), 198.51.100.23 (6)"),
        "{body}"
    );
    assert!(body.contains("[ ] Rotate all API keys"), "{body}");
    assert!(body.contains("[ ] Change the web UI password"), "{body}");
}

#[test]
fn clean_logs_are_no_action_and_notify_nobody() {
    let sandbox = setup("\"read\"");
    sandbox.write(
        "logs/auth.log",
        "Nov 25 10:03:00 web-1 sshd[1]: Accepted publickey for ops from 192.0.2.10 port 2 ssh2\n",
    );
    sandbox.write(
        "logs/app.log",
        "2026-11-25T10:30:00Z INFO api: GET /healthz 200\n",
    );
    let (code, run) = run_security(&sandbox, &[]);
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(run["status"], "no-action");
    assert!(calls(&run, "notify", "send").is_empty());
    assert!(!sandbox.path().join("security.jsonl").exists());
}

#[test]
fn containment_pauses_a_real_container_only_when_asked_and_granted() {
    let api = TestContainer::api();
    let paused = || docker(&["inspect", "-f", "{{.State.Paused}}", &api.name]);
    let target = format!("container={}", api.name);
    let scan = format!("containers={}", api.name);

    // Asked, but not granted: denied, nothing paused; still escalated and reported.
    let sandbox = setup("\"read\"");
    let (_, run) = run_security(
        &sandbox,
        &["-p", &scan, "-p", "contain=pause", "-p", &target],
    );
    assert_eq!(
        calls(&run, "docker", "pause")[0]["result"],
        "denied",
        "{run:#}"
    );
    assert_eq!(paused(), "false");
    assert!(
        findings(&run)["contained"]
            .as_str()
            .unwrap()
            .starts_with("could not pause")
    );
    // The container's own logs were scanned and kept.
    assert_eq!(findings(&run)["categories"]["unauthorized"]["count"], 4 + 3);
    let kept = artifact(&run, &format!("container-{}.log", api.name)).unwrap();
    assert!(
        kept["text"]
            .as_str()
            .unwrap()
            .contains("rate limit exceeded for 192.0.2.77")
    );

    // Granted, but a dry run: "would pause", nothing paused.
    let sandbox = setup("\"read\", \"pause\"");
    let (_, run) = run_security(
        &sandbox,
        &["-p", "contain=pause", "-p", &target, "--dry-run"],
    );
    assert_eq!(calls(&run, "docker", "pause")[0]["result"], "would");
    assert_eq!(paused(), "false");

    // Not asked: no pause call at all.
    let (_, run) = run_security(&sandbox, &[]);
    assert!(calls(&run, "docker", "pause").is_empty());
    assert_eq!(paused(), "false");

    // Asked and granted: paused.
    let (_, run) = run_security(&sandbox, &["-p", "contain=pause", "-p", &target]);
    assert_eq!(calls(&run, "docker", "pause")[0]["result"], "ok", "{run:#}");
    assert_eq!(paused(), "true");
    assert_eq!(findings(&run)["contained"], format!("paused {}", api.name));
    docker(&["unpause", &api.name]);
}

/// The report's timeline lists every capability call of the stored run, in order.
fn assert_report_has_every_call(report: &str, stored: &Value) {
    let headings: Vec<&str> = report.lines().filter(|l| l.starts_with("## ")).collect();
    assert_eq!(
        headings,
        [
            "## Summary",
            "## Impact",
            "## Timeline",
            "## Root Cause",
            "## Resolution",
            "## Evidence",
            "## Lessons Learned",
            "## Action Items",
            "## Prevention"
        ]
    );
    let reported: Vec<String> = report
        .lines()
        .filter_map(|l| l.split_once("— call `").map(|(_, rest)| rest.to_string()))
        .collect();
    let expected: Vec<String> = stored["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "call")
        .map(|e| {
            format!(
                "{}.{}` `{}`",
                e["interface"].as_str().unwrap(),
                e["function"].as_str().unwrap(),
                e["args"]
            )
        })
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(reported.len(), expected.len(), "{report}");
    for (line, call) in reported.iter().zip(&expected) {
        assert!(line.starts_with(call.as_str()), "{line}\n  expected {call}");
    }
    // Timestamps never go backwards.
    let times: Vec<&str> = report
        .lines()
        .filter_map(|l| l.strip_prefix("- **").and_then(|r| r.get(..12)))
        .filter(|t| t.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert!(times.len() > expected.len(), "{times:?}");
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

#[test]
fn reports_of_a_security_run_and_a_bot_down_run_follow_the_template() {
    let sandbox = setup("\"read\"");
    let (_, run) = run_security(&sandbox, &["--severity", "P1"]);
    let id = run["run_id"].as_str().unwrap();
    let report = sandbox.host(&["runs", "report", id]);
    assert_eq!(report.code, 0, "{}", report.stderr);
    let stored: Value =
        serde_json::from_str(&sandbox.host(&["runs", "show", id, "--json"]).stdout).unwrap();
    assert_report_has_every_call(&report.stdout, &stored);
    let md = &report.stdout;
    assert!(md.starts_with("# Incident Post-Mortem\n"));
    assert!(md.contains("**Severity:** P1"));
    assert!(md.contains("- [ ] Rotate all API keys"), "{md}");
    let findings_hash = artifact(&run, "findings.json").unwrap()["sha256"]
        .as_str()
        .unwrap();
    assert!(md.contains("| findings.json | application/json |"));
    assert!(md.contains(findings_hash));

    // The same report over HTTP.
    let server = Server::start(&sandbox, &[]);
    let reply = server.get(&format!("/runs/{id}/report"));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, *md);
    assert_eq!(server.get("/runs/nope/report").status, 404);

    // bot-down against a real stopped bot, severity from the alert's label.
    let bot = TestContainer::bot();
    docker(&["stop", "-t", "1", &bot.name]);
    bot.wait_for_state("exited");
    let alert = sandbox.write(
        "alert.json",
        json!({"status": "firing", "labels": {"alertname": "BotDown", "severity": "critical"},
               "annotations": {}, "startsAt": "2026-11-25T10:00:00Z", "fingerprint": "b07d0"})
        .to_string(),
    );
    let health = format!("health-url={}", bot.url("/health"));
    let container = format!("container={}", bot.name);
    let run = sandbox.host(&[
        "run",
        "bot-down",
        "--json",
        "-p",
        &container,
        "-p",
        &health,
        "--alert-file",
        alert.to_str().unwrap(),
    ]);
    let run = run.json();
    assert_eq!(run["status"], "resolved", "{run:#}");
    assert_eq!(run["severity"], "P1");
    let id = run["run_id"].as_str().unwrap();
    let report = sandbox.host(&["runs", "report", id]).stdout;
    let stored: Value =
        serde_json::from_str(&sandbox.host(&["runs", "show", id, "--json"]).stdout).unwrap();
    assert_report_has_every_call(&report, &stored);
    assert!(report.contains("**Severity:** P1"));
    assert!(
        report.contains("- **Alert:** BotDown (firing since 2026-11-25T10:00:00Z)"),
        "{report}"
    );
    assert!(
        report.contains(&format!("- restarted {}", bot.name)),
        "{report}"
    );
}
