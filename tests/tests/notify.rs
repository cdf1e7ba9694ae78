//! Notification delivery end to end: the real host binary sends disk-full's summary to local
//! stand-ins that speak Slack's, Telegram's, PagerDuty's and a webhook's exact API, scripted to
//! rate-limit, fail and refuse; a real SMTP server (aiosmtpd) receives e-mail.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use runbook_tests::Sandbox;
use runbook_tests::server::Server;
use runbook_tests::sinks::{Api, Receiver, Reply, TELEGRAM_TOKEN};
use serde_json::Value;
use sha2::Sha256;

/// disk-full quickly, with a known outcome: nothing is above 99%.
const QUICK: &[&str] = &[
    "-p",
    "paths=",
    "-p",
    "backups=",
    "-p",
    "mounts=/",
    "-p",
    "warn-percent=99",
    "-p",
    "critical-percent=100",
];
const PD_KEY: &str = "0123456789abcdef0123456789abcdef";

/// Fast retries so scripted failures take milliseconds, not the default seconds.
const FAST: &str = "[notify.ops.delivery]\nretry-base-ms = 50\nmin-interval-ms = 0\n";

fn run_disk_full(sandbox: &Sandbox, extra: &[&str], env: &[(&str, &str)]) -> Value {
    let mut args = vec!["run", "disk-full", "--json"];
    args.extend_from_slice(QUICK);
    args.extend_from_slice(extra);
    let run = sandbox.host_env(&args, env);
    assert!(
        run.code == 0 || run.code == 3,
        "exit {}:\n{}",
        run.code,
        run.stderr
    );
    run.json()
}

fn deliveries(doc: &Value) -> Vec<Value> {
    doc["deliveries"].as_array().cloned().unwrap_or_default()
}

#[test]
fn slack_gets_the_message_exactly_once_after_429_and_500() {
    let slack = Receiver::start(Api::Slack);
    slack.script([
        Reply::too_many_requests(Api::Slack, 1),
        Reply::new(500, "rollup_error"),
    ]);
    let sandbox = Sandbox::new();
    sandbox.write(
        "host.toml",
        format!("[notify.ops]\nkind = \"slack\"\nwebhook-url = {{ env = \"SLACK_URL\" }}\n{FAST}"),
    );
    let hook = slack.url("/services/T000/B000/XXXX");
    let doc = run_disk_full(&sandbox, &[], &[("SLACK_URL", &hook)]);

    let d = deliveries(&doc);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["state"], "delivered", "{d:?}");
    assert_eq!(d[0]["attempts"], 3);
    assert_eq!(d[0]["kind"], "slack");
    let requests = slack.requests();
    assert_eq!(
        requests.iter().map(|r| r.status).collect::<Vec<_>>(),
        [429, 500, 200]
    );
    assert_eq!(slack.accepted().len(), 1, "exactly once");
    // Retry-After: 1 was honoured; the 500 was retried after the short backoff.
    assert!(requests[1].at - requests[0].at >= Duration::from_millis(950));
    // The same message each time, in Slack's shape.
    assert!(requests.iter().all(|r| r.body == requests[0].body));
    let body = requests[2].json();
    assert_eq!(requests[2].path, "/services/T000/B000/XXXX");
    assert_eq!(body["blocks"][0]["type"], "header");
    assert!(
        body["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Disk usage fine: "),
        "{body}"
    );
    let fields: Vec<&str> = body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["fields"].as_array().into_iter().flatten())
        .filter_map(|f| f["text"].as_str())
        .collect();
    assert!(
        fields.iter().any(|f| f.starts_with("*Severity*")),
        "{fields:?}"
    );
    assert!(fields.iter().any(|f| f.starts_with("*/*")), "{fields:?}");

    // The timeline shows the notification queued; `runs show` shows it delivered.
    let events = doc["timeline"].as_array().unwrap();
    let note = events
        .iter()
        .find(|e| e["event"] == "notification")
        .unwrap();
    assert_eq!(note["state"], "queued");
    let shown = sandbox.host(&["runs", "show", doc["run_id"].as_str().unwrap()]);
    assert!(
        shown.stdout.contains("ops (slack)") && shown.stdout.contains("delivered after 3 tries"),
        "{}",
        shown.stdout
    );
}

