//! `host serve` reloads host.toml on SIGHUP: new webhook auth, routes and grants apply to the
//! next request and run; a config that does not load changes nothing and says why.

use std::time::{Duration, Instant};

use runbook_tests::Sandbox;
use runbook_tests::server::Server;
use serde_json::json;

const OLD: &str = "reload-old-token-1234";
const NEW: &str = "reload-new-token-5678";

fn config(sandbox: &Sandbox, token_var: &str, granted: bool) -> String {
    let grants = if granted {
        format!(
            "fs-read = [\"{}\"]",
            sandbox.path().join("evidence").display()
        )
    } else {
        String::new()
    };
    format!(
        r#"plugin-dirs = ["plugins"]
[webhooks.run]
auth = {{ kind = "bearer", token = {{ env = "{token_var}" }} }}
[webhooks.api]
auth = {{ kind = "bearer", token = {{ env = "RB_TEST_API_TOKEN" }} }}
[plugins.hostile.grants]
{grants}
"#
    )
}

fn hangup(server: &Server) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_for_log(server: &Server, sandbox: &Sandbox, needle: &str, times: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = server.log(sandbox);
        if log.matches(needle).count() >= times {
            return log;
        }
        assert!(Instant::now() < deadline, "never logged {needle:?}:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_run(server: &Server, token: &str, target: &str) -> (u16, Option<serde_json::Value>) {
    let body = json!({ "case": "fs-read", "target": target }).to_string();
    let reply = server.post(
        "/hooks/run/hostile",
        &[("Authorization", &format!("Bearer {token}"))],
        body.as_bytes(),
    );
    if reply.status != 202 {
        return (reply.status, None);
    }
    let id = reply.json()["runs"][0].as_str().unwrap().to_string();
    (202, Some(server.wait_for_run(&id, Duration::from_secs(60))))
}

#[test]
fn sighup_applies_a_valid_config_and_keeps_the_old_one_on_error() {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("hostile");
    let evidence = sandbox.write("evidence/a.txt", "evidence\n");
    let evidence = evidence.to_str().unwrap();
    sandbox.write("host.toml", config(&sandbox, "OLD_TOKEN", false));
    let server = Server::start(&sandbox, &[("OLD_TOKEN", OLD), ("NEW_TOKEN", NEW)]);
    let (status, run) = read_run(&server, OLD, evidence);
    assert_eq!(status, 202);
    assert_eq!(run.unwrap()["status"], "failed", "not granted yet");

    // A new token and a grant: applied at once, the old token refused.
    sandbox.write("host.toml", config(&sandbox, "NEW_TOKEN", true));
    hangup(&server);
    wait_for_log(&server, &sandbox, "host.toml reloaded", 1);
    assert_eq!(read_run(&server, OLD, evidence).0, 401);
    let (status, run) = read_run(&server, NEW, evidence);
    assert_eq!(status, 202);
    assert_eq!(
        run.unwrap()["status"],
        "no-action",
        "granted after the reload"
    );

    // A config that does not load (a secret that is not set, then a typo): nothing changes.
    sandbox.write("host.toml", config(&sandbox, "UNSET_TOKEN_VAR", true));
    hangup(&server);
    let log = wait_for_log(&server, &sandbox, "not reloaded", 1);
    assert!(log.contains("UNSET_TOKEN_VAR"), "{log}");
    sandbox.write("host.toml", "plugin-dirs = [\"plugins\"]\n[serverr]\n");
    hangup(&server);
    let log = wait_for_log(&server, &sandbox, "not reloaded", 2);
    assert!(log.contains("serverr"), "{log}");
    assert_eq!(
        read_run(&server, NEW, evidence).0,
        202,
        "the last good config stays"
    );
    assert_eq!(read_run(&server, OLD, evidence).0, 401);

    // What takes a restart is named, the rest applied.
    sandbox.write(
        "host.toml",
        format!(
            "{}\n[server]\nqueue-limit = 7\n",
            config(&sandbox, "OLD_TOKEN", true)
        ),
    );
    hangup(&server);
    let log = wait_for_log(&server, &sandbox, "host.toml reloaded", 2);
    assert!(
        log.contains("[server] changed; that takes a restart"),
        "{log}"
    );
    assert_eq!(read_run(&server, OLD, evidence).0, 202);
}
