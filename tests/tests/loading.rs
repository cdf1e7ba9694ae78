//! Loading playbooks: a webhook or route names a playbook, never a file; a component file is
//! checked (regular, within the size cap) before it is read; the compile cache is used only
//! when it proves an entry belongs to the component; describe() cannot hang or flood the host.
//! Real `host serve` / `host run` processes, real files, FIFOs and sparse files.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use runbook_tests::server::Server;
use runbook_tests::{Sandbox, guests};
use serde_json::{Value, json};

/// disk-full with nothing to look at: a quick, normal run.
const QUIET_DISK_FULL: [&str; 8] = [
    "-p",
    "paths=",
    "-p",
    "backups=",
    "-p",
    "warn-percent=99",
    "-p",
    "critical-percent=100",
];

/// A sparse file this big is over the default component cap (128 MiB) and takes no disk.
const SPARSE_BYTES: u64 = 1 << 30;

/// A plugin dir holding every kind of broken entry next to nothing else.
fn broken_plugins(sandbox: &Sandbox) -> PathBuf {
    let dir = sandbox.path().join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    for guest in ["describe-sleep", "describe-huge"] {
        std::fs::copy(guests::path(guest), dir.join(format!("{guest}.wasm"))).unwrap();
    }
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.join("fifo.wasm"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    std::fs::File::create(dir.join("sparse.wasm"))
        .unwrap()
        .set_len(SPARSE_BYTES)
        .unwrap();
    dir
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Peak resident memory of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib * 1024
}

fn wait_for_log(sandbox: &Sandbox, server: &Server, needle: &str) {
    let log = sandbox.path().join(format!("serve-{}.log", server.port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains(needle)
    {
        assert!(
            Instant::now() < deadline,
            "the server never logged {needle:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn error_of(reply: &runbook_tests::server::Reply) -> String {
    reply.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// One server for every webhook case: paths are refused, broken entries are refused quickly
/// with their reason, a describe() parked in a sleep blocks no other playbook, and SIGTERM
/// ends the server within its grace while that describe() is still in flight.
#[test]
fn webhooks_name_playbooks_and_a_broken_one_blocks_nobody() {
    let sandbox = Sandbox::new();
    broken_plugins(&sandbox);
    // What a path in a webhook used to reach: a component outside every plugin dir, named
    // like a built-in, and one in the server's working directory.
    let outside = sandbox.path().join("outside/disk-full.wasm");
    std::fs::create_dir_all(outside.parent().unwrap()).unwrap();
    std::fs::copy(guests::path("hostile"), &outside).unwrap();
    std::fs::copy(
        guests::path("hostile"),
        sandbox.path().join("disk-full.wasm"),
    )
    .unwrap();
    sandbox.write(
        "host.toml",
        r#"plugin-dirs = ["plugins"]
[server]
shutdown-grace-secs = 5
[webhooks.run]
auth = { kind = "none" }
[webhooks.api]
auth = { kind = "none" }
[webhooks.alertmanager]
auth = { kind = "none" }

[[route]]
matchers = ['alertname="DiskFull"']
playbook = "describe-huge"
continue = true

[[route]]
matchers = ['alertname="DiskFull"']
playbook = "disk-full"
dry-run = true
params = { paths = "", backups = "", warn-percent = "99", critical-percent = "100" }
"#,
    );
    let mut server = Server::start(&sandbox, &[]);
    // The hostile component would run (and read a file) if any of these reached it.
    let params = json!({ "case": "fs-read", "target": "/etc/hostname" }).to_string();

    for name in [
        percent_encode(outside.to_str().unwrap()),
        percent_encode("../outside/disk-full.wasm"),
        percent_encode("outside/disk-full.wasm"),
        "outside%2fdisk-full.wasm".to_string(),
        "disk-full.wasm".to_string(),
        "%2e%2e".to_string(),
    ] {
        let reply = server.post(&format!("/hooks/run/{name}"), &[], params.as_bytes());
        assert!(
            (400..500).contains(&reply.status),
            "{name}: {} {}",
            reply.status,
            reply.body
        );
        assert!(
            error_of(&reply).contains("is not a playbook name"),
            "{name}: {}",
            reply.body
        );
    }
    assert_eq!(
        server.get("/runs").json(),
        json!([]),
        "a refused name must store no run"
    );

    // Entries that are not loadable are refused at once, with the reason, without reading
    // the file: the server's peak memory stays far below the sparse file's size.
    for (name, reason) in [
        ("fifo", "not a regular file (a FIFO)"),
        ("sparse", "over the component size cap of 128 MiB"),
    ] {
        let started = Instant::now();
        let reply = server.post(&format!("/hooks/run/{name}"), &[], b"{}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{name} took {:?}",
            started.elapsed()
        );
        assert_eq!(reply.status, 422, "{name}: {}", reply.body);
        assert!(error_of(&reply).contains(reason), "{name}: {}", reply.body);
    }
    let peak = peak_rss(server.pid());
    assert!(
        peak < 400 << 20,
        "the server's peak RSS is {} MiB: it read a file it should have refused",
        peak >> 20
    );

    let reply = server.post("/hooks/run/describe-huge", &[], b"{}");
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert!(
        error_of(&reply)
            .contains("describe() is too big: summary is 8388608 bytes (limit 1024 bytes)"),
        "{}",
        reply.body
    );

    // An alert routed to a broken playbook and a good one: the broken route is rejected with
    // its reason, the good one runs.
    let alert = json!({ "version": "4", "status": "firing", "alerts": [{
        "status": "firing", "labels": { "alertname": "DiskFull" }, "annotations": {},
        "startsAt": "2026-11-25T10:00:00Z", "fingerprint": "f-loading" }] });
    let reply = server.post("/hooks/alertmanager", &[], alert.to_string().as_bytes());
    assert_eq!(reply.status, 202, "{}", reply.body);
    let outcomes = reply.json()["alerts"].clone();
    let outcome = |playbook: &str| -> Value {
        outcomes
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["playbook"] == playbook)
            .unwrap_or_else(|| panic!("no outcome for {playbook}: {outcomes:#}"))
            .clone()
    };
    assert_eq!(
        outcome("describe-huge")["disposition"],
        "rejected",
        "{outcomes:#}"
    );
    assert!(
        outcome("describe-huge")["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("limit exceeded: describe() is too big"),
        "{outcomes:#}"
    );
    assert_eq!(
        outcome("disk-full")["disposition"],
        "started",
        "{outcomes:#}"
    );
    let routed_id = outcome("disk-full")["run_id"].as_str().unwrap().to_string();
    assert_eq!(
        server.wait_for_run(&routed_id, Duration::from_secs(30))["status"],
        "no-action"
    );

    // describe() parked in a sleep: its own webhook waits for describe()'s deadline; another
    // playbook's webhook is answered meanwhile.
    let sleeper_done = Arc::new(AtomicBool::new(false));
    let sleeper = {
        let url = server.url("/hooks/run/describe-sleep");
        let done = sleeper_done.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(60)))
                .build()
                .new_agent();
            let mut response = agent
                .post(&url)
                .send("{}")
                .expect("the describe-sleep webhook is answered");
            done.store(true, Ordering::SeqCst);
            let status = response.status().as_u16();
            (
                status,
                response.body_mut().read_to_string().unwrap(),
                started.elapsed(),
            )
        })
    };
    wait_for_log(&sandbox, &server, "loading playbook describe-sleep");
    let started = Instant::now();
    let good = server.post(
        "/hooks/run/disk-full?dry_run=true",
        &[],
        json!({ "paths": "", "backups": "", "warn-percent": "99", "critical-percent": "100" })
            .to_string()
            .as_bytes(),
    );
    assert_eq!(good.status, 202, "{}", good.body);
    assert!(
        !sleeper_done.load(Ordering::SeqCst),
        "disk-full was answered only after describe-sleep's describe() gave up"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let good_id = good.json()["runs"][0].as_str().unwrap().to_string();

    // SIGTERM while describe-sleep's webhook is still waiting: the server ends within its
    // grace (5 s).
    let stopping = Instant::now();
    server.stop("TERM");
    assert!(
        stopping.elapsed() < Duration::from_secs(7),
        "host serve took {:?} to end after SIGTERM (grace 5 s)",
        stopping.elapsed()
    );
    let (status, body, took) = sleeper.join().unwrap();
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("describe() did not answer within its deadline of 3s"),
        "{body}"
    );
    assert!(
        took < Duration::from_secs(6),
        "describe-sleep answered after {took:?}"
    );

    let shown = sandbox.host(&["runs", "show", &good_id, "--json"]);
    let good: Value = shown.json();
    assert_eq!(good["status"], "no-action", "{good:#}");
    let runs = sandbox.host(&["runs", "--json"]).json();
    let ran: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["playbook"].as_str().unwrap())
        .collect();
    assert_eq!(
        ran,
        ["disk-full", "disk-full"],
        "only disk-full ran: {runs:#}"
    );
}

#[test]
fn list_and_check_finish_and_name_each_broken_playbook() {
    let sandbox = Sandbox::new();
    broken_plugins(&sandbox);
    let expected = [
        (
            "describe-sleep",
            "describe() did not answer within its deadline of 3s",
        ),
        (
            "describe-huge",
            "summary is 8388608 bytes (limit 1024 bytes)",
        ),
        ("fifo", "not a regular file (a FIFO)"),
        ("sparse", "over the component size cap of 128 MiB"),
    ];

    let started = Instant::now();
    let list = sandbox.host(&["list", "--json", "--plugin-dir", "plugins"]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "host list took {:?}",
        started.elapsed()
    );
    assert_eq!(
        list.code, 1,
        "a broken playbook fails `host list`: {}",
        list.stderr
    );
    let rows = list.json();
    let row = |name: &str| -> Value {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not listed: {rows:#}"))
            .clone()
    };
    for (name, reason) in expected {
        let error = row(name)["error"].as_str().unwrap_or_default().to_string();
        assert!(error.contains(reason), "{name}: {:#}", row(name));
    }
    assert!(
        row("disk-full")["summary"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{rows:#}"
    );
    assert!(
        list.stdout.len() < 64 << 10,
        "host list printed {} bytes",
        list.stdout.len()
    );

    // A file whose name is not a playbook name is never loaded; check says why.
    std::fs::copy(
        guests::path("hostile"),
        sandbox.path().join("plugins/not.a.name.wasm"),
    )
    .unwrap();
    let check = sandbox.host(&["check", "--plugin-dir", "plugins"]);
    assert_eq!(check.code, 1, "{}", check.stderr);
    assert!(
        check
            .stderr
            .contains("not.a.name.wasm: not loaded: \"not.a.name\" is not a playbook name"),
        "{}",
        check.stderr
    );
    for (name, reason) in expected {
        assert!(
            check
                .stdout
                .lines()
                .any(|l| l.contains("ERR") && l.contains(name) && l.contains(reason)),
            "{name} is not reported broken:\n{}",
            check.stdout
        );
    }
    assert!(
        check
            .stdout
            .lines()
            .any(|l| l.contains("ok ") && l.contains("disk-full")),
        "{}",
        check.stdout
    );
}

#[test]
fn a_route_naming_a_path_is_a_config_error() {
    let sandbox = Sandbox::new();
    let file = sandbox.path().join("outside/disk-full.wasm");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::copy(guests::path("hostile"), &file).unwrap();
    sandbox.write(
        "host.toml",
        format!(
            "[[route]]\nmatchers = ['alertname=\"DiskFull\"']\nplaybook = \"{}\"\n",
            file.display()
        ),
    );
    let check = sandbox.host(&["check"]);
    assert_eq!(check.code, 2, "{}", check.stderr);
    assert!(
        check.stderr.contains("[[route]] #1: playbook")
            && check.stderr.contains("is not a playbook name"),
        "{}",
        check.stderr
    );
}

#[test]
fn the_cli_still_runs_a_component_file_it_is_given() {
    let sandbox = Sandbox::new();
    let file = sandbox.path().join("elsewhere/my_playbook.wasm");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::copy(guests::path("hostile"), &file).unwrap();
    for args in [
        vec!["inspect", file.to_str().unwrap()],
        vec!["inspect", "elsewhere/my_playbook.wasm"],
    ] {
        let run = sandbox.host(&args);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        assert!(
            run.stdout.contains("Misbehaves on purpose"),
            "{}",
            run.stdout
        );
    }
    let small_cap = sandbox.write("host.toml", "max-component-mib = 0\n");
    assert!(small_cap.is_file());
    let run = sandbox.host(&["run", "--plugin", file.to_str().unwrap(), "-p", "case=loop"]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains("over the component size cap of 0 MiB (max-component-mib in host.toml)"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_cache_dir_others_can_write_or_own_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let cache = sandbox.cache_dir();
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut args = vec!["run", "disk-full", "--dry-run"];
    args.extend(QUIET_DISK_FULL);
    let run = sandbox.host(&args);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("is writable by group or others (mode 0777)")
            && run
                .stderr
                .contains(&format!("chmod 700 {}", cache.display())),
        "{}",
        run.stderr
    );
    assert!(
        !run.stdout.contains("disk-full"),
        "nothing may run: {}",
        run.stdout
    );
    assert!(
        std::fs::read_dir(&cache).unwrap().next().is_none(),
        "nothing is written there"
    );

    // Owned by someone else (only root can arrange that here).
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
    if std::os::unix::fs::chown(&cache, Some(65534), None).is_ok() {
        let run = sandbox.host(&args);
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(
            run.stderr
                .contains("is owned by uid 65534, not by this user"),
            "{}",
            run.stderr
        );
    }
}

fn run_disk_full(sandbox: &Sandbox) -> (Value, String) {
    let mut args = vec!["run", "disk-full", "--dry-run", "--json"];
    args.extend(QUIET_DISK_FULL);
    let run = sandbox.host(&args);
    assert!(
        run.code == 0 || !run.stdout.is_empty(),
        "disk-full did not run: {}",
        run.stderr
    );
    (run.json(), run.stderr)
}

fn cache_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    entries.sort();
    entries
}

#[test]
fn a_substituted_cache_entry_is_recompiled_and_disk_full_runs_as_itself() {
    let sandbox = Sandbox::new();
    let (first, _) = run_disk_full(&sandbox);
    assert_eq!(first["timings"]["load"]["cache"], "miss", "{first:#}");
    let entry = PathBuf::from(first["timings"]["load"]["cache_file"].as_str().unwrap());
    let record = PathBuf::from(format!("{}.hmac", entry.display()));

    // Another component's compiled code lands in the cache too.
    let inspect = sandbox.host(&["inspect", guests::path("hostile").to_str().unwrap()]);
    assert_eq!(inspect.code, 0, "{}", inspect.stderr);
    let other = cache_entries(&sandbox.cache_dir())
        .into_iter()
        .find(|p| *p != entry)
        .expect("the hostile component's cache entry");
    let other_record = PathBuf::from(format!("{}.hmac", other.display()));

    // Its code over disk-full's entry; then its code and its record together.
    for copy_record in [false, true] {
        std::fs::copy(&other, &entry).unwrap();
        if copy_record {
            std::fs::copy(&other_record, &record).unwrap();
        }
        let (run, stderr) = run_disk_full(&sandbox);
        assert!(
            stderr.contains(&format!(
                "warning: compile cache entry {} not used",
                entry.display()
            )) && stderr.contains("recompiling and rewriting it"),
            "record copied: {copy_record}: {stderr}"
        );
        assert_eq!(run["timings"]["load"]["cache"], "miss", "{run:#}");
        assert_eq!(run["playbook"], "disk-full");
        assert_eq!(
            run["status"], "no-action",
            "disk-full ran as something else: {run:#}"
        );
    }

    // The rewritten entry is trusted again, silently.
    let (again, stderr) = run_disk_full(&sandbox);
    assert_eq!(again["timings"]["load"]["cache"], "hit", "{again:#}");
    assert!(!stderr.contains("warning: compile cache"), "{stderr}");
}