#[test]
fn a_400_fails_for_good_with_the_sinks_reason_and_is_not_retried() {
    let slack = Receiver::start(Api::Slack);
    slack.script([Reply::new(400, "invalid_payload")]);
    let sandbox = Sandbox::new();
    sandbox.write(
        "host.toml",
        format!("[notify.ops]\nkind = \"slack\"\nwebhook-url = {{ env = \"SLACK_URL\" }}\n{FAST}"),
    );
    let hook = slack.url("/services/x");
    let doc = run_disk_full(&sandbox, &[], &[("SLACK_URL", &hook)]);
    let d = deliveries(&doc);
    assert_eq!(d[0]["state"], "failed");
    assert_eq!(d[0]["last_error"], "HTTP 400: invalid_payload");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(slack.requests().len(), 1, "a 400 is not retried");
    let listed = sandbox.host(&["notify", "list", "--state", "failed"]);
    assert!(
        listed.stdout.contains("invalid_payload"),
        "{}",
        listed.stdout
    );
}

#[test]
fn telegram_send_message_shape_and_retry_after_in_the_body() {
    let telegram = Receiver::start(Api::Telegram);
    telegram.script([Reply::too_many_requests(Api::Telegram, 1)]);
    let sandbox = Sandbox::new();
    sandbox.write(
        "host.toml",
        format!(
            "[notify.ops]\nkind = \"telegram\"\nbot-token = {{ env = \"TG_TOKEN\" }}\nchat-id = \"-1001\"\nbase-url = \"{}\"\n{FAST}",
            telegram.url("")
        ),
    );
    let doc = run_disk_full(&sandbox, &[], &[("TG_TOKEN", TELEGRAM_TOKEN)]);
    assert_eq!(deliveries(&doc)[0]["state"], "delivered", "{doc:#}");
    let requests = telegram.requests();
    assert_eq!(
        requests.iter().map(|r| r.status).collect::<Vec<_>>(),
        [429, 200]
    );
    assert!(requests[1].at - requests[0].at >= Duration::from_millis(950));
    let body = requests[1].json();
    assert_eq!(
        requests[1].path,
        format!("/bot{TELEGRAM_TOKEN}/sendMessage")
    );
    assert_eq!(body["chat_id"], "-1001");
    assert_eq!(body["parse_mode"], "HTML");
    assert!(body["text"].as_str().unwrap().contains("<b>"), "{body}");

    // A chat that does not exist: 400 with Telegram's description, kept as the reason.
    sandbox.write(
        "host.toml",
        format!(
            "[notify.ops]\nkind = \"telegram\"\nbot-token = {{ env = \"TG_TOKEN\" }}\nchat-id = \"-100404\"\nbase-url = \"{}\"\n{FAST}",
            telegram.url("")
        ),
    );
    let doc = run_disk_full(&sandbox, &[], &[("TG_TOKEN", TELEGRAM_TOKEN)]);
    assert_eq!(
        deliveries(&doc)[0]["last_error"],
        "HTTP 400: Bad Request: chat not found"
    );
}

