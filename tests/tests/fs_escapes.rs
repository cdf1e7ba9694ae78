//! fs-read cannot reach the host's own state, and host work for a call always ends: the hostile
//! playbook's fs cases against real files, FIFOs, devices, sparse files and deep trees, through
//! real `host run --json` processes (timed: the process must end soon after the run's deadline)
//! and one shared `host serve` (its /proc entries, store, cache and config are the targets).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runbook_tests::server::Server;
use runbook_tests::{RemoveOnDrop, Run, Sandbox, deep_tree};
use serde_json::{Value, json};

const TOKEN: &str = "fs-escapes-token";
/// The hostile playbook's deadline in these tests.
const DEADLINE_SECS: u64 = 2;
/// How long after the deadline a `host run` may take to exit on a busy 2-core machine.
const EXIT_SLACK: Duration = Duration::from_secs(4);

/// A sandbox whose host.toml grants the hostile playbook `grants` (TOML lines), names a secret
/// file, and gives it a short deadline.
fn sandbox_with(grants: &str) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("hostile");
    sandbox.write("secrets/token", TOKEN);
    sandbox.write("root/ok.txt", "inside the root\n");
    sandbox.write(
        "host.toml",
        format!(
            r#"plugin-dirs = ["plugins"]
[server]
max-concurrent-runs = 16

[webhooks.run]
auth = {{ kind = "bearer", token = {{ file = "secrets/token" }} }}

# The runs API, polled by the tests, is open on this 127.0.0.1 listener.
[webhooks.api]
auth = {{ kind = "none" }}

[notify.log]
kind = "file"
path = "notifications.jsonl"

[plugins.hostile]
max-concurrent = 12
deadline-secs = {DEADLINE_SECS}

[plugins.hostile.grants]
{grants}
"#
        ),
    );
    sandbox
}

