//! The built-ins that ask first (`approve-with`): security's containment and bot-down's restart
//! wait for `host approve` from another process, against real containers; a rejection or a
//! question nobody answers leaves the container alone and escalates. The post-incident report
//! lists each question and its answer.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use runbook_tests::docker::{TestContainer, docker};
use runbook_tests::{Sandbox, calls, host_bin};
use serde_json::Value;

/// The login name `host approve` answers as.
fn login_name() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Security may pause the test's API containers, bot-down restart its bots; both may ask
/// `oncall`, whose only member is this user, through a file channel.
fn setup() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.write(
        "logs/auth.log",
        "Nov 25 10:00:00 web-1 sshd[1000]: Failed password for root from 203.0.113.7 port 50000 ssh2\n",
    );
    let logs = sandbox.path().canonicalize().unwrap().join("logs");
    sandbox.write(
        "host.toml",
        format!(
            "[notify.security]\nkind = \"file\"\npath = \"security.jsonl\"\n\
             [notify.ops]\nkind = \"file\"\npath = \"ops.jsonl\"\n\
             [notify.oncall]\nkind = \"file\"\npath = \"oncall.jsonl\"\n\
             [approvers.oncall]\nusers = [\"{}\"]\nchannels = [\"oncall\"]\n\
             [plugins.security.grants]\nfs-read = [\"{}\"]\nnotify = [\"security\"]\napproval = [\"oncall\"]\n\
             docker = [{{ containers = [\"rbt-api-*\"], verbs = [\"read\", \"pause\"] }}]\n\
             [plugins.bot-down.grants]\nnotify = [\"ops\"]\nhttp = [\"http://127.0.0.1:*\"]\napproval = [\"oncall\"]\n\
             docker = [{{ containers = [\"rbt-bot-*\"], verbs = [\"read\", \"start\", \"restart\"] }}]\n",
            login_name(),
            logs.display()
        ),
    );
    sandbox
}

/// `host run … --json` in the background, as `Sandbox::host` would run it.
fn spawn_run(sandbox: &Sandbox, args: &[&str]) -> Child {
    Command::new("timeout")
        .arg("120")
        .arg(host_bin())
        .arg("run")
        .args(args)
        .arg("--json")
        .current_dir(sandbox.path())
        .env("RUNBOOK_CACHE_DIR", sandbox.cache_dir())
        .env("RUNBOOK_STORE", sandbox.store())
        .env_remove("RUNBOOK_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning host run")
}