#[test]
fn pagerduty_trigger_then_resolve_share_one_dedup_key() {
    let pd = Receiver::start(Api::PagerDuty);
    let sandbox = Sandbox::new();
    sandbox.write(
        "host.toml",
        format!(
            "[notify.ops]\nkind = \"pagerduty\"\nrouting-key = {{ env = \"PD_KEY\" }}\nbase-url = \"{}\"\n{FAST}\n\
             [webhooks.alertmanager]\nauth = {{ kind = \"none\" }}\n\
             [[route]]\nmatchers = ['alertname=\"DiskFull\"']\nplaybook = \"disk-full\"\n\
             params = {{ paths = \"\", backups = \"\", mounts = \"/\", warn-percent = \"1\", critical-percent = \"100\" }}\n",
            pd.url("")
        ),
    );
    let server = Server::start(&sandbox, &[("PD_KEY", PD_KEY)]);
    let alert = |status: &str| {
        serde_json::json!({
            "version": "4", "status": status, "receiver": "runbook",
            "alerts": [{
                "status": status,
                "labels": {"alertname": "DiskFull", "instance": "web-1"},
                "annotations": {},
                "startsAt": "2026-11-25T10:00:00Z",
                "fingerprint": "f00dfeed12345678"
            }]
        })
        .to_string()
    };
    let json = [("content-type", "application/json")];
    let reply = server.post("/hooks/alertmanager", &json, alert("firing").as_bytes());
    assert_eq!(reply.status, 202, "{}", reply.body);
    let trigger = pd.wait_accepted(1, Duration::from_secs(30))[0].json();
    let reply = server.post("/hooks/alertmanager", &json, alert("resolved").as_bytes());
    assert_eq!(reply.status, 202, "{}", reply.body);
    let accepted = pd.wait_accepted(2, Duration::from_secs(30));
    let resolve = accepted[1].json();

    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["routing_key"], PD_KEY);
    assert_eq!(trigger["dedup_key"], "runbook-f00dfeed12345678");
    assert_eq!(trigger["payload"]["severity"], "warning");
    assert_eq!(trigger["payload"]["component"], "disk-full");
    assert_eq!(trigger["payload"]["group"], "DiskFull");
    assert!(
        trigger["payload"]["custom_details"]["/"].is_string(),
        "{trigger}"
    );
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
    assert_eq!(pd.requests().len(), 2, "nothing sent twice");
}

#[test]
fn a_host_stopped_with_messages_pending_delivers_them_when_started_again() {
    let slack = Receiver::start(Api::Slack);
    // Down for both runs: every attempt within their short wait gets 503.
    slack.script((0..200).map(|_| Reply::new(503, "service_unavailable")));
    let sandbox = Sandbox::new();
    sandbox.write(
        "host.toml",
        "[notify.ops]\nkind = \"slack\"\nwebhook-url = { env = \"SLACK_URL\" }\n\
         [notify.ops.delivery]\nretry-base-ms = 100\nretry-max-secs = 1\nmax-attempts = 1000\n",
    );
    let hook = slack.url("/services/x");
    let env = [("SLACK_URL", hook.as_str())];
    let mut titles = Vec::new();
    for _ in 0..2 {
        let doc = run_disk_full(&sandbox, &["--notify-wait", "1"], &env);
        let d = deliveries(&doc);
        assert_eq!(d[0]["state"], "pending", "{d:?}");
        titles.push(d[0]["id"].as_i64().unwrap());
    }
    let human = sandbox.host_env(
        &[&["run", "disk-full", "--notify-wait", "0"][..], QUICK].concat(),
        &env,
    );
    assert!(human.stdout.contains("still pending"), "{}", human.stdout);
    assert_eq!(slack.accepted().len(), 0);

    // Slack is back; a new host delivers all three, in order, once each, one per second.
    slack.clear_script();
    let server = Server::start(&sandbox, &env);
    let accepted = slack.wait_accepted(3, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(slack.accepted().len(), 3, "no duplicate");
    for pair in accepted.windows(2) {
        assert!(
            pair[1].at - pair[0].at >= Duration::from_millis(900),
            "Slack's channel is rate limited to about one message a second"
        );
    }
    drop(server);
    let flush = sandbox.host_env(&["notify", "flush", "--wait", "5"], &env);
    assert_eq!(flush.code, 0, "{}{}", flush.stdout, flush.stderr);
    assert!(flush.stdout.contains("nothing pending"));
    let listed = sandbox.host(&["notify", "list", "--json"]);
    let rows: Value = serde_json::from_str(&listed.stdout).unwrap();
    let ids: Vec<i64> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] == "delivered")
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(titles.iter().all(|id| ids.contains(id)));
}