/// `host run hostile --json` with `case` and `target` (after `shell_prefix`, e.g. a `ulimit`),
/// killed if still alive 30 s past the deadline; with how long the process took.
fn run_case(sandbox: &Sandbox, case: &str, target: &str, shell_prefix: &str) -> (Run, Duration) {
    let limit = DEADLINE_SECS + 30;
    let script = format!(
        r#"{shell_prefix} exec timeout -s KILL {limit} "$0" run hostile -p "case=$1" -p "target=$2" --json"#
    );
    let started = Instant::now();
    let output = Command::new("sh")
        .args(["-c", &script])
        .arg(runbook_tests::host_bin())
        .args([case, target])
        .current_dir(sandbox.path())
        .env("RUNBOOK_CACHE_DIR", sandbox.cache_dir())
        .env("RUNBOOK_STORE", sandbox.store_path())
        .env_remove("RUNBOOK_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("running host");
    let took = started.elapsed();
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    (run, took)
}

/// The run ended by itself (no kill, no crash) within the deadline plus slack.
fn ended_in_time(run: &Run, took: Duration, what: &str) -> Value {
    assert!(
        took < Duration::from_secs(DEADLINE_SECS) + EXIT_SLACK,
        "{what}: `host run` took {took:?} to exit (deadline {DEADLINE_SECS}s); stderr:\n{}",
        run.stderr
    );
    assert!(
        run.code == 0 || run.code == 1,
        "{what}: exit {} (crash or kill); stderr:\n{}",
        run.code,
        run.stderr
    );
    run.json()
}

fn reason(run: &Value) -> &str {
    run["reason"].as_str().unwrap_or_default()
}

/// The hostile case's whole answer: its `answer.txt` artifact (the summary is capped at
/// 4 KiB and keeps only the first line), else the summary.
fn summary(run: &Value) -> &str {
    run["artifacts"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == "answer.txt"))
        .and_then(|a| a["text"].as_str())
        .unwrap_or_else(|| run["summary"].as_str().unwrap_or_default())
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

/// A FIFO with no writer: `read`, `tail` and `grep` are refused as `invalid` at once (no open
/// that waits for a writer, no read that never returns).
#[test]
fn a_fifo_is_refused_before_anything_waits_on_it() {
    let sandbox = sandbox_with(r#"fs-read = ["/"]"#);
    let fifo = sandbox.path().join("root/pipe");
    mkfifo(&fifo);
    let fifo = fifo.display().to_string();
    for (case, target) in [
        ("fs-tail", fifo.clone()),
        ("fs-grep", format!("{fifo}|x")),
        ("fs-probe", format!("read {fifo}")),
    ] {
        let (out, took) = run_case(&sandbox, case, &target, "");
        let run = ended_in_time(&out, took, case);
        let text = format!("{} {}", reason(&run), summary(&run));
        assert!(
            text.contains("invalid") && text.contains("not a regular file"),
            "{case}: {run:#}"
        );
    }
}

/// Endless or enormous inputs end bounded: /dev/zero is a device (refused), a 256 GiB sparse
/// file is too big for a whole-file grep (refused) and its tail is bounded, and a regex that
/// costs seconds per MiB stops at the run's deadline; `host run` exits right after it.
#[test]
fn endless_files_and_costly_regexes_end_at_the_deadline() {
    let sandbox = sandbox_with(r#"fs-read = ["/"]"#);
    let (out, took) = run_case(&sandbox, "fs-grep", "/dev/zero|x", "");
    let run = ended_in_time(&out, took, "grep /dev/zero");
    assert!(
        reason(&run).contains("denied: /dev/zero is a device file"),
        "{run:#}"
    );

    let sparse = sandbox.path().join("root/sparse.img");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(256 << 30)
        .unwrap();
    let sparse = sparse.display().to_string();
    let (out, took) = run_case(&sandbox, "fs-grep", &format!("{sparse}|x"), "");
    let run = ended_in_time(&out, took, "grep a sparse 256 GiB file");
    assert!(
        reason(&run).contains("invalid") && reason(&run).contains("pass last-lines"),
        "{run:#}"
    );
    let (out, took) = run_case(&sandbox, "fs-tail", &sparse, "");
    let run = ended_in_time(&out, took, "tail a sparse 256 GiB file");
    assert_eq!(run["status"], "no-action", "{run:#}");

    // ~2 s per MiB with this engine (Unicode word boundaries over Cyrillic text): 16 MiB is
    // half a minute of work the deadline must cut.
    // A `Z` on every line: the engine skips lines without the pattern's required literal.
    let line = "абвгдеёжзи йклмнопрс тувфхцчш ".repeat(3) + "Z\n";
    let text = line.repeat((16 << 20) / line.len());
    let log = sandbox.write("root/cyrillic.log", text);
    let target = format!("{}|(?:.?\\b){{400}}Z", log.display());
    let (out, took) = run_case(&sandbox, "fs-grep", &target, "");
    let run = ended_in_time(&out, took, "a costly regex");
    assert_eq!(run["status"], "failed", "{run:#}");
    assert!(reason(&run).contains("deadline"), "{run:#}");
}

/// A directory 3,000 levels deep: the walk is iterative, so `largest` and `find` answer (the
/// result says `truncated`) and the host lives.
#[test]
fn a_very_deep_tree_is_walked_without_crashing_and_reported_truncated() {
    let sandbox = sandbox_with(r#"fs-read = ["/"]"#);
    let deep = sandbox.path().join("root/deep");
    std::fs::create_dir_all(&deep).unwrap();
    let _cleanup = RemoveOnDrop(deep.clone());
    deep_tree(&deep, 3000);
    let target = deep.display().to_string();
    let (out, took) = run_case(&sandbox, "fs-largest", &target, "");
    let run = ended_in_time(&out, took, "largest over 3,000 levels");
    assert!(summary(&run).starts_with("truncated=true"), "{run:#}");
    let (out, took) = run_case(&sandbox, "fs-find", &target, "");
    let run = ended_in_time(&out, took, "find over 3,000 levels");
    assert!(summary(&run).starts_with("truncated=true"), "{run:#}");
    let find = runbook_tests::calls(&run, "fs-read", "find-entries");
    assert!(
        find[0]["detail"].as_str().unwrap().contains("truncated"),
        "{run:#}"
    );
}

/// With few file descriptors allowed, directories the walk cannot open are counted, and the
/// result says `truncated` instead of passing a partial answer off as whole.
#[test]
fn directories_that_cannot_be_opened_make_the_walk_truncated() {
    let sandbox = sandbox_with(r#"fs-read = ["/"]"#);
    let tree = sandbox.path().join("root/tree");
    std::fs::create_dir_all(&tree).unwrap();
    deep_tree(&tree, 40);
    let (out, took) = run_case(
        &sandbox,
        "fs-largest",
        &tree.display().to_string(),
        "ulimit -n 20;",
    );
    let run = ended_in_time(&out, took, "largest with 20 open files allowed");
    assert_eq!(run["status"], "no-action", "{run:#}");
    assert!(summary(&run).starts_with("truncated=true"), "{run:#}");
    let largest = runbook_tests::calls(&run, "fs-read", "largest");
    assert!(
        largest[0]["detail"]
            .as_str()
            .unwrap()
            .contains("unreadable"),
        "{run:#}"
    );
}

/// disk-full's built-in grant is metadata-only `/`: `host inspect` says so, the playbook still
/// works, and a playbook holding the same grant cannot read a file's content.
#[test]
fn a_metadata_only_grant_lists_and_measures_but_never_reads() {
    let sandbox = sandbox_with(r#"fs-meta = ["/"]"#);
    let inspect = sandbox.host(&["inspect", "disk-full"]);
    assert!(
        inspect.stdout.contains("fs-read  → / (metadata only)"),
        "{}",
        inspect.stdout
    );

    let data = sandbox.write("root/data/big.bin", vec![1u8; 1 << 20]);
    let run = sandbox.host(&[
        "run",
        "disk-full",
        "--json",
        "-p",
        &format!("paths={}", data.parent().unwrap().display()),
        "-p",
        &format!("backups={}", sandbox.path().join("root").display()),
        "-p",
        "warn-percent=99",
        "-p",
        "critical-percent=100",
    ]);
    let json = run.json();
    assert_eq!(json["status"], "no-action", "{json:#}");
    assert_eq!(json["grants"]["fs-meta"], json!(["/"]), "{json:#}");
    assert_eq!(json["grants"]["fs-read"], json!([]), "{json:#}");
    // disk-full walks its paths with one largest-many call.
    let walked = runbook_tests::calls(&json, "fs-read", "largest-many");
    assert_eq!(walked[0]["result"], "ok");
    assert!(
        walked[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("1 of 1 paths"),
        "{json:#}"
    );

    let ok = sandbox.path().join("root/ok.txt").display().to_string();
    let probes = format!("read {ok}\ntail {ok}\ngrep {ok}\nstat {ok}\nlist /");
    let (out, took) = run_case(&sandbox, "fs-probe", &probes, "");
    let run = ended_in_time(&out, took, "metadata-only probes");
    let lines: Vec<&str> = summary(&run).lines().collect();
    for line in &lines[..3] {
        assert!(
            line.contains("denied") && line.contains("metadata-only grant fs-meta [/]"),
            "{line}"
        );
    }
    assert_eq!(lines[3], format!("stat {ok} ok"));
    assert_eq!(lines[4], "list / ok");
}

/// Threads of a process, from /proc.
fn threads(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Under a `/` grant, every piece of the serving host's own state is refused, by whatever path
/// it is named (its pid, a thread's id, /proc/self, a symlink or hard link in a granted
/// directory); walks pass over it. Then 60 runs stuck on FIFOs and costly regexes leave the
/// server answering, a normal disk-full run completing, and its threads back near idle.
#[test]
fn under_host_serve_the_hosts_state_is_unreachable_and_stuck_work_ends() {
    let sandbox = sandbox_with(r#"fs-read = ["/"]"#);
    let root = sandbox.path().join("root");
    std::os::unix::fs::symlink("../runs.sqlite3", root.join("store-link")).unwrap();
    std::fs::hard_link(sandbox.path().join("host.toml"), root.join("config-link")).unwrap();
    // What the `log` channel wrote for earlier runs.
    sandbox.write("notifications.jsonl", "{\"title\":\"an earlier run\"}\n");
    let secret_env = "fs-escapes-secret-in-env";
    let server = Server::start(&sandbox, &[("FS_ESCAPES_SECRET", secret_env)]);
    let submit = |params: Value| -> String {
        server.submit_run("/hooks/run/hostile", TOKEN, params.to_string().as_bytes())
    };
    let run = |params: Value| server.wait_for_run(&submit(params), Duration::from_secs(60));
    // Fills the compile cache and the store (with its WAL).
    let warm =
        run(json!({ "case": "fs-probe", "target": format!("read {}/ok.txt", root.display()) }));
    assert_eq!(warm["status"], "no-action", "{warm:#}");

    let pid = server.pid();
    let tid = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|t| *t != pid.to_string())
        .expect("the server has more than one thread");
    let cache_entry = std::fs::read_dir(sandbox.cache_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_file())
        .expect("a compile cache entry");
    let store = sandbox.store_path().canonicalize().unwrap();
    let dir = sandbox.path().canonicalize().unwrap();
    let refused: Vec<(String, &str)> = [
        ("read /proc/self/environ", "own"),
        ("read /proc/self/cmdline", "own"),
        ("read /proc/self/mem", "own"),
        ("list /proc/self/fd", "own"),
        ("read /proc/thread-self/environ", "own"),
        (&format!("read /proc/{pid}/environ"), "own"),
        (&format!("read /proc/{pid}/mem"), "own"),
        (&format!("read /proc/{tid}/environ"), "own"),
        (&format!("read /proc/{pid}/task/{tid}/environ"), "own"),
        (&format!("list /proc/{pid}"), "own"),
        (&format!("read {}/host.toml", dir.display()), "own"),
        (&format!("read {}/secrets/token", dir.display()), "own"),
        (
            &format!("read {}/notifications.jsonl", dir.display()),
            "own",
        ),
        (&format!("read {}", store.display()), "own"),
        (&format!("grep {}-wal", store.display()), "own"),
        (&format!("read {}-shm", store.display()), "own"),
        (&format!("read {}", cache_entry.display()), "own"),
        (&format!("list {}", sandbox.cache_dir().display()), "own"),
        (&format!("read {}/store-link", root.display()), "own"),
        (&format!("read {}/config-link", root.display()), "own"),
        ("read /dev/zero", "device"),
        ("tail /dev/urandom", "device"),
        ("stat /dev/null", "device"),
    ]
    .into_iter()
    .map(|(probe, why)| (probe.to_string(), why))
    .collect();
    let probes: Vec<&str> = refused.iter().map(|(p, _)| p.as_str()).collect();
    let probed = run(json!({ "case": "fs-probe", "target": probes.join("\n") }));
    assert_eq!(probed["status"], "no-action", "{probed:#}");
    let answers: Vec<&str> = summary(&probed).lines().collect();
    assert_eq!(answers.len(), refused.len(), "{probed:#}");
    // Every problem is collected, so one run shows all that is wrong.
    let mut problems = Vec::new();
    for ((probe, why), answer) in refused.iter().zip(&answers) {
        let expected = match *why {
            "own" => "is the host's own state",
            _ => "is a device file",
        };
        if !(answer.starts_with(&format!("{probe} denied:")) && answer.contains(expected)) {
            problems.push(format!("{probe}: {answer}"));
        }
    }
    if serde_json::to_string(&probed).unwrap().contains(secret_env) {
        problems.push("the server's environment leaked into a run".into());
    }
    // A `host run` next to the server: the server is another process of the host.
    let sibling = format!("read /proc/{pid}/environ\nread /proc/{tid}/mem");
    let (out, took) = run_case(&sandbox, "fs-probe", &sibling, "");
    let from_cli = ended_in_time(&out, took, "host run probing host serve");
    for answer in summary(&from_cli).lines() {
        if !answer.contains("denied") || !answer.contains("is the host's own state") {
            problems.push(format!("from a host run next to it: {answer}"));
        }
    }

    // Walks over the sandbox list the granted files and pass over the host's own.
    let found = run(json!({ "case": "fs-find", "target": dir.display().to_string() }));
    let listed = summary(&found);
    assert!(
        listed.contains(&format!("{}/ok.txt", root.display())),
        "{listed}"
    );
    for own in [
        store.display().to_string(),
        format!("{}/host.toml", dir.display()),
        format!("{}/secrets/token", dir.display()),
        format!("{}/config-link", root.display()),
        cache_entry.display().to_string(),
    ] {
        if listed.contains(&own) {
            problems.push(format!("find listed {own}"));
        }
    }
    let largest = run(json!({ "case": "fs-largest", "target": dir.display().to_string() }));
    if summary(&largest).contains("/cache") || summary(&largest).contains("runs.sqlite3") {
        problems.push(format!(
            "largest measured the host's own state: {}",
            summary(&largest)
        ));
    }

    // 60 runs whose fs work would never end by itself: reads of FIFOs with no writer and a
    // regex costing seconds per MiB.
    let idle_threads = threads(pid);
    // A `Z` on every line: the engine skips lines without the pattern's required literal.
    let line = "абвгдеёжзи йклмнопрс тувфхцчш ".repeat(3) + "Z\n";
    let log = sandbox.write("root/cyrillic.log", line.repeat((4 << 20) / line.len()));
    let mut stuck = Vec::new();
    for i in 0..60 {
        let params = if i % 4 == 0 {
            json!({ "case": "fs-grep", "target": format!("{}|(?:.?\\b){{400}}Z", log.display()) })
        } else {
            let fifo = root.join(format!("fifo-{i}"));
            mkfifo(&fifo);
            json!({ "case": "fs-tail", "target": fifo.display().to_string() })
        };
        stuck.push(submit(params));
    }
    for id in &stuck {
        let run = server.wait_for_run(id, Duration::from_secs(120));
        assert_eq!(run["status"], "failed", "{run:#}");
    }
    let id = server.submit_run(
        "/hooks/run/disk-full",
        TOKEN,
        json!({ "paths": root.display().to_string(), "backups": "", "warn-percent": "99", "critical-percent": "100" })
            .to_string()
            .as_bytes(),
    );
    let good = server.wait_for_run(&id, Duration::from_secs(30));
    assert!(
        matches!(good["status"].as_str(), Some("no-action" | "resolved")),
        "{good:#}"
    );
    assert_eq!(server.get("/healthz").status, 200);

    // Idle blocking threads retire after tokio's 10 s keep-alive; stuck ones never would.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let now = threads(pid);
        if now <= idle_threads + 6 {
            break;
        }
        if Instant::now() > deadline {
            problems.push(format!(
                "the server still has {now} threads (idle: {idle_threads}): fs work was \
                 abandoned, not ended"
            ));
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