fn finish(child: Child) -> Value {
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "host run ({:?}) printed no JSON ({e}):\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Polls `host approvals --json` until a pending question whose title names `subject` is
/// there; the run is then waiting on it.
fn wait_for_question(sandbox: &Sandbox, subject: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = sandbox.host(&["approvals", "--json"]);
        if listed.code == 0 {
            let questions = listed.json();
            let found = questions.as_array().unwrap().iter().find(|a| {
                a["state"] == "pending" && a["title"].as_str().unwrap().contains(subject)
            });
            if let Some(question) = found {
                return question.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no question about {subject} within 60 s: {} {}",
            listed.stdout,
            listed.stderr
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn answer(sandbox: &Sandbox, run_id: &str, extra: &[&str]) {
    let mut args = vec!["approve", run_id];
    args.extend_from_slice(extra);
    let answered = sandbox.host(&args);
    assert_eq!(answered.code, 0, "{} {}", answered.stdout, answered.stderr);
}

fn paused(container: &TestContainer) -> String {
    container.inspect("{{.State.Paused}}")
}

fn contained(run: &Value) -> Value {
    let findings = run["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "findings.json")
        .expect("findings.json");
    let findings: Value = serde_json::from_str(findings["text"].as_str().unwrap()).unwrap();
    findings["contained"].clone()
}

fn security_args(sandbox: &Sandbox, api: &TestContainer) -> Vec<String> {
    let logs = sandbox.path().canonicalize().unwrap().join("logs/auth.log");
    [
        "security".to_string(),
        "-p".into(),
        format!("logs={}", logs.display()),
        "-p".into(),
        "contain=pause".into(),
        "-p".into(),
        format!("container={}", api.name),
        "-p".into(),
        "approve-with=oncall".into(),
    ]
    .to_vec()
}

fn run_security(sandbox: &Sandbox, api: &TestContainer, extra: &[&str]) -> Child {
    let args = security_args(sandbox, api);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    spawn_run(sandbox, &args)
}

#[test]
fn security_pauses_only_after_an_approval_and_the_report_shows_it() {
    let (sandbox, api, me) = (setup(), TestContainer::api(), login_name());
    let running = run_security(&sandbox, &api, &[]);
    let question = wait_for_question(&sandbox, &api.name);
    // The question names the container, what would be done, and the evidence.
    assert_eq!(question["group"], "oncall");
    assert_eq!(question["actions"][0], format!("pause {}", api.name));
    let body = question["body"].as_str().unwrap();
    assert!(body.contains("failed-login: 1"), "{body}");
    // Nothing is done while the question waits.
    assert_eq!(paused(&api), "false");

    let run_id = question["run_id"].as_str().unwrap();
    answer(&sandbox, run_id, &[]);
    let run = finish(running);
    assert_eq!(paused(&api), "true", "{run:#}");
    assert_eq!(
        contained(&run),
        format!("paused {} (approved by cli:{me})", api.name)
    );
    assert_eq!(calls(&run, "approval", "ask").len(), 1, "{run:#}");

    // The report lists the question, who answered, and when.
    let report = sandbox.host(&["runs", "report", run_id]);
    assert_eq!(report.code, 0, "{}", report.stderr);
    let md = report.stdout;
    assert!(md.contains("## Approvals"), "{md}");
    assert!(
        md.contains(&format!(
            "**Security: pause {}?** — asked group `oncall`",
            api.name
        )),
        "{md}"
    );
    assert!(
        md.contains(&format!("**Answer:** approved by cli:{me} via cli at ")),
        "{md}"
    );
    docker(&["unpause", &api.name]);
}

#[test]
fn security_rejected_or_unanswered_leaves_the_container_running_and_escalates() {
    let (sandbox, api, me) = (setup(), TestContainer::api(), login_name());

    // Rejected: not paused; the outcome says who and why.
    let running = run_security(&sandbox, &api, &[]);
    let question = wait_for_question(&sandbox, &api.name);
    let run_id = question["run_id"].as_str().unwrap();
    answer(
        &sandbox,
        run_id,
        &["--reject", "--reason", "forensics first"],
    );
    let run = finish(running);
    assert_eq!(paused(&api), "false");
    assert!(calls(&run, "docker", "pause").is_empty(), "{run:#}");
    assert_eq!(run["status"], "escalated");
    let why = format!(
        "did not pause {}: rejected by cli:{me}: forensics first",
        api.name
    );
    assert!(run["summary"].as_str().unwrap().contains(&why), "{run:#}");
    assert_eq!(contained(&run), why);
    let report = sandbox.host(&["runs", "report", run_id]).stdout;
    assert!(report.contains("**Reason:** forensics first"), "{report}");

    // Nobody answers within the question's timeout: not paused, escalated to security.
    let run = finish(run_security(
        &sandbox,
        &api,
        &["-p", "approve-timeout-secs=1"],
    ));
    assert_eq!(paused(&api), "false");
    assert!(calls(&run, "docker", "pause").is_empty(), "{run:#}");
    assert_eq!(run["status"], "escalated");
    assert!(
        run["summary"]
            .as_str()
            .unwrap()
            .contains("nobody in oncall answered in time"),
        "{run:#}"
    );
    assert_eq!(calls(&run, "notify", "send")[0]["result"], "ok", "{run:#}");

    // A dry run asks nobody and says what it would have done.
    let run = finish(run_security(&sandbox, &api, &["--dry-run"]));
    assert_eq!(paused(&api), "false");
    assert_eq!(
        contained(&run),
        format!("would pause {} (would ask oncall)", api.name)
    );
}

#[test]
fn bot_down_restarts_only_after_an_approval() {
    let (sandbox, me) = (setup(), login_name());
    let bot = TestContainer::bot();
    docker(&["stop", "-t", "1", &bot.name]);
    bot.wait_for_state("exited");

    let running = spawn_run(
        &sandbox,
        &[
            "bot-down",
            "-p",
            &format!("container={}", bot.name),
            "-p",
            &format!("health-url={}", bot.url("/health")),
            "-p",
            "approve-with=oncall",
        ],
    );
    let question = wait_for_question(&sandbox, &bot.name);
    assert_eq!(question["actions"][0], format!("restart {}", bot.name));
    assert_eq!(bot.state(), "exited", "restarted before the answer");

    answer(&sandbox, question["run_id"].as_str().unwrap(), &[]);
    let run = finish(running);
    assert_eq!(run["status"], "resolved", "{run:#}");
    assert_eq!(bot.state(), "running");
    let actions: Vec<&str> = run["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(actions[0], format!("approved by cli:{me}"), "{run:#}");
    assert!(actions[1].starts_with("restarted "), "{run:#}");
}
