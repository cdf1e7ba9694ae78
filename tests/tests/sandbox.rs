//! The sandbox holds: hostile playbooks (real components from `tests/hostile/`) run in a real
//! `host serve`, each next to a well-behaved disk-full run started at the same moment. Every
//! hostile run must end with its expected status and reason (the limit or the refusal named),
//! reach nothing outside its grants, and the well-behaved run must complete normally.

use std::path::{Path, PathBuf};
use std::time::Duration;

use runbook_tests::docker::{IMAGE, docker};
use runbook_tests::http::Peer;
use runbook_tests::server::Server;
use runbook_tests::{Sandbox, guests};
use serde_json::{Value, json};

const TOKEN: &str = "rb6-sandbox-token";

/// A container nobody granted; it must never be touched.
struct Victim {
    name: String,
}

impl Victim {
    fn start(kind: &str) -> Self {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("rb6-{kind}-{}-{seq}", std::process::id());
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &name])
            .output();
        docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            "runbook-test=1",
            IMAGE,
            "sleep",
            "600",
        ]);
        Self { name }
    }

    fn started_at(&self) -> String {
        docker(&["inspect", "-f", "{{.State.StartedAt}}", &self.name])
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}

struct Fixture {
    server: Server,
    sandbox: Sandbox,
    root: PathBuf,
    /// Granted; answers 200.
    granted: Peer,
    /// Not granted; a request reaching it is an escape.
    ungranted: Peer,
    /// Granted; redirects to `ungranted`.
    redirect: Peer,
    /// Granted under the machine's host name, which resolves to a non-public address.
    behind_name: Peer,
    /// Granted; accepts and never answers.
    silent: Peer,
    hostname: String,
    victim: Victim,
    granted_container: Victim,
}

/// The machine's own name: /etc/hosts (or the resolver) maps it to a loopback or private
/// address, the shape of a granted name rebound to an internal address.
fn private_hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let addrs: Vec<_> = std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), 0))
        .unwrap_or_else(|e| panic!("the host name {name:?} does not resolve: {e}"))
        .collect();
    assert!(
        addrs.iter().all(|a| {
            let ip = a.ip();
            ip.is_loopback()
                || matches!(ip, std::net::IpAddr::V4(v4) if v4.is_private() || v4.is_link_local())
        }),
        "this test needs the host name {name:?} to resolve to loopback/private addresses, got {addrs:?}"
    );
    name
}

impl Fixture {
    fn start() -> Self {
        let sandbox = Sandbox::new();
        sandbox.add_plugin("hostile");
        let root = sandbox.path().join("root");
        sandbox.write("root/ok.txt", "inside the root\n");
        std::os::unix::fs::symlink("/etc/passwd", root.join("abs-link")).unwrap();
        std::os::unix::fs::symlink("../../../../../../../../etc/passwd", root.join("rel-link"))
            .unwrap();
        let root = root.canonicalize().unwrap();

        let granted = Peer::status(200);
        let ungranted = Peer::status(200);
        let redirect = Peer::redirecting_to(&ungranted.url("/"));
        let behind_name = Peer::status(200);
        let silent = Peer::silent();
        let hostname = private_hostname();
        let victim = Victim::start("victim");
        let granted_container = Victim::start("granted");
        sandbox.write(
            "host.toml",
            format!(
                r#"plugin-dirs = ["plugins"]
[webhooks.run]
auth = {{ kind = "bearer", token = {{ env = "RB6_TOKEN" }} }}

[plugins.hostile]
max-concurrent = 4
deadline-secs = 5
memory-mib = 32
max-http-calls = 5

[plugins.hostile.grants]
fs-read = ["root"]
http = ["http://127.0.0.1:{granted}", "http://127.0.0.1:{redirect}", "http://{hostname}:{named}", "http://rb6-nothing.invalid", "http://127.0.0.1:{silent}"]
notify = ["ops", "pager"]
docker = [{{ containers = ["{container}"], verbs = ["read", "restart", "stop"] }}]
"#,
                granted = granted.port,
                redirect = redirect.port,
                named = behind_name.port,
                silent = silent.port,
                container = granted_container.name,
            ),
        );
        let server = Server::start(&sandbox, &[("RB6_TOKEN", TOKEN)]);
        Fixture {
            server,
            sandbox,
            root,
            granted,
            ungranted,
            redirect,
            behind_name,
            silent,
            hostname,
            victim,
            granted_container,
        }
    }

