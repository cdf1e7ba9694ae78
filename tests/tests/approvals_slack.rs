//! Approval questions answered in Slack, end to end: a real `host serve` posts the `asks`
//! guest's question as Block Kit buttons to a Slack stand-in; clicks come back to
//! `POST /hooks/slack/interactive` as Slack sends them (form-encoded `payload`, signed v0
//! with the app's signing secret). Only a correctly signed, fresh click from a listed user
//! decides, and only when the app that signed it is the one that carried the question to its
//! group; the clicker's message is replaced (or answered ephemerally) via `response_url`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use runbook_tests::Sandbox;
use runbook_tests::server::Server;
use runbook_tests::sinks::{Api, Receiver, Request, SLACK_RESPONSE_PATH};
use serde_json::{Value, json};
use sha2::Sha256;

const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
/// The signing secret of a second Slack app (`slack-b`), the channel of another group.
const OTHER_SECRET: &str = "0b0e0f00another0slack0app0secret";
const RUN_TOKEN: &str = "run-token-for-approvals";
const WAIT: Duration = Duration::from_secs(60);

struct Fixture {
    _sandbox: Sandbox,
    server: Server,
    slack: Receiver,
}

const CONFIG: &str = r#"plugin-dirs = ["plugins"]

[plugins.asks.grants]
approval = ["oncall", "others"]

[approvers.oncall]
channels = ["slack"]
slack = ["U111"]

[notify.slack]
kind = "slack"
webhook-url = { env = "SLACK_URL" }
signing-secret = { env = "SLACK_SIGNING_SECRET" }

[notify.slack.delivery]
min-interval-ms = 0

[webhooks.run]
auth = { kind = "bearer", token = { env = "RUN_TOKEN" } }
"#;

/// A second Slack app (its own signing secret) posting for another group that U111 is in too.
const SECOND_APP: &str = r#"
[approvers.others]
channels = ["slack-b"]
slack = ["U111"]

[notify.slack-b]
kind = "slack"
webhook-url = { env = "SLACK_B_URL" }
signing-secret = { env = "SLACK_B_SIGNING_SECRET" }
"#;

fn start() -> Fixture {
    start_with(CONFIG)
}