#[test]
fn webhooks_are_signed_the_standard_webhooks_way() {
    let hook = Receiver::start(Api::Webhook);
    let sandbox = Sandbox::new();
    // whsec_ + base64("notify-signing-key")
    let secret = "whsec_bm90aWZ5LXNpZ25pbmcta2V5";
    sandbox.write(
        "host.toml",
        format!(
            "[notify.ops]\nkind = \"webhook\"\nurl = \"{}\"\nsigning-secret = {{ env = \"WHSEC\" }}\nheaders = {{ x-team = \"sre\" }}\n{FAST}",
            hook.url("/incoming")
        ),
    );
    let doc = run_disk_full(&sandbox, &[], &[("WHSEC", secret)]);
    assert_eq!(deliveries(&doc)[0]["state"], "delivered");
    let request = &hook.accepted()[0];
    let (id, ts, sig) = (
        request.header("webhook-id").unwrap(),
        request.header("webhook-timestamp").unwrap(),
        request.header("webhook-signature").unwrap(),
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(b"notify-signing-key").unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&request.body);
    assert_eq!(
        sig,
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    );
    assert_eq!(request.header("x-team"), Some("sre"));
    let body = request.json();
    assert_eq!(body["type"], "runbook.notification");
    assert_eq!(body["playbook"], "disk-full");
    assert_eq!(body["run_id"], doc["run_id"]);
}

#[test]
fn file_channel_appends_json_lines_and_test_sends_one() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "host.toml",
        "[notify.ops]\nkind = \"file\"\npath = \"notify.jsonl\"\n",
    );
    run_disk_full(&sandbox, &[], &[]);
    let test = sandbox.host(&["notify", "test", "ops"]);
    assert_eq!(test.code, 0, "{}{}", test.stdout, test.stderr);
    assert!(test.stdout.contains("delivered"), "{}", test.stdout);
    let lines: Vec<Value> = std::fs::read_to_string(sandbox.path().join("notify.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["playbook"], "disk-full");
    assert_eq!(lines[1]["title"], "Test notification from runbook-host");
}

#[test]
fn a_channel_with_a_missing_secret_is_reported_and_keeps_its_messages() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "host.toml",
        "[notify.ops]\nkind = \"slack\"\nwebhook-url = { env = \"NOT_SET_ANYWHERE\" }\n",
    );
    let test = sandbox.host(&["notify", "test", "ops"]);
    assert_eq!(test.code, 2, "{}", test.stderr);
    assert!(
        test.stderr.contains("NOT_SET_ANYWHERE is not set"),
        "{}",
        test.stderr
    );
    let check = sandbox.host(&["check"]);
    assert_eq!(check.code, 1);
    assert!(check.stdout.contains("[notify.ops]") || check.stderr.contains("[notify.ops]"));
    // A run still queues its message: nothing is lost while the operator fixes the secret.
    let doc = run_disk_full(&sandbox, &["--notify-wait", "0"], &[]);
    assert_eq!(deliveries(&doc)[0]["state"], "pending");
    // The server says so too: one message waiting on ops.
    sandbox.write_append("host.toml", "[webhooks.api]\nauth = { kind = \"none\" }\n");
    let server = Server::start(&sandbox, &[]);
    let metrics = server.get("/metrics").body;
    assert!(
        metrics.contains(r#"runbook_notifications_pending{channel="ops"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"runbook_notifications_pending{channel="stdout"} 0"#));
}

#[test]
fn email_reaches_a_real_smtp_server() {
    let smtp = runbook_tests::smtp::SmtpServer::start().expect("SMTP server");
    let sandbox = Sandbox::new();
    sandbox.write(
        "host.toml",
        format!(
            "[notify.ops]\nkind = \"email\"\nsmtp-host = \"127.0.0.1\"\nsmtp-port = {}\ntls = \"none\"\n\
             from = \"runbook@example.org\"\nto = [\"oncall@example.org\"]\n{FAST}\n\
             [notify.bad]\nkind = \"email\"\nsmtp-host = \"127.0.0.1\"\nsmtp-port = {}\ntls = \"none\"\n\
             from = \"runbook@example.org\"\nto = [\"reject@example.org\"]\n",
            smtp.port, smtp.port
        ),
    );
    let doc = run_disk_full(&sandbox, &[], &[]);
    assert_eq!(deliveries(&doc)[0]["state"], "delivered", "{doc:#}");
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("To: oncall@example.org"), "{}", mails[0]);
    assert!(
        mails[0].contains("Subject: [P3 INFO] Disk usage fine"),
        "{}",
        mails[0]
    );
    assert!(mails[0].contains("playbook disk-full"), "{}", mails[0]);

    // 550 from the server is permanent: failed at once with the server's words.
    let test = sandbox.host(&["notify", "test", "bad", "--wait", "10"]);
    assert_eq!(test.code, 1);
    assert!(test.stdout.contains("failed"), "{}", test.stdout);
    assert!(test.stdout.contains("550"), "{}", test.stdout);
}