    fn submit(&self, playbook: &str, params: Value, dry_run: bool) -> String {
        let path = format!("/hooks/run/{playbook}?dry_run={dry_run}");
        self.server
            .submit_run(&path, TOKEN, params.to_string().as_bytes())
    }

    /// Starts the hostile case and a well-behaved disk-full run together; returns the hostile
    /// run once both have ended, after checking the well-behaved one completed normally.
    fn contained(&self, case: &str, target: &str) -> Value {
        let hostile = self.submit("hostile", json!({ "case": case, "target": target }), false);
        let good = self.submit(
            "disk-full",
            json!({ "paths": "", "backups": "", "warn-percent": "99", "critical-percent": "100" }),
            true,
        );
        let good = self.server.wait_for_run(&good, Duration::from_secs(60));
        let hostile = self.server.wait_for_run(&hostile, Duration::from_secs(60));
        assert!(
            matches!(good["status"].as_str(), Some("no-action" | "resolved")),
            "the well-behaved run next to {case} did not complete normally: {good:#}"
        );
        assert!(
            !hostile["summary"]
                .as_str()
                .unwrap_or_default()
                .contains("ESCAPED"),
            "{case} escaped the sandbox: {hostile:#}"
        );
        hostile
    }
}

fn reason(run: &Value) -> &str {
    run["reason"].as_str().unwrap_or_default()
}

fn assert_failed_with(run: &Value, case: &str, expected: &str) {
    assert_eq!(run["status"], "failed", "{case}: {run:#}");
    assert!(
        reason(run).contains(expected),
        "{case}: the reason should contain {expected:?}, got {:?}",
        reason(run)
    );
}

/// The one capability call a refusal case made, with its recorded result kind.
fn only_call<'a>(run: &'a Value, interface: &str) -> &'a Value {
    let calls: Vec<&Value> = run["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "call" && e["interface"] == interface)
        .collect();
    assert_eq!(calls.len(), 1, "{run:#}");
    calls[0]
}

