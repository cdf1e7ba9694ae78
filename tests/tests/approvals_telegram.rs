//! Approval gates answered in Telegram, end to end: the `asks` guest run by a real
//! `host serve` posts its question to a Telegram Bot API stand-in (tests/src/telegram.rs),
//! people press its inline buttons (`callback_query` updates the host long-polls for), and
//! the run ends by the answer; the message is edited to show how it ended. A press counts
//! only when the bot that received it posted the question to its group.
//!
//! One shared server answers every scenario of the first test (they run side by side, each on
//! its own run and message); a host that dies while its run waits needs its own store.

use std::process::{Command, Stdio};
use std::time::Duration;

use runbook_tests::server::Server;
use runbook_tests::telegram::{Bot, Message, TELEGRAM_TOKEN};
use runbook_tests::{Sandbox, host_bin};
use serde_json::{Value, json};

/// One scenario on the shared server and stand-in.
type Scenario = fn(&Server, &Bot);

const RUN_TOKEN: &str = "approvals-telegram-t0ken";
const CHAT: i64 = -1001;
const ALICE: i64 = 111;
const MALLORY: i64 = 222;
const WAIT: Duration = Duration::from_secs(60);

/// The `asks` guest allowed to ask `oncall`, whose only member is Telegram user 111, through
/// the `tg` channel (the stand-in).
fn sandbox(bot: &Bot, lease_secs: u64) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("asks");
    sandbox.write(
        "host.toml",
        format!(
            r#"plugin-dirs = ["plugins"]

[server]
lease-secs = {lease_secs}

[webhooks.run]
auth = {{ kind = "bearer", token = {{ env = "TG_RUN_TOKEN" }} }}

[notify.tg]
kind = "telegram"
bot-token = {{ env = "TG_BOT_TOKEN" }}
chat-id = "{CHAT}"
base-url = "{base}"

[approvers.oncall]
channels = ["tg"]
telegram = [{ALICE}]
users = []

[plugins.asks.grants]
approval = ["oncall"]
"#,
            base = bot.base_url(),
        ),
    );
    sandbox
}

const ENV: [(&str, &str); 2] = [
    ("TG_RUN_TOKEN", RUN_TOKEN),
    ("TG_BOT_TOKEN", TELEGRAM_TOKEN),
];

fn ask(server: &Server, title: &str, timeout_secs: u32) -> String {
    let params = json!({ "title": title, "timeout": timeout_secs.to_string() }).to_string();
    server.submit_run("/hooks/run/asks", RUN_TOKEN, params.as_bytes())
}

fn ask_group(server: &Server, title: &str, group: &str) -> String {
    let params = json!({ "title": title, "timeout": "60", "group": group }).to_string();
    server.submit_run("/hooks/run/asks", RUN_TOKEN, params.as_bytes())
}

