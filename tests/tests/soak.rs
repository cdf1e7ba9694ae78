//! The host keeps serving: one `host serve` takes a mix of hostile runs (spinning, hoarding,
//! parked in the host, flooding, panicking, oversized) and well-behaved ones at once. Afterwards
//! it answers, a disk-full run completes normally, its threads are back near where they were
//! before the storm, and a second storm adds no memory to the first's (the allocator keeps
//! some of a storm's high-water mark: 20–80 MiB here, varying with how runs overlapped, and
//! malloc_trim does not return it, so "back to idle" alone was a coin toss on a busy machine).

use std::time::{Duration, Instant};

use runbook_tests::server::Server;
use runbook_tests::{RemoveOnDrop, Sandbox, deep_tree};
use serde_json::{Value, json};

const TOKEN: &str = "rb-soak-token";

/// A hostile case: its name, its parameters (values may be placeholders filled in at run
/// time), and the reason the run must end with ("" when it must not fail).
type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

const CASES: &[Case] = &[
    ("loop", &[], "limit exceeded: deadline of 5s"),
    ("memory", &[], "limit exceeded: linear memory of 96 MiB"),
    (
        "sleep",
        &[],
        "limit exceeded: deadline of 5s while waiting in the host",
    ),
    (
        "hang",
        &[("target", "SILENT")],
        "limit exceeded: deadline of 5s while waiting in the host",
    ),
    ("panic", &[], "hostile playbook panics on purpose"),
    ("logs", &[], "limit exceeded:"),
    ("big-summary", &[], "limit exceeded: a summary of"),
    ("many-actions", &[], "limit exceeded: 1000000 actions"),
    (
        "timeline-flood",
        &[],
        "limit exceeded: more than 4194304 bytes of timeline",
    ),
    ("big-args", &[], ""),
    ("fs-tail", &[("target", "FIFO")], "invalid"),
    ("fs-grep", &[("target", "DEV_ZERO")], "is a device file"),
    ("fs-grep", &[("target", "COSTLY")], "deadline"),
    ("fs-grep", &[("target", "COSTLY")], "deadline"),
    ("fs-largest", &[("target", "DEEP")], ""),
];

/// Threads and resident memory of a process, from /proc.
fn threads_and_rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    (field("Threads:"), field("VmRSS:") * 1024)
}

fn submit(server: &Server, playbook: &str, params: Value) -> String {
    server.submit_run(
        &format!("/hooks/run/{playbook}"),
        TOKEN,
        params.to_string().as_bytes(),
    )
}

fn disk_full(server: &Server) -> Value {
    let id = submit(
        server,
        "disk-full",
        json!({ "paths": "", "backups": "", "warn-percent": "99", "critical-percent": "100" }),
    );
    let run = server.wait_for_run(&id, Duration::from_secs(60));
    assert!(
        matches!(run["status"].as_str(), Some("no-action" | "resolved")),
        "{run:#}"
    );
    run
}

/// One storm: every hostile case three times with normal disk-full runs among them, each run
/// checked to end as it must.
fn storm(server: &Server, target: &dyn Fn(&str) -> String) {
    let started = Instant::now();
    let mut hostile = Vec::new();
    let mut good = Vec::new();
    for _ in 0..3 {
        for (case, params, expected) in CASES {
            let mut body = json!({ "case": case });
            for (k, v) in *params {
                body[*k] = Value::String(target(v));
            }
            hostile.push((*case, *expected, submit(server, "hostile", body)));
        }
        good.push(submit(
            server,
            "disk-full",
            json!({ "paths": "", "backups": "", "warn-percent": "99", "critical-percent": "100" }),
        ));
        let broken = server.post(
            "/hooks/run/describe-sleep",
            &[("Authorization", &format!("Bearer {TOKEN}"))],
            b"{}",
        );
        assert_eq!(broken.status, 422, "{}", broken.body);
        assert!(broken.body.contains("describe()"), "{}", broken.body);
    }
    for (case, expected, id) in &hostile {
        let run = server.wait_for_run(id, Duration::from_secs(180));
        if expected.is_empty() {
            assert_ne!(run["status"], "failed", "{case}: {run:#}");
        } else {
            assert_eq!(run["status"], "failed", "{case}: {run:#}");
            let reason = run["reason"].as_str().unwrap_or_default();
            assert!(reason.contains(expected), "{case}: {reason:?}");
        }
        assert!(
            !run["summary"]
                .as_str()
                .unwrap_or_default()
                .contains("ESCAPED"),
            "{case} escaped: {run:#}"
        );
    }
    for id in &good {
        let run = server.wait_for_run(id, Duration::from_secs(60));
        assert!(
            matches!(run["status"].as_str(), Some("no-action" | "resolved")),
            "a well-behaved run in the storm: {run:#}"
        );
    }
    eprintln!(
        "{} hostile and {} normal runs in {:.1}s",
        hostile.len(),
        good.len(),
        started.elapsed().as_secs_f64()
    );
}