#[test]
fn runaway_guests_end_at_their_limits_while_other_runs_complete() {
    let fx = Fixture::start();
    // Both playbooks loaded (compiled, linked) first, so what follows times runs only.
    let warm = fx.contained("fs-read", "/etc/hostname");
    assert_eq!(warm["status"], "failed");
    // More spinning guests than this machine has cores, and a well-behaved run among them: it
    // must finish while they spin (epoch ticks make every guest yield), not after.
    let loops: Vec<String> = (0..3)
        .map(|_| fx.submit("hostile", json!({ "case": "loop" }), false))
        .collect();
    let good = fx.submit(
        "disk-full",
        json!({ "paths": "", "backups": "", "warn-percent": "99", "critical-percent": "100" }),
        true,
    );
    let good = fx.server.wait_for_run(&good, Duration::from_secs(60));
    assert!(
        matches!(good["status"].as_str(), Some("no-action" | "resolved")),
        "{good:#}"
    );
    for id in &loops {
        let spun = fx.server.wait_for_run(id, Duration::from_secs(60));
        assert_failed_with(&spun, "loop", "limit exceeded: deadline of 5s");
        assert!(
            good["ended_at"].as_str() < spun["ended_at"].as_str(),
            "the well-behaved run waited for the loops: {good:#} {spun:#}"
        );
    }
    for (case, target, expected) in [
        ("memory", "", "limit exceeded: linear memory of 32 MiB"),
        (
            "recursion",
            "",
            "limit exceeded: wasm call stack (recursion too deep)",
        ),
        (
            "logs",
            "",
            "limit exceeded: more than 10000 log lines and steps in one run",
        ),
        (
            "notify-flood",
            "ops",
            "limit exceeded: more than 20 notifications in one run",
        ),
        (
            "artifacts",
            "",
            "limit exceeded: more than 8388608 bytes of artifacts in one run",
        ),
        ("panic", "", "hostile playbook panics on purpose"),
    ] {
        let run = fx.contained(case, target);
        assert_failed_with(&run, case, expected);
        let events = run["timeline"].as_array().unwrap().len();
        // What a flood leaves behind is bounded by the caps, not by the guest's ambition.
        assert!(events <= 10_100, "{case}: {events} timeline events");
    }

    // Parked in the host (a capability call, a WASI sleep), where epoch ticks cannot reach:
    // the deadline still ends the run. Both at once, next to a well-behaved run.
    let hang = fx.submit(
        "hostile",
        json!({ "case": "hang", "target": fx.silent.url("/") }),
        false,
    );
    let run = fx.contained("sleep", "");
    assert_failed_with(
        &run,
        "sleep",
        "limit exceeded: deadline of 5s while waiting in the host",
    );
    let run = fx.server.wait_for_run(&hang, Duration::from_secs(60));
    assert_failed_with(
        &run,
        "hang",
        "limit exceeded: deadline of 5s while waiting in the host",
    );
    assert!(
        run["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["message"]
                == "capability call #1 was still running at the deadline and was abandoned"),
        "{run:#}"
    );
    assert_eq!(fx.silent.hits(), 1);

    let run = fx.contained("ambient", "");
    assert_failed_with(
        &run,
        "ambient",
        "the playbook returned failed: no ambient authority",
    );

    // The http-call cap: five probes of a granted peer pass, the sixth ends the run.
    let url = fx.granted.url("/");
    let run = fx.contained("http-flood", &url);
    assert_failed_with(
        &run,
        "http-flood",
        "limit exceeded: more than 5 http calls in one run",
    );
    assert_eq!(fx.granted.hits(), 5);
}

#[test]
fn fs_reads_outside_the_granted_root_are_refused() {
    let fx = Fixture::start();
    let root = fx.root.display().to_string();
    for (target, expected) in [
        (
            "/etc/shadow".to_string(),
            "the playbook returned denied: /etc/shadow is outside the granted fs-read roots"
                .to_string(),
        ),
        (
            format!("{root}/../../etc/passwd"),
            format!("denied: {root}/../../etc/passwd: `..` is not allowed"),
        ),
        (
            format!("{root}/abs-link"),
            format!("the playbook returned denied: {root}/abs-link"),
        ),
        (
            format!("{root}/rel-link"),
            format!("the playbook returned denied: {root}/rel-link"),
        ),
        (
            "//etc/shadow".to_string(),
            "the playbook returned denied: //etc/shadow is outside the granted fs-read roots"
                .to_string(),
        ),
        (
            "etc/passwd".to_string(),
            "the playbook returned invalid: path must be absolute".to_string(),
        ),
        (
            format!("{root}/./ok.txt/../../../etc/passwd"),
            "`..` is not allowed".to_string(),
        ),
        (
            "/proc/self/root/etc/passwd".to_string(),
            "is outside the granted fs-read roots".to_string(),
        ),
        (
            format!("{root}/ok.txt\0/etc/passwd"),
            // A parameter reaches the playbook as the store keeps it (NUL written `\u{0}`, the
            // same on SQLite and PostgreSQL), so the path names no file; fs-read's own NUL check
            // is a unit test (caps::fs_read).
            "/ok.txt\\u{0}/etc/passwd: no such file or directory".to_string(),
        ),
    ] {
        let run = fx.contained("fs-read", &target);
        assert_failed_with(&run, &target, &expected);
        let call = only_call(&run, "fs-read");
        // The NUL case names a file that is not there (above); every other one is refused.
        let refused: &[&str] = if target.contains('\0') {
            &["not-found"]
        } else {
            &["denied", "invalid"]
        };
        assert!(
            refused.contains(&call["result"].as_str().unwrap_or_default()),
            "{call:#}"
        );
    }
    // The same playbook reads inside its root: the refusals above are the grants, not a bug.
    let run = fx.contained("fs-read", &format!("{root}/ok.txt"));
    assert_eq!(only_call(&run, "fs-read")["result"], "ok", "{run:#}");
}

