//! The digest: `host digest` over a store seeded with known runs gives the hand-computed
//! figures as JSON and the seeds' end-of-day report / weekly summary as Markdown (a hostile
//! alert name stays text), refuses a bad `--since` with exit 2, and `--send` delivers it to
//! Telegram and Slack stand-ins (their requests are kept in docs/ for the README). The
//! scheduled `[digest]` is delivered once per period by two replicas on one PostgreSQL store.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use runbook_core::figures::SeededRun;
use runbook_tests::Sandbox;
use runbook_tests::server::Server;
use runbook_tests::sinks::{Api, Receiver, TELEGRAM_TOKEN};
use serde_json::{Value, json};

const HOSTILE: &str = "<script>alert(1)</script>";
const FAST: &str = "[notify.ops.delivery]\nretry-base-ms = 50\nmin-interval-ms = 0\n";

fn docs(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(name)
}

fn at(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Four runs of the last hour with known times (ms after acceptance `t0`):
/// a: hostile alert detected 10 s before, started +1 s, resolved +50 s;
/// b: no alert, started +2 s, failed +30 s;
/// c: DiskFull detected 5 s before, started +0.5 s, escalated +10 s;
/// d: no alert, started +1 s, still running.
fn known_runs() -> Vec<SeededRun> {
    let t0 = SystemTime::now() - Duration::from_secs(3600);
    let ms = |n: i64| {
        if n >= 0 {
            t0 + Duration::from_millis(n as u64)
        } else {
            t0 - Duration::from_millis(n.unsigned_abs())
        }
    };
    let run = |id: &str,
               playbook: &str,
               status: &str,
               alert: Option<(&str, i64)>,
               start: i64,
               end: Option<i64>| {
        SeededRun {
        id: id.into(),
        playbook: playbook.into(),
        status: status.into(),
        alert: alert.map(|(name, before)| json!({ "name": name, "labels": { "alertname": name }, "startsAt": at(ms(before)) })),
        node: None,
        started_at: at(t0),
        running_since: Some(at(ms(start))),
        first_action_at: None,
        ended_at: end.map(|e| at(ms(e))),
        actions: Vec::new(),
    }
    };
    vec![
        run(
            "a",
            "bot-restart",
            "resolved",
            Some((HOSTILE, -10_000)),
            1_000,
            Some(50_000),
        ),
        run("b", "bot-restart", "failed", None, 2_000, Some(30_000)),
        run(
            "c",
            "disk-full",
            "escalated",
            Some(("DiskFull", -5_000)),
            500,
            Some(10_000),
        ),
        run("d", "disk-full", "running", None, 1_000, None),
    ]
}

fn seed(store: &str, runs: Vec<SeededRun>) {
    let location = runbook_store::Location::parse(store);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = runbook_store::open(&location, None).await.unwrap();
        store.seed_runs(runs).await.unwrap();
    });
}