fn start_with(config: &str) -> Fixture {
    let slack = Receiver::start(Api::Slack);
    let sandbox = Sandbox::new();
    sandbox.add_plugin("asks");
    sandbox.write("host.toml", config);
    let hook = slack.url("/services/T000/B000/XXXX");
    let other_hook = slack.url("/services/T000/B999/YYYY");
    let server = Server::start(
        &sandbox,
        &[
            ("SLACK_URL", &hook),
            ("SLACK_SIGNING_SECRET", SIGNING_SECRET),
            ("SLACK_B_URL", &other_hook),
            ("SLACK_B_SIGNING_SECRET", OTHER_SECRET),
            ("RUN_TOKEN", RUN_TOKEN),
        ],
    );
    Fixture {
        _sandbox: sandbox,
        server,
        slack,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// `application/x-www-form-urlencoded` value encoding.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A `block_actions` interaction as Slack posts it when `user` clicks `action` on a question.
fn click_body(
    fx: &Fixture,
    approval: &str,
    action: &str,
    user: &str,
    name: &str,
    tag: &str,
) -> Vec<u8> {
    let payload = json!({
        "type": "block_actions",
        "user": {"id": user, "username": name, "name": name, "team_id": "T000"},
        "api_app_id": "A000",
        "container": {"type": "message", "is_ephemeral": false},
        "trigger_id": "1.2.3",
        "team": {"id": "T000", "domain": "example"},
        "response_url": fx.slack.url(&format!("{SLACK_RESPONSE_PATH}T000/{tag}/x")),
        "actions": [{
            "type": "button", "block_id": "approval", "action_id": action,
            "value": approval, "text": {"type": "plain_text", "text": action},
            "action_ts": "1700000000.000100",
        }],
    });
    format!("payload={}", form_encode(&payload.to_string())).into_bytes()
}

fn post_click(fx: &Fixture, body: &[u8], timestamp: Option<u64>, signature: Option<&str>) -> u16 {
    let ts = timestamp.map(|t| t.to_string());
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if let Some(ts) = &ts {
        headers.push(("X-Slack-Request-Timestamp", ts));
    }
    if let Some(sig) = signature {
        headers.push(("X-Slack-Signature", sig));
    }
    fx.server
        .post("/hooks/slack/interactive", &headers, body)
        .status
}

fn signed_click(fx: &Fixture, body: &[u8]) -> u16 {
    signed_click_by(fx, SIGNING_SECRET, body)
}

fn signed_click_by(fx: &Fixture, secret: &str, body: &[u8]) -> u16 {
    let ts = now();
    post_click(
        fx,
        body,
        Some(ts),
        Some(signature(secret, ts, body).as_str()),
    )
}

/// Starts an `asks` run and returns it with its pending approval (once posted to Slack).
fn ask(fx: &Fixture, title: &str) -> (String, Value) {
    ask_group(fx, title, "oncall")
}

fn ask_group(fx: &Fixture, title: &str, group: &str) -> (String, Value) {
    let body = json!({"title": title, "timeout": "120", "group": group}).to_string();
    let run = fx
        .server
        .submit_run("/hooks/run/asks", RUN_TOKEN, body.as_bytes());
    let deadline = Instant::now() + WAIT;
    loop {
        let approvals = fx.server.get(&format!("/approvals?run={run}")).json();
        if let Some(a) = approvals.as_array().and_then(|a| a.first())
            && a["messages"].as_array().is_some_and(|m| !m.is_empty())
        {
            return (run, a.clone());
        }
        assert!(
            Instant::now() < deadline,
            "run {run} never asked: {approvals}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn approval_state(fx: &Fixture, run: &str) -> Value {
    fx.server.get(&format!("/approvals?run={run}")).json()[0].clone()
}

fn responses(fx: &Fixture, tag: &str) -> Vec<Request> {
    fx.slack
        .accepted()
        .into_iter()
        .filter(|r| {
            r.path
                .starts_with(&format!("{SLACK_RESPONSE_PATH}T000/{tag}/"))
        })
        .collect()
}

#[test]
fn slack_clicks_decide_only_when_signed_fresh_and_from_a_listed_user() {
    let fx = start();

    // The question went to the incoming webhook with Approve/Reject buttons.
    let (run, approval) = ask(&fx, "Restart web-1?");
    let id = approval["id"].as_str().unwrap().to_string();
    assert_eq!(approval["messages"][0]["kind"], "slack", "{approval}");
    let question = fx
        .slack
        .wait_for(WAIT, |r| {
            r.path.starts_with("/services/") && r.body.windows(id.len()).any(|w| w == id.as_bytes())
        })
        .json();
    let buttons = question["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .unwrap_or_else(|| panic!("no buttons: {question}"))["elements"]
        .clone();
    assert_eq!(buttons[0]["action_id"], "approve");
    assert_eq!(buttons[0]["value"], id.as_str());
    assert_eq!(buttons[0]["style"], "primary");
    assert_eq!(buttons[1]["action_id"], "reject");
    assert_eq!(buttons[1]["style"], "danger");

    // Refused at the door, the question untouched: forged signature, a 6-minute-old (but
    // correctly signed) click, no headers at all.
    let approve = click_body(&fx, &id, "approve", "U111", "alice", "a1");
    let ts = now();
    assert_eq!(
        post_click(
            &fx,
            &approve,
            Some(ts),
            Some(signature("not-the-secret", ts, &approve).as_str())
        ),
        401,
        "forged signature"
    );
    let old = now() - 6 * 60;
    assert_eq!(
        post_click(
            &fx,
            &approve,
            Some(old),
            Some(signature(SIGNING_SECRET, old, &approve).as_str())
        ),
        401,
        "stale timestamp"
    );
    assert_eq!(post_click(&fx, &approve, None, None), 401, "no headers");
    assert_eq!(
        post_click(
            &fx,
            &approve,
            None,
            Some(signature(SIGNING_SECRET, ts, &approve).as_str())
        ),
        401,
        "no timestamp"
    );
    // A valid signature over another body does not carry over to this one.
    let other = click_body(&fx, &id, "reject", "U111", "alice", "a1");
    assert_eq!(
        post_click(
            &fx,
            &approve,
            Some(ts),
            Some(signature(SIGNING_SECRET, ts, &other).as_str())
        ),
        401,
        "signature of another body"
    );

    // U222 is not on the list: a signed click changes nothing; only they hear why.
    assert_eq!(
        signed_click(
            &fx,
            &click_body(&fx, &id, "approve", "U222", "mallory", "m1")
        ),
        200
    );
    let refusal = fx
        .slack
        .wait_for(WAIT, |r| {
            r.path
                .starts_with(&format!("{SLACK_RESPONSE_PATH}T000/m1/"))
        })
        .json();
    assert_eq!(refusal["response_type"], "ephemeral", "{refusal}");
    assert_eq!(refusal["replace_original"], false, "{refusal}");
    assert!(
        refusal["text"]
            .as_str()
            .unwrap()
            .contains("slack:U222 (mallory) is not on the approvers list"),
        "{refusal}"
    );
    assert!(
        responses(&fx, "a1").is_empty(),
        "a refused call reached response_url"
    );
    assert_eq!(approval_state(&fx, &run)["state"], "pending");
    assert_eq!(
        fx.server.get(&format!("/runs/{run}")).json()["status"],
        "waiting-approval"
    );

    // U111's signed approve decides it: the run acts, the clicker's message is replaced.
    assert_eq!(signed_click(&fx, &approve), 200);
    let done = fx.server.wait_for_run(&run, WAIT);
    assert_eq!(done["status"], "resolved", "{done}");
    assert!(
        done.to_string().contains("approved by slack:U111 (alice)"),
        "{done}"
    );
    let replaced = fx
        .slack
        .wait_for(WAIT, |r| {
            r.path
                .starts_with(&format!("{SLACK_RESPONSE_PATH}T000/a1/"))
        })
        .json();
    assert_eq!(replaced["replace_original"], true, "{replaced}");
    assert!(
        replaced
            .to_string()
            .contains("Approved by slack:U111 (alice)"),
        "{replaced}"
    );
    assert!(
        !replaced["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["type"] == "actions"),
        "the buttons stay: {replaced}"
    );
    let recorded = approval_state(&fx, &run);
    assert_eq!(recorded["answered_via"], "slack", "{recorded}");

    // A second click on the decided question: nothing changes, the clicker is told.
    assert_eq!(
        signed_click(&fx, &click_body(&fx, &id, "reject", "U111", "alice", "a2")),
        200
    );
    let late = fx
        .slack
        .wait_for(WAIT, |r| {
            r.path
                .starts_with(&format!("{SLACK_RESPONSE_PATH}T000/a2/"))
        })
        .json();
    assert!(
        late["text"].as_str().unwrap().contains("Already decided"),
        "{late}"
    );
    assert_eq!(approval_state(&fx, &run)["state"], "approved");
    // One audit event for the one click that decided: not for the refused nor the late one.
    let audit = fx._sandbox.host(&["audit", "--json"]).json();
    let answered: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["act"] == "approval-answered")
        .collect();
    assert_eq!(answered.len(), 1, "{audit}");
    assert_eq!(answered[0]["target"], id.as_str(), "{audit}");
    assert_eq!(answered[0]["actor"], "slack:U111 (alice)", "{audit}");
    assert_eq!(answered[0]["proof"], "slack-signature", "{audit}");
    assert_eq!(answered[0]["detail"], "approved", "{audit}");

    // A signed reject: no action, with the reason.
    let (run, approval) = ask(&fx, "Pause db-1?");
    let id = approval["id"].as_str().unwrap();
    assert_eq!(
        signed_click(&fx, &click_body(&fx, id, "reject", "U111", "alice", "r1")),
        200
    );
    let done = fx.server.wait_for_run(&run, WAIT);
    assert_eq!(done["status"], "no-action", "{done}");
    assert!(
        done.to_string()
            .contains("rejected by slack:U111 (alice): rejected in Slack"),
        "{done}"
    );
    let replaced = fx
        .slack
        .wait_for(WAIT, |r| {
            r.path
                .starts_with(&format!("{SLACK_RESPONSE_PATH}T000/r1/"))
        })
        .json();
    assert!(
        replaced
            .to_string()
            .contains("Rejected by slack:U111 (alice)"),
        "{replaced}"
    );
}

#[test]
fn a_click_counts_only_when_signed_by_the_app_that_carried_the_question() {
    let fx = start_with(&format!("{CONFIG}{SECOND_APP}"));
    let (run, approval) = ask(&fx, "Restart web-2?");
    let id = approval["id"].as_str().unwrap().to_string();
    let posted: Vec<&str> = approval["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["channel"].as_str())
        .collect();
    assert_eq!(posted, ["slack"], "{approval}");

    // Signed by the other app (a channel of another group U111 is in, and one that never
    // carried this question): acknowledged, nothing recorded, only the clicker hears why.
    let forged = click_body(&fx, &id, "approve", "U111", "alice", "o1");
    assert_eq!(signed_click_by(&fx, OTHER_SECRET, &forged), 200);
    let refusal = fx
        .slack
        .wait_for(WAIT, |r| {
            r.path
                .starts_with(&format!("{SLACK_RESPONSE_PATH}T000/o1/"))
        })
        .json();
    assert_eq!(refusal["response_type"], "ephemeral", "{refusal}");
    assert!(
        refusal["text"]
            .as_str()
            .unwrap()
            .contains("not posted to group \"oncall\" through the slack channel"),
        "{refusal}"
    );
    assert_eq!(approval_state(&fx, &run)["state"], "pending");
    assert_eq!(
        fx.server.get(&format!("/runs/{run}")).json()["status"],
        "waiting-approval"
    );

    // The other app's own question is answered through it (its positive control)…
    let (other_run, other) = ask_group(&fx, "Restart db-2?", "others");
    let other_id = other["id"].as_str().unwrap();
    assert_eq!(other["messages"][0]["channel"], "slack-b", "{other}");
    // …and not through the first app.
    assert_eq!(
        signed_click(
            &fx,
            &click_body(&fx, other_id, "approve", "U111", "alice", "o2")
        ),
        200
    );
    fx.slack.wait_for(WAIT, |r| {
        r.path
            .starts_with(&format!("{SLACK_RESPONSE_PATH}T000/o2/"))
    });
    assert_eq!(approval_state(&fx, &other_run)["state"], "pending");
    assert_eq!(
        signed_click_by(
            &fx,
            OTHER_SECRET,
            &click_body(&fx, other_id, "approve", "U111", "alice", "o3")
        ),
        200
    );
    let done = fx.server.wait_for_run(&other_run, WAIT);
    assert_eq!(done["status"], "resolved", "{done}");

    // Positive control: the app that carried it decides it.
    assert_eq!(
        signed_click(&fx, &click_body(&fx, &id, "approve", "U111", "alice", "a1")),
        200
    );
    let done = fx.server.wait_for_run(&run, WAIT);
    assert_eq!(done["status"], "resolved", "{done}");
    assert!(
        done.to_string().contains("approved by slack:U111 (alice)"),
        "{done}"
    );
}