#[test]
fn http_outside_the_granted_origins_and_to_private_addresses_is_refused() {
    let fx = Fixture::start();
    let g = fx.granted.port;
    let u = fx.ungranted.port;
    let named = format!("http://{}:{}/", fx.hostname, fx.behind_name.port);
    for (target, expected) in [
        (
            "http://example.com/".to_string(),
            "denied: http to http://example.com is not granted".to_string(),
        ),
        (
            format!("http://127.0.0.1:{u}/"),
            format!("denied: http to http://127.0.0.1:{u} is not granted"),
        ),
        (
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "denied: http to http://169.254.169.254 is not granted".to_string(),
        ),
        (
            format!("http://[::1]:{u}/"),
            format!("denied: http to http://[::1]:{u} is not granted"),
        ),
        // Decimal 127.0.0.1, on a granted port: still refused, and the password and token
        // in the URL stay out of the record.
        (
            format!("http://ops:hunter2@2130706433:{g}/?token=s3cret"),
            "is the address 127.0.0.1 in disguise".to_string(),
        ),
        (
            fx.redirect.url("/"),
            format!("to http://127.0.0.1:{u}/ leaves the granted origins"),
        ),
        (
            named.clone(),
            format!("{} resolves to 127.0.0.1, a loopback address", fx.hostname),
        ),
    ] {
        let run = fx.contained("http", &target);
        assert_failed_with(&run, &target, &expected);
        assert!(
            reason(&run).starts_with("the playbook returned denied"),
            "{run:#}"
        );
        assert_eq!(only_call(&run, "http")["result"], "denied");
        // The run's own parameters hold what the caller sent; the audit of the call must not.
        let text = format!("{} {}", run["timeline"], reason(&run));
        assert!(
            !text.contains("hunter2") && !text.contains("s3cret"),
            "a secret reached the audit log: {text}"
        );
    }
    // A granted name that does not resolve is the network's problem, not a refusal.
    let run = fx.contained("http", "http://rb6-nothing.invalid/");
    assert_failed_with(&run, "unresolvable", "the playbook returned unavailable");
    assert!(reason(&run).contains("dns"), "{run:#}");

    assert_eq!(fx.ungranted.hits(), 0, "an ungranted origin was reached");
    assert_eq!(fx.granted.hits(), 0, "the disguised address was dialled");
    assert_eq!(
        fx.behind_name.hits(),
        0,
        "a name resolving to a private address was dialled"
    );
    assert_eq!(fx.redirect.hits(), 1, "the granted redirect was asked once");

    // Listing the host name under `http-private` is what lets it through.
    let config = std::fs::read_to_string(fx.sandbox.path().join("host.toml")).unwrap();
    let sandbox = &fx.sandbox;
    sandbox.write(
        "host.toml",
        config.replace(
            "notify = [\"ops\", \"pager\"]",
            &format!(
                "notify = [\"ops\", \"pager\"]\nhttp-private = [\"{}\"]",
                fx.hostname
            ),
        ),
    );
    let run = sandbox.host(&[
        "run",
        "hostile",
        "--json",
        "-p",
        "case=http",
        "-p",
        &format!("target={named}"),
    ]);
    let json = run.json();
    assert_eq!(
        only_call(&json, "http")["result"],
        "ok",
        "{json:#}\n{}",
        run.stderr
    );
    assert_eq!(fx.behind_name.hits(), 1);
}