#[test]
fn host_digest_reports_known_runs_as_json_and_markdown_and_sends_them() {
    let sandbox = Sandbox::new();
    seed(&sandbox.store(), known_runs());

    let json_run = sandbox.host(&["digest", "--since", "24h", "--json"]);
    assert_eq!(json_run.code, 0, "{}", json_run.stderr);
    let doc: Value = serde_json::from_str(&json_run.stdout).unwrap();
    assert_eq!(doc["report"], "End of Day Report");
    let total = &doc["figures"]["total"];
    assert_eq!(total["runs"], 4);
    // to start: [1000, 2000, 5500, 11000] → ranks 2 and 4.
    assert_eq!(
        total["to_start"],
        json!({ "count": 4, "p50_ms": 2000, "p90_ms": 11000 })
    );
    // to outcome: [15000, 30000, 60000] → ranks 2 and 3; the running run has none.
    assert_eq!(
        total["to_outcome"],
        json!({ "count": 3, "p50_ms": 30000, "p90_ms": 60000 })
    );
    assert_eq!(
        (total["automatic"].as_u64(), total["escalated"].as_u64()),
        (Some(1), Some(1))
    );
    let rate = doc["error_rate_percent"].as_f64().unwrap();
    assert!(
        (rate - 100.0 / 3.0).abs() < 0.01,
        "1 failed of 3 ended: {rate}"
    );

    let md = sandbox.host(&["digest", "--since", "24h", "--markdown"]);
    assert_eq!(md.code, 0, "{}", md.stderr);
    for heading in [
        "# End of Day Report",
        "## Total runs processed",
        "## Error rate",
        "## Average response time",
        "## Usage peaks",
        "## Security events",
        "## Playbooks",
    ] {
        assert!(
            md.stdout.contains(heading),
            "{heading} missing:\n{}",
            md.stdout
        );
    }
    assert!(!md.stdout.contains(HOSTILE), "{}", md.stdout);
    assert!(
        md.stdout.contains("\\<script\\>alert(1)\\</script\\>"),
        "{}",
        md.stdout
    );
    std::fs::write(docs("digest-sample.md"), &md.stdout).unwrap();

    let week = sandbox.host(&["digest", "--since", "7d", "--markdown"]);
    assert!(
        week.stdout.contains("# Weekly Summary")
            && week.stdout.contains("## Issues encountered and resolved"),
        "{}",
        week.stdout
    );

    // A bad span: exit 2, a message saying what to give.
    let bad = sandbox.host(&["digest", "--since", "yesterday"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("--since") && bad.stderr.contains("24h"),
        "{}",
        bad.stderr
    );
    let zero = sandbox.host(&["digest", "--since", "0s"]);
    assert_eq!(zero.code, 2, "{}", zero.stderr);

    // Sent to Telegram and to Slack through the outbox, as the schedule sends it.
    let telegram = Receiver::start(Api::Telegram);
    let slack = Receiver::start(Api::Slack);
    sandbox.write(
        "host.toml",
        format!(
            "[notify.ops]\nkind = \"telegram\"\nbot-token = {{ env = \"TG_TOKEN\" }}\nchat-id = \"-1001\"\nbase-url = \"{}\"\n{FAST}\
             [notify.team]\nkind = \"slack\"\nwebhook-url = {{ env = \"SLACK_URL\" }}\n[notify.team.delivery]\nretry-base-ms = 50\nmin-interval-ms = 0\n",
            telegram.url("")
        ),
    );
    let hook = slack.url("/services/T0/B0/X");
    let env = [("TG_TOKEN", TELEGRAM_TOKEN), ("SLACK_URL", hook.as_str())];
    let sent = sandbox.host_env(&["digest", "--since", "24h", "--send", "ops"], &env);
    assert_eq!(sent.code, 0, "{}{}", sent.stdout, sent.stderr);
    let message = telegram.wait_for(Duration::from_secs(20), |r| {
        r.path.ends_with("/sendMessage")
    });
    let text = message.json()["text"].as_str().unwrap().to_string();
    assert!(text.contains("End of Day Report"), "{text}");
    assert!(!text.contains("<script>"), "{text}");
    std::fs::write(docs("digest-telegram.txt"), &text).unwrap();
    let sent = sandbox.host_env(&["digest", "--since", "24h", "--send", "team"], &env);
    assert_eq!(sent.code, 0, "{}{}", sent.stdout, sent.stderr);
    let posted = slack.wait_accepted(1, Duration::from_secs(20));
    let body = posted[0].json();
    assert!(body.to_string().contains("End of Day Report"), "{body}");
    std::fs::write(
        docs("digest-slack.json"),
        serde_json::to_string_pretty(&body).unwrap(),
    )
    .unwrap();
}

#[test]
fn the_scheduled_digest_is_delivered_once_per_period_across_two_replicas() {
    if runbook_tests::postgres::cluster().is_none() {
        eprintln!("skipped: RUNBOOK_TEST_POSTGRES is not set (two replicas need PostgreSQL)");
        return;
    }
    let sandbox = Sandbox::new();
    let database = runbook_tests::postgres::Database::create();
    seed(&database.url, known_runs());
    let slack = Receiver::start(Api::Slack);
    // Due a few seconds from now (UTC), today: the daily report, and the weekly summary too.
    let due = SystemTime::now() + Duration::from_secs(15);
    let days = due
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86_400;
    let weekday = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ][((days + 3) % 7) as usize];
    let time = &humantime::format_rfc3339_seconds(due).to_string()[11..19];
    sandbox.write(
        "host.toml",
        format!(
            "[notify.ops]\nkind = \"slack\"\nwebhook-url = {{ env = \"SLACK_URL\" }}\n{FAST}\
             [digest]\nchannel = \"ops\"\ndaily-at = \"{time}\"\nweekly-on = \"{weekday}\"\n"
        ),
    );
    let hook = slack.url("/services/T0/B0/X");
    let env = [
        ("RUNBOOK_STORE", database.url.as_str()),
        ("SLACK_URL", hook.as_str()),
    ];
    let _one = Server::start(&sandbox, &env);
    let _two = Server::start(&sandbox, &env);
    let posted = slack.wait_accepted(2, Duration::from_secs(60));
    // Both replicas fired at the same second; give a duplicate the time to arrive.
    std::thread::sleep(Duration::from_secs(2));
    let posted_now = slack.accepted();
    assert_eq!(
        posted_now.len(),
        2,
        "one daily and one weekly message: {:?}",
        posted_now.iter().map(|r| r.json()).collect::<Vec<_>>()
    );
    let texts: Vec<String> = posted.iter().map(|r| r.json().to_string()).collect();
    assert!(
        texts.iter().any(|t| t.contains("End of Day Report")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("Weekly Summary")),
        "{texts:?}"
    );
}
