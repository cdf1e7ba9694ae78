//! A Python playbook asks people first: `from runbook import approval`, ask `oncall`, branch on
//! the answer. A real `host run` waits while another process answers with `host approve`, as an
//! on-call engineer would from a second terminal; a group's `max-wait-secs` caps the timeout.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use runbook_tests::polyglot::{self as guests, Lang};
use runbook_tests::{Sandbox, host_bin};

const PLAYBOOK: &str = "asks-python";

fn login_name() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `host run asks-python --json` in the background: it blocks on the question.
fn start_run(sandbox: &Sandbox, params: &[&str]) -> Child {
    let mut command = Command::new("timeout");
    command
        .arg("120")
        .arg(host_bin())
        .args(["run", PLAYBOOK, "--json"]);
    for param in params {
        command.args(["--param", param]);
    }
    command
        .current_dir(sandbox.path())
        .env("RUNBOOK_CACHE_DIR", sandbox.cache_dir())
        .env("RUNBOOK_STORE", sandbox.store())
        .env_remove("RUNBOOK_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(run: Child) -> serde_json::Value {
    let out = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(124), "host run hung:\n{stdout}");
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)))
}

/// Polls `host approvals --json` until the run's question is pending; returns the record.
fn pending_question(sandbox: &Sandbox, run: &mut Child) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let listed = sandbox.host(&["approvals", "--json"]);
        assert_eq!(listed.code, 0, "{}{}", listed.stdout, listed.stderr);
        let all = listed.json();
        if let Some(q) = all
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["playbook"] == PLAYBOOK && a["state"] == "pending")
        {
            return q.clone();
        }
        if let Some(status) = run.try_wait().unwrap() {
            let mut out = String::new();
            std::io::Read::read_to_string(run.stdout.as_mut().unwrap(), &mut out).unwrap();
            panic!("the run ended ({status}) before asking: {out}\nlisted: {all:#}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no question after 60 s: {all:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn python_playbook_asks_and_branches_on_the_answer() {
    let test = "python_playbook_asks_and_branches_on_the_answer";
    let wasm = match guests::python_guest(PLAYBOOK) {
        Ok(wasm) => wasm,
        Err(reason) => return guests::skipped(test, Lang::Python, &reason),
    };
    let sandbox = Sandbox::new();
    let plugins = sandbox.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(&wasm, plugins.join(format!("{PLAYBOOK}.wasm"))).unwrap();
    let me = login_name();
    sandbox.write(
        "host.toml",
        format!(
            r#"plugin-dirs = ["plugins"]

[approvers.oncall]
users = ["{me}"]

[approvers.hasty]
users = ["{me}"]
max-wait-secs = 1

[plugins.{PLAYBOOK}.grants]
approval = ["oncall", "hasty"]
"#
        ),
    );

    // Approved from another process: resolved, and the action the approval allowed.
    let mut run = start_run(&sandbox, &[]);
    let question = pending_question(&sandbox, &mut run);
    assert_eq!(question["title"], "Restart web-1?", "{question:#}");
    assert_eq!(question["actions"], serde_json::json!(["restart web-1"]));
    let run_id = question["run_id"].as_str().unwrap().to_string();
    let approve = sandbox.host(&["approve", &run_id]);
    assert_eq!(approve.code, 0, "{}{}", approve.stdout, approve.stderr);
    let done = finish(run);
    assert_eq!(done["status"], "resolved", "{done:#}");
    assert_eq!(done["summary"], format!("approved by cli:{me}"), "{done:#}");
    assert_eq!(done["actions"], serde_json::json!(["acted"]), "{done:#}");

    // Rejected with a reason: the playbook's no-action branch carries it.
    let mut run = start_run(&sandbox, &["title=Pause db-1?"]);
    let question = pending_question(&sandbox, &mut run);
    assert_eq!(question["title"], "Pause db-1?", "{question:#}");
    let run_id = question["run_id"].as_str().unwrap().to_string();
    let reject = sandbox.host(&[
        "approve",
        &run_id,
        "--reject",
        "--reason",
        "not during the sale",
    ]);
    assert_eq!(reject.code, 0, "{}{}", reject.stdout, reject.stderr);
    let done = finish(run);
    assert_eq!(done["status"], "no-action", "{done:#}");
    assert_eq!(
        done["summary"],
        format!("rejected by cli:{me}: not during the sale"),
        "{done:#}"
    );

    // Nobody answers: the playbook asked for 10 minutes, the group allows 1 s; its fallback.
    let started = Instant::now();
    let done = finish(start_run(&sandbox, &["group=hasty", "timeout=600"]));
    assert_eq!(done["status"], "escalated", "{done:#}");
    assert_eq!(
        done["summary"], "expired: nobody answered; escalating",
        "{done:#}"
    );
    // 600 s asked, so an end this soon is the group's cap at work.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let pending = sandbox.host(&["approvals", "--json"]).json();
    assert_eq!(pending, serde_json::json!([]), "nothing is left waiting");
}