#[test]
fn wasi_sockets_docker_and_notify_outside_the_grants_are_refused() {
    let fx = Fixture::start();
    let before = fx.victim.started_at();
    let run = fx.contained("docker-restart", &fx.victim.name);
    assert_failed_with(
        &run,
        "docker-restart",
        &format!(
            "denied: docker restart on container \"{}\" is not granted",
            fx.victim.name
        ),
    );
    assert_eq!(only_call(&run, "docker")["result"], "denied");
    assert_eq!(
        fx.victim.started_at(),
        before,
        "the ungranted container was restarted"
    );

    let run = fx.contained("notify", "pager");
    assert_failed_with(
        &run,
        "notify pager",
        "the playbook returned not-found: no channel named \"pager\" is configured",
    );
    let run = fx.contained("notify", "security");
    assert_failed_with(
        &run,
        "notify security",
        "the playbook returned denied: channel \"security\" is not granted",
    );
    assert_eq!(only_call(&run, "notify")["result"], "denied");

    // Plain wasi:sockets from std: linked (toolchains import it), but no address is allowed.
    let peer = Peer::status(200);
    let run = fx.contained("sockets", &format!("127.0.0.1:{}", peer.port));
    assert_failed_with(
        &run,
        "sockets",
        &format!(
            "the playbook returned failed: wasi:sockets connect to 127.0.0.1:{}",
            peer.port
        ),
    );
    assert_eq!(peer.hits(), 0, "a socket reached the peer");

    // The audit log of a refusal, as `host runs show` prints it.
    let show = fx
        .sandbox
        .host(&["runs", "show", run["id"].as_str().unwrap()]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert!(
        show.stdout
            .contains("reason: the playbook returned failed: wasi:sockets"),
        "{}",
        show.stdout
    );
    let denied = fx.contained("notify", "security");
    let show = fx
        .sandbox
        .host(&["runs", "show", denied["id"].as_str().unwrap()]);
    assert!(
        show.stdout
            .contains("call   notify.send {\"channel\":\"security\"")
            && show
                .stdout
                .contains("→ denied (channel \"security\" is not granted"),
        "{}",
        show.stdout
    );
}

#[test]
fn a_dry_run_records_every_mutation_as_would_and_performs_none() {
    let fx = Fixture::start();
    let before = fx.granted_container.started_at();
    let url = fx.granted.url("/restart?api_key=k3y");
    let id = fx.submit(
        "hostile",
        json!({ "case": "mutate", "target": fx.granted_container.name, "url": url }),
        true,
    );
    let run = fx.server.wait_for_run(&id, Duration::from_secs(60));
    assert_eq!(run["status"], "mitigated", "{run:#}");
    let calls: Vec<&Value> = run["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "call")
        .collect();
    let names: Vec<String> = calls
        .iter()
        .map(|c| format!("{}.{}={}", c["interface"], c["function"], c["result"]).replace('"', ""))
        .collect();
    assert_eq!(
        names,
        [
            "docker.restart=would",
            "docker.stop=would",
            "http.send=would",
            "notify.send=would"
        ]
    );
    assert_eq!(
        calls[0]["args"]["container"],
        fx.granted_container.name.as_str()
    );
    assert_eq!(calls[2]["args"]["method"], "POST");
    assert_eq!(
        calls[2]["args"]["url"],
        fx.granted.url("/restart?api_key=***")
    );
    assert_eq!(calls[2]["args"]["headers"], json!(["authorization"]));
    let audit = run["timeline"].to_string();
    assert!(
        !audit.contains("s3cret-header") && !audit.contains("k3y"),
        "{audit}"
    );
    assert_eq!(fx.granted.hits(), 0, "a dry run sent the POST");
    assert_eq!(fx.granted_container.started_at(), before);
    assert_eq!(
        docker(&[
            "inspect",
            "-f",
            "{{.State.Status}}",
            &fx.granted_container.name
        ]),
        "running"
    );
}

/// `host run` of `file` and of disk-full (dry run) as two processes started together.
fn cli_pair(sandbox: &Sandbox, file: &Path) -> (std::process::Output, std::process::Output) {
    let spawn = |args: &[&str]| {
        std::process::Command::new(runbook_tests::host_bin())
            .args(args)
            .current_dir(sandbox.path())
            .env("RUNBOOK_CACHE_DIR", sandbox.cache_dir())
            .env("RUNBOOK_STORE", sandbox.store_path())
            .env_remove("RUNBOOK_CONFIG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let bad = spawn(&["run", file.to_str().unwrap()]);
    let good = spawn(&[
        "run",
        "disk-full",
        "--dry-run",
        "-p",
        "paths=",
        "-p",
        "backups=",
        "-p",
        "warn-percent=99",
        "-p",
        "critical-percent=100",
    ]);
    (
        bad.wait_with_output().unwrap(),
        good.wait_with_output().unwrap(),
    )
}

#[test]
fn components_of_the_wrong_shape_are_refused_at_load() {
    let sandbox = Sandbox::new();
    for (guest, expected) in [
        (
            "wrong-world",
            "does not export the runbook:host playbook world",
        ),
        (
            "foreign-import",
            "the component needs imports this host does not provide",
        ),
    ] {
        let file = sandbox.path().join(format!("plugins/{guest}.wasm"));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::copy(guests::path(guest), &file).unwrap();
        let (bad, good) = cli_pair(&sandbox, &file);
        let stderr = String::from_utf8_lossy(&bad.stderr);
        assert_eq!(bad.status.code(), Some(1), "{guest}: {stderr}");
        assert!(stderr.contains(expected), "{guest}: {stderr}");
        if guest == "foreign-import" {
            assert!(stderr.contains("rb6:foreign/raw-socket"), "{stderr}");
        }
        assert_eq!(
            good.status.code(),
            Some(0),
            "disk-full next to {guest}: {}",
            String::from_utf8_lossy(&good.stderr)
        );
    }
    // A server with both files in its plugin dir still serves the good playbooks.
    let check = sandbox.host(&["check", "--plugin-dir", "plugins"]);
    assert_eq!(check.code, 1);
    assert!(
        check.stderr.contains("wrong-world.wasm") && check.stderr.contains("foreign-import.wasm"),
        "{}",
        check.stderr
    );
}

#[test]
fn inspect_shows_wanted_against_granted_and_a_plugin_without_grants_still_runs() {
    let fx = Fixture::start();
    let run = fx.sandbox.host(&["inspect", "hostile"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for line in [
        "fs-read  → root".to_string(),
        format!(
            "docker   → read/restart/stop on {}",
            fx.granted_container.name
        ),
        "notify   → ops, pager".to_string(),
    ] {
        assert!(
            run.stdout.contains(&line),
            "missing {line:?}:\n{}",
            run.stdout
        );
    }
    assert!(
        run.stdout.contains("limits: deadline 5s · memory 32 MiB"),
        "{}",
        run.stdout
    );

    // A playbook is named by its describe(), never by its file: the same component copied
    // under another file name is still `hostile`, with hostile's grants.
    let other = fx.sandbox.path().join("ungranted.wasm");
    std::fs::copy(guests::path("hostile"), &other).unwrap();
    let inspect = fx.sandbox.host(&["inspect", other.to_str().unwrap()]);
    assert!(
        inspect.stdout.contains("fs-read  → root"),
        "{}",
        inspect.stdout
    );
    // Under a config that grants it nothing it still runs, and its calls come back denied.
    let empty = fx.sandbox.write("empty.toml", "");
    let inspect = fx.sandbox.host(&[
        "inspect",
        other.to_str().unwrap(),
        "--config",
        empty.to_str().unwrap(),
    ]);
    assert!(
        inspect.stdout.contains("http     → nothing (denied)"),
        "{}",
        inspect.stdout
    );
    let run = fx.sandbox.host(&[
        "run",
        other.to_str().unwrap(),
        "--config",
        empty.to_str().unwrap(),
        "--json",
        "-p",
        "case=fs-read",
        "-p",
        &format!("target={}/ok.txt", fx.root.display()),
    ]);
    let json = run.json();
    assert_eq!(json["playbook"], "hostile", "{json:#}");
    assert_eq!(only_call(&json, "fs-read")["result"], "denied", "{json:#}");
    assert_eq!(json["status"], "failed");
}

#[test]
fn check_flags_a_private_host_that_no_origin_grants() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "host.toml",
        "[plugins.web-down.grants]\nhttp = [\"http://grafana.internal:3000\"]\n\
         http-private = [\"grafana.internal\", \"vault.internal\"]\n",
    );
    let run = sandbox.host(&["check"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "http-private: \"vault.internal\" is not the host of any granted http origin"
        ),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("\"grafana.internal\" is not"),
        "{}",
        run.stderr
    );
}