/// Threads once tokio's idle blocking threads have left (keep-alive 10 s), as long as there
/// are more than `idle_threads + 4`.
fn settled_threads(pid: u32, idle_threads: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut threads = threads_and_rss(pid).0;
    while threads > idle_threads + 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        threads = threads_and_rss(pid).0;
    }
    threads
}

/// RSS once two readings half a second apart agree within 1 MiB (the trim after a run ends
/// runs on a blocking thread of its own), or after 20 s.
fn steady_rss(pid: u32) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = threads_and_rss(pid).1;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = threads_and_rss(pid).1;
        if now.abs_diff(last) < (1 << 20) || Instant::now() >= deadline {
            return now;
        }
        last = now;
    }
}

#[test]
fn the_server_comes_back_to_idle_after_a_storm_of_hostile_runs() {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("hostile");
    // A playbook whose describe() never answers sits in the same plugin dir.
    sandbox.add_plugin("describe-sleep");
    let silent = runbook_tests::http::Peer::silent();
    // Files built to stall or crash host work: a FIFO nobody writes, a log a regex needs
    // seconds per MiB on, a tree 3,000 levels deep.
    let fifo = sandbox.path().join("pipe");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    // A `Z` on every line: the engine skips lines without the pattern's required literal.
    let line = "абвгдеёжзи йклмнопрс тувфхцчш ".repeat(3) + "Z\n";
    let costly = sandbox.write("cyrillic.log", line.repeat((8 << 20) / line.len()));
    let deep = sandbox.path().join("deep");
    std::fs::create_dir_all(&deep).unwrap();
    let _cleanup = RemoveOnDrop(deep.clone());
    deep_tree(&deep, 3000);
    let target = |placeholder: &str| match placeholder {
        "SILENT" => silent.url("/"),
        "FIFO" => fifo.display().to_string(),
        "DEV_ZERO" => "/dev/zero|x".to_string(),
        "COSTLY" => format!("{}|(?:.?\\b){{400}}Z", costly.display()),
        "DEEP" => deep.display().to_string(),
        other => other.to_string(),
    };
    sandbox.write(
        "host.toml",
        format!(
            "plugin-dirs = [\"plugins\"]\n\
             [server]\nmax-concurrent-runs = 8\nqueue-limit = 1000\n\
             [webhooks.run]\nauth = {{ kind = \"bearer\", token = {{ env = \"RB_SOAK_TOKEN\" }} }}\n\
             [plugins.hostile]\nmax-concurrent = 6\ndeadline-secs = 5\nmemory-mib = 96\n\
             [plugins.hostile.grants]\nnotify = [\"ops\"]\nfs-read = [\"/\"]\nhttp = [\"{}\"]\n",
            silent.url("")
        ),
    );
    let server = Server::start(&sandbox, &[("RB_SOAK_TOKEN", TOKEN)]);
    let pid = server.pid();

    // Idle: both playbooks loaded and one normal run done.
    disk_full(&server);
    let warm = submit(&server, "hostile", json!({ "case": "big-args" }));
    server.wait_for_run(&warm, Duration::from_secs(60));
    let (idle_threads, idle_rss) = threads_and_rss(pid);

    // Two storms: the allocator keeps some of the first one's high-water mark (arenas), but a
    // second identical storm must not add to it: nothing is kept per run.
    let mut after = Vec::new();
    for round in 1..=2 {
        storm(&server, &target);
        // Afterwards: the server answers and a normal run completes.
        assert_eq!(server.get("/healthz").status, 200);
        // The normal run comes after the storm's last threads are gone: when it ends the
        // server trims the allocator, so what those threads freed is handed back before RSS
        // is read (read before, it varied by a blocking thread's arena: 36 MiB once in CI).
        let threads = settled_threads(pid, idle_threads);
        disk_full(&server);
        let metrics = server.get("/metrics").body;
        assert!(
            metrics.lines().any(|l| l == "runbook_running_runs 0"),
            "the running gauge is back to zero:\n{metrics}"
        );
        let rss = steady_rss(pid);
        eprintln!(
            "storm {round}: threads {idle_threads} idle → {threads} after; RSS {} MiB → {} MiB",
            idle_rss >> 20,
            rss >> 20
        );
        assert!(
            threads <= idle_threads + 4,
            "{threads} threads after storm {round}, {idle_threads} before"
        );
        after.push(rss);
    }
    assert!(
        after[0] <= idle_rss + (128 << 20),
        "RSS {} MiB after the first storm, {} MiB before",
        after[0] >> 20,
        idle_rss >> 20
    );
    assert!(
        after[1] <= after[0] + (24 << 20),
        "RSS {} MiB after the second storm, {} MiB after the first: kept per run",
        after[1] >> 20,
        after[0] >> 20
    );
}