/// Each built-in playbook's message, through each network kind, is accepted by the stand-in
/// that checks the real API's rules (Slack blocks, Telegram HTML entities and length, PagerDuty
/// fields). `RUNBOOK_SHOW_BODIES=1` prints the bodies.
#[test]
fn builtin_playbooks_render_in_every_kind() {
    let dead_port = runbook_tests::docker::free_port();
    let dead_url = format!("http://127.0.0.1:{dead_port}/");
    let logs = tempfile::tempdir().unwrap();
    let auth = logs.path().join("auth.log");
    std::fs::write(
        &auth,
        (0..6)
            .map(|i| format!("Nov 25 10:00:0{i} web-1 sshd[{i}]: Failed password for root from 203.0.113.7 port 2{i} ssh2 <&>\n"))
            .collect::<String>(),
    )
    .unwrap();
    let logs_param = format!("logs={}", auth.display());
    let runs: [Vec<&str>; 4] = [
        [&["run", "disk-full"][..], QUICK].concat(),
        vec!["run", "bot-down", "-p", "container=rb5-no-such-bot"],
        vec!["run", "web-down", "-p", &dead_url],
        vec![
            "run",
            "security",
            "-p",
            &logs_param,
            "-p",
            "channel=ops",
            "--severity",
            "P1",
        ],
    ];
    let web_param = format!("url={dead_url}");
    for api in [Api::Slack, Api::Telegram, Api::PagerDuty, Api::Webhook] {
        let receiver = Receiver::start(api);
        let sandbox = Sandbox::new();
        let channel = match api {
            Api::Slack => "kind = \"slack\"\nwebhook-url = { env = \"SECRET\" }".to_string(),
            Api::Telegram => format!(
                "kind = \"telegram\"\nbot-token = {{ env = \"SECRET\" }}\nchat-id = \"42\"\nbase-url = \"{}\"",
                receiver.url("")
            ),
            Api::PagerDuty => format!(
                "kind = \"pagerduty\"\nrouting-key = {{ env = \"SECRET\" }}\nbase-url = \"{}\"",
                receiver.url("")
            ),
            Api::Webhook => format!("kind = \"webhook\"\nurl = \"{}\"", receiver.url("/in")),
        };
        sandbox.write(
            "host.toml",
            format!(
                "[notify.ops]\n{channel}\n{FAST}\n[plugins.web-down.grants]\nhttp = [\"http://127.0.0.1:*\"]\nnotify = [\"ops\"]\n\
                 [plugins.security.grants]\nfs-read = [\"{}\"]\nnotify = [\"ops\"]\n",
                logs.path().display()
            ),
        );
        let secret = match api {
            Api::Slack => receiver.url("/services/T/B/X"),
            Api::Telegram => TELEGRAM_TOKEN.to_string(),
            _ => PD_KEY.to_string(),
        };
        for args in &runs {
            let args: Vec<&str> = args
                .iter()
                .map(|a| {
                    if *a == dead_url {
                        web_param.as_str()
                    } else {
                        a
                    }
                })
                .collect();
            let run = sandbox.host_env(&args, &[("SECRET", secret.as_str())]);
            assert!(
                run.stdout.contains("delivered after 1 try"),
                "{api:?} {args:?}:\n{}\n{}",
                run.stdout,
                run.stderr
            );
        }
        let accepted = receiver.accepted();
        assert_eq!(accepted.len(), 4, "{api:?}");
        if std::env::var_os("RUNBOOK_SHOW_BODIES").is_some() {
            for request in &accepted {
                eprintln!("--- {api:?}\n{:#}", request.json());
            }
        }
    }
}