/// The run's question, as the host recorded it.
fn approval(server: &Server, run: &str) -> Value {
    let reply = server.get(&format!("/approvals?run={run}"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()[0].clone()
}

/// The run's question once posted in Telegram (and the store knows where): its message.
fn posted_question(server: &Server, bot: &Bot, run: &str) -> Message {
    let message = bot.wait_message(run);
    bot.wait_for("the posted message in the store", |_| {
        (approval(server, run)["messages"][0]["message_id"] == message.message_id).then_some(())
    });
    message
}

fn status(server: &Server, run: &str) -> String {
    server.get(&format!("/runs/{run}")).json()["status"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The message's latest text once it was edited (its first edit).
fn edited(bot: &Bot, message_id: i64) -> Message {
    bot.wait_for(&format!("edit of message {message_id}"), |bot| {
        let message = bot.message(message_id);
        (message.history.len() > 1).then_some(message)
    })
}

#[test]
fn telegram_answers_decide_questions_and_nothing_else_does() {
    let bot = Bot::start();
    let sandbox = sandbox(&bot, 30);
    let server = Server::start(&sandbox, &ENV);
    std::thread::scope(|s| {
        let scenarios: [(&str, Scenario); 4] = [
            ("approved by an approver", approved_by_an_approver),
            (
                "unlisted user, then rejected",
                unlisted_user_changes_nothing,
            ),
            ("expired", nobody_answers_and_it_expires),
            ("forged callbacks", forged_callbacks_change_nothing),
        ];
        let running: Vec<_> = scenarios
            .iter()
            .map(|&(name, scenario)| {
                let (server, bot) = (&server, &bot);
                (name, s.spawn(move || scenario(server, bot)))
            })
            .collect();
        let failed: Vec<&str> = running
            .into_iter()
            .filter_map(|(name, handle)| handle.join().is_err().then_some(name))
            .collect();
        assert!(
            failed.is_empty(),
            "scenarios failed: {failed:?}\nserver log:\n{}",
            server.log(&sandbox)
        );
    });
    // One poller held every long poll: none was cut off by another.
    let polls = bot.polls();
    assert!(polls.iter().all(|p| p.status == 200), "{polls:#?}");
    assert!(
        polls.iter().all(|p| p.timeout > 0
            && p.allowed_updates.as_deref() == Some(&["callback_query".to_string()][..])),
        "{polls:#?}"
    );
}

fn approved_by_an_approver(server: &Server, bot: &Bot) {
    let run = ask(server, "Approve me?", 60);
    let question = posted_question(server, bot, &run);
    assert_eq!(status(server, &run), "waiting-approval");
    assert!(question.text.contains("Approve me?"), "{}", question.text);
    let id = approval(server, &run)["id"].as_str().unwrap().to_string();
    assert_eq!(
        question.buttons(),
        [format!("ap:{id}:y"), format!("ap:{id}:n")]
    );

    let (_, query) = bot.press(
        ALICE,
        Some("alice"),
        CHAT,
        question.message_id,
        &question.buttons()[0],
    );
    let answer = bot.wait_answer(&query);
    assert!(
        answer.text.contains("Approved by telegram:111 (@alice)"),
        "{answer:?}"
    );
    assert!(!answer.show_alert, "{answer:?}");

    let ended = server.wait_for_run(&run, WAIT);
    assert_eq!(ended["status"], "resolved", "{ended:#}");
    assert_eq!(ended["summary"], "approved by telegram:111 (@alice)");
    let message = edited(bot, question.message_id);
    assert!(
        message.text.contains("Approved by telegram:111 (@alice)"),
        "{}",
        message.text
    );
    assert!(message.text.contains("Approve me?"), "{}", message.text);
    assert!(message.buttons().is_empty(), "{message:?}");
    let record = approval(server, &run);
    assert_eq!(record["state"], "approved");
    assert_eq!(record["answered_via"], "telegram");
}

fn unlisted_user_changes_nothing(server: &Server, bot: &Bot) {
    let run = ask(server, "Unlisted first?", 60);
    let question = posted_question(server, bot, &run);

    let (update, query) = bot.press(
        MALLORY,
        Some("mallory"),
        CHAT,
        question.message_id,
        &question.buttons()[0],
    );
    let answer = bot.wait_answer(&query);
    assert!(answer.show_alert, "{answer:?}");
    assert!(
        answer.text.contains("telegram:222 (@mallory)")
            && answer.text.contains("not on the approvers list"),
        "{answer:?}"
    );
    bot.wait_confirmed(update);
    assert_eq!(status(server, &run), "waiting-approval");
    assert_eq!(approval(server, &run)["state"], "pending");
    let unchanged = bot.message(question.message_id);
    assert_eq!(unchanged.history.len(), 1, "{unchanged:?}");
    assert_eq!(unchanged.buttons(), question.buttons());

    let (_, query) = bot.press(
        ALICE,
        Some("alice"),
        CHAT,
        question.message_id,
        &question.buttons()[1],
    );
    assert!(!bot.wait_answer(&query).show_alert);
    let ended = server.wait_for_run(&run, WAIT);
    assert_eq!(ended["status"], "no-action", "{ended:#}");
    assert_eq!(
        ended["summary"],
        "rejected by telegram:111 (@alice): rejected in Telegram"
    );
    let message = edited(bot, question.message_id);
    assert!(
        message.text.contains("Rejected by telegram:111 (@alice)"),
        "{}",
        message.text
    );
    assert!(message.buttons().is_empty(), "{message:?}");
}

fn nobody_answers_and_it_expires(server: &Server, bot: &Bot) {
    let run = ask(server, "Anyone there?", 2);
    let question = posted_question(server, bot, &run);
    let ended = server.wait_for_run(&run, WAIT);
    assert_eq!(ended["status"], "escalated", "{ended:#}");
    assert_eq!(ended["summary"], "expired: nobody answered; escalating");
    let message = edited(bot, question.message_id);
    assert!(message.text.contains("Expired"), "{}", message.text);
    assert!(message.buttons().is_empty(), "{message:?}");
    assert_eq!(approval(server, &run)["state"], "expired");

    // A press that comes late (the button was still on a phone) decides nothing.
    let (_, query) = bot.press(
        ALICE,
        Some("alice"),
        CHAT,
        question.message_id,
        &question.buttons()[0],
    );
    let answer = bot.wait_answer(&query);
    assert!(
        answer.show_alert && answer.text.contains("Already decided"),
        "{answer:?}"
    );
    assert_eq!(approval(server, &run)["state"], "expired");
}

fn forged_callbacks_change_nothing(server: &Server, bot: &Bot) {
    let run = ask(server, "Forged?", 60);
    let question = posted_question(server, bot, &run);
    let id = approval(server, &run)["id"].as_str().unwrap().to_string();
    let other_message = bot.wait_message("Anyone there?").message_id;
    let forgeries = [
        // An approval id no question has.
        (
            question.message_id,
            "ap:00000000deadbeef".to_string() + ":y",
        ),
        // Not the host's buttons at all.
        (question.message_id, "garbage".to_string()),
        (question.message_id, format!("ap:{id}:maybe")),
        (question.message_id, format!("ap:{id}';--:y")),
        // This question's id on a message that is not this question's.
        (other_message, format!("ap:{id}:y")),
        (424242, format!("ap:{id}:y")),
    ];
    for (message_id, data) in forgeries {
        let (update, query) = bot.press(ALICE, Some("alice"), CHAT, message_id, &data);
        bot.wait_confirmed(update);
        // The presser hears it did nothing (not a spinner until Telegram gives up).
        let answer = bot.wait_answer(&query);
        assert!(answer.show_alert, "{data}: {answer:?}");
        assert_eq!(status(server, &run), "waiting-approval", "{data}");
        assert_eq!(approval(server, &run)["state"], "pending", "{data}");
    }
    let unchanged = bot.message(question.message_id);
    assert_eq!(unchanged.history.len(), 1, "{unchanged:?}");

    // The real button still works.
    let (_, query) = bot.press(
        ALICE,
        Some("alice"),
        CHAT,
        question.message_id,
        &question.buttons()[1],
    );
    assert!(!bot.wait_answer(&query).show_alert);
    assert_eq!(server.wait_for_run(&run, WAIT)["status"], "no-action");
}

/// A child process killed when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_host_killed_while_its_run_waits_loses_the_run_and_the_message_says_so() {
    let bot = Bot::start();
    let sandbox = sandbox(&bot, 1);
    let server = Server::start(&sandbox, &ENV);
    let mut cli = Killed(
        Command::new(host_bin())
            .args(["run", "asks", "-p", "title=Killed while waiting?"])
            .current_dir(sandbox.path())
            .env("RUNBOOK_CACHE_DIR", sandbox.cache_dir())
            .env("RUNBOOK_STORE", sandbox.store())
            .env_remove("RUNBOOK_CONFIG")
            .envs(ENV)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let question = bot.wait_message("Killed while waiting?");
    let run = bot.wait_for("the question in the store", |_| {
        let pending = server.get("/approvals").json();
        pending[0]["messages"][0]["message_id"]
            .as_i64()
            .is_some_and(|m| m == question.message_id)
            .then(|| pending[0]["run_id"].as_str().unwrap().to_string())
    });
    assert_eq!(status(&server, &run), "waiting-approval");

    Command::new("kill")
        .args(["-KILL", &cli.0.id().to_string()])
        .status()
        .unwrap();
    cli.0.wait().unwrap();

    server.wait_for_status(&run, "lost", WAIT);
    let message = edited(&bot, question.message_id);
    assert!(message.text.contains("Run lost"), "{}", message.text);
    assert!(message.buttons().is_empty(), "{message:?}");
    let record = approval(&server, &run);
    assert_eq!(record["state"], "lost");
    assert_eq!(record["answered_via"], "rescuer");
}

/// `host run` alone (no server polling for it): its own poller hears the button, from the
/// moment the question is posted until the answer.
#[test]
fn a_host_run_alone_hears_the_answer_in_telegram() {
    let bot = Bot::start();
    let sandbox = sandbox(&bot, 30);
    let asking = std::thread::scope(|s| {
        let asking =
            s.spawn(|| sandbox.host_env(&["run", "asks", "--json", "-p", "title=Alone?"], &ENV));
        let question = bot.wait_message("Alone?");
        bot.wait_for("the posted message in the store", |_| {
            let pending = sandbox.host(&["approvals", "--json"]).json();
            (pending[0]["messages"][0]["message_id"] == question.message_id).then_some(())
        });
        let (_, query) = bot.press(
            ALICE,
            Some("alice"),
            CHAT,
            question.message_id,
            &question.buttons()[0],
        );
        let answer = bot.wait_answer(&query);
        assert!(!answer.show_alert, "{answer:?}");
        let message = edited(&bot, question.message_id);
        assert!(message.text.contains("Approved by"), "{}", message.text);
        asking.join().unwrap()
    });
    let run = asking.json();
    assert_eq!(run["status"], "resolved", "{}", asking.stderr);
    assert_eq!(run["summary"], "approved by telegram:111 (@alice)");
}

/// Two bots (two stand-ins, each its own Bot API endpoint) in the same chat: `tg` posts for
/// `oncall`, `tg-b` for `others`; Telegram user 111 is in both groups.
fn two_bots(a: &Bot, b: &Bot) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("asks");
    sandbox.write(
        "host.toml",
        format!(
            r#"plugin-dirs = ["plugins"]

[webhooks.run]
auth = {{ kind = "bearer", token = {{ env = "TG_RUN_TOKEN" }} }}

[notify.tg]
kind = "telegram"
bot-token = {{ env = "TG_BOT_TOKEN" }}
chat-id = "{CHAT}"
base-url = "{a}"

[notify.tg-b]
kind = "telegram"
bot-token = {{ env = "TG_BOT_TOKEN" }}
chat-id = "{CHAT}"
base-url = "{b}"

[approvers.oncall]
channels = ["tg"]
telegram = [{ALICE}]

[approvers.others]
channels = ["tg-b"]
telegram = [{ALICE}]

[plugins.asks.grants]
approval = ["oncall", "others"]
"#,
            a = a.base_url(),
            b = b.base_url(),
        ),
    );
    sandbox
}

#[test]
fn a_press_counts_only_through_the_bot_that_posted_the_question() {
    let (bot_a, bot_b) = (Bot::start(), Bot::start());
    let sandbox = two_bots(&bot_a, &bot_b);
    let server = Server::start(&sandbox, &ENV);
    let run = ask(&server, "Which bot?", 60);
    let question = posted_question(&server, &bot_a, &run);
    let id = approval(&server, &run)["id"].as_str().unwrap().to_string();
    assert_eq!(approval(&server, &run)["messages"][0]["channel"], "tg");

    // Bot B sees a press of the same chat, message and button (a forged update, or bot B's
    // own message with the same id): it vouches for nothing on bot A's question.
    let (update, query) = bot_b.press(
        ALICE,
        Some("alice"),
        CHAT,
        question.message_id,
        &format!("ap:{id}:y"),
    );
    bot_b.wait_confirmed(update);
    let answer = bot_b.wait_answer(&query);
    assert!(answer.show_alert, "{answer:?}");
    assert_eq!(approval(&server, &run)["state"], "pending");
    assert_eq!(status(&server, &run), "waiting-approval");
    assert_eq!(bot_a.message(question.message_id).history.len(), 1);

    // Bot B's own question (group `others`) is answered through bot B…
    let other = ask_group(&server, "Bot B's?", "others");
    let other_question = posted_question(&server, &bot_b, &other);
    assert_eq!(approval(&server, &other)["messages"][0]["channel"], "tg-b");
    // …not through bot A, even on a message of the same chat and id…
    let other_id = approval(&server, &other)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (update, query) = bot_a.press(
        ALICE,
        Some("alice"),
        CHAT,
        other_question.message_id,
        &format!("ap:{other_id}:y"),
    );
    bot_a.wait_confirmed(update);
    assert!(bot_a.wait_answer(&query).show_alert);
    assert_eq!(approval(&server, &other)["state"], "pending");
    // …and its positive control: through bot B it decides.
    let (_, query) = bot_b.press(
        ALICE,
        Some("alice"),
        CHAT,
        other_question.message_id,
        &other_question.buttons()[0],
    );
    assert!(!bot_b.wait_answer(&query).show_alert);
    assert_eq!(server.wait_for_run(&other, WAIT)["status"], "resolved");

    // Positive control: bot A's own button decides its question.
    let (_, query) = bot_a.press(
        ALICE,
        Some("alice"),
        CHAT,
        question.message_id,
        &question.buttons()[0],
    );
    assert!(!bot_a.wait_answer(&query).show_alert);
    let ended = server.wait_for_run(&run, WAIT);
    assert_eq!(ended["status"], "resolved", "{ended:#}");
    assert_eq!(ended["summary"], "approved by telegram:111 (@alice)");
}
