//! Instances from a pool, components loaded without rehashing. `host serve` takes a burst of
//! 1,000 runs of the trivial `noop` playbook through its instance pool and stays within the
//! pool's memory cap; without the address space for a pool it says so once and runs on demand.
//! `host run --plugin` of an unchanged file takes its hash from the compile cache's memo, and
//! neither a rewritten file nor a forged or transplanted memo makes it run other code.
//! Real `host serve` / `host run` processes, real files.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use runbook_tests::server::Server;
use runbook_tests::{Sandbox, guests};
use serde_json::Value;
use sha2::{Digest, Sha256};

const TOKEN: &str = "rb-pooling-token";
const BURST: usize = 1_000;

fn status_field(pid: u32, name: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
        * 1024
}

/// A sandbox whose plugin dir holds `noop`, with a bearer token on /hooks/run.
fn noop_server_sandbox(server_toml: &str) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("noop");
    sandbox.write(
        "host.toml",
        format!(
            "plugin-dirs = [\"plugins\"]\n[server]\n{server_toml}\n\
             [webhooks.run]\nauth = {{ kind = \"bearer\", token = {{ env = \"RB_POOLING_TOKEN\" }} }}\n"
        ),
    );
    sandbox
}

/// POSTs `count` noop runs from 16 threads at once; returns the run ids.
fn burst(server: &Server, count: usize) -> Vec<String> {
    let threads = 16;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..count)
                        .step_by(threads)
                        .map(|_| server.submit_run("/hooks/run/noop", TOKEN, b"{}"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

fn all_done(server: &Server, ids: &[String]) {
    for id in ids {
        let run = server.wait_for_run(id, Duration::from_secs(120));
        assert_eq!(run["status"], "no-action", "{run:#}");
    }
}

/// (slots, MiB per slot, cap MiB) from the server's "instance pool: …" line.
fn pool_line(log: &str) -> Option<(u64, u64, u64)> {
    let line = log.lines().find_map(|l| l.split_once("instance pool: "))?.1;
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    Some((numbers[0], numbers[1], numbers[2]))
}

#[test]
fn a_burst_of_a_thousand_runs_goes_through_the_pool_within_its_memory_cap() {
    let sandbox = noop_server_sandbox("max-concurrent-runs = 8\nqueue-limit = 1000");
    let server = Server::start(&sandbox, &[("RB_POOLING_TOKEN", TOKEN)]);
    let (slots, mib, cap_mib) = pool_line(&server.log(&sandbox))
        .unwrap_or_else(|| panic!("no instance pool:\n{}", server.log(&sandbox)));
    // Eight runs plus describe() slots, each as large as the largest memory-mib (default 64).
    assert!(
        slots > 8 && mib == 64 && cap_mib == slots * 64,
        "{slots} {mib} {cap_mib}"
    );

    // Loaded and warm before the burst.
    all_done(&server, &burst(&server, 16));
    let before = status_field(server.pid(), "VmRSS:");
    let ids = burst(&server, BURST);
    all_done(&server, &ids);
    let peak = status_field(server.pid(), "VmHWM:");
    let growth = peak.saturating_sub(before);
    assert!(
        growth <= cap_mib << 20,
        "peak RSS grew {} MiB during the burst, over the pool's cap of {cap_mib} MiB",
        growth >> 20
    );
    let log = server.log(&sandbox);
    assert!(!log.contains("could not be reserved"), "{log}");
}

#[test]
fn without_address_space_for_the_pool_the_server_says_so_once_and_runs_on_demand() {
    // A pool of 5 slots needs ~80 GiB of address space; one on-demand instance ~4 GiB.
    let sandbox = noop_server_sandbox("max-concurrent-runs = 1\nqueue-limit = 100");
    let limit = format!("--as={}", 24u64 << 30);
    let server = Server::start_under(
        &sandbox,
        &[("RB_POOLING_TOKEN", TOKEN)],
        &["prlimit", &limit, "--"],
    );
    all_done(&server, &burst(&server, 20));
    let log = server.log(&sandbox);
    assert_eq!(
        log.matches("the instance pool (5 slots of 64 MiB) could not be reserved")
            .count(),
        1,
        "{log}"
    );
    assert!(log.contains("instances are allocated on demand"), "{log}");
    assert!(pool_line(&log).is_none(), "{log}");
}

/// Copies `src` to `dst` in the sandbox and waits until the copy is old enough to be memoised
/// (the cache does not memoise a file changed within the last two seconds).
fn settled_copies(sandbox: &Sandbox, copies: &[(&str, &str)]) -> Vec<PathBuf> {
    let paths: Vec<PathBuf> = copies
        .iter()
        .map(|(src, dst)| {
            let path = sandbox.path().join(dst);
            std::fs::copy(guests::path(src), &path).unwrap();
            path
        })
        .collect();
    let changed = paths
        .iter()
        .map(|p| std::fs::metadata(p).unwrap())
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            SystemTime::UNIX_EPOCH + Duration::from_secs(m.ctime() as u64 + 1)
        })
        .max()
        .unwrap();
    while SystemTime::now() < changed + Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(100));
    }
    paths
}

fn run_plugin(sandbox: &Sandbox, path: &Path, params: &[&str]) -> (Value, String) {
    let mut args = vec!["run", "--plugin", path.to_str().unwrap(), "--json"];
    args.extend(params);
    let run = sandbox.host(&args);
    (run.json(), run.stderr)
}

/// Where the cache keeps the memo of the component file at `path`.
fn memo_path(sandbox: &Sandbox, path: &Path) -> PathBuf {
    let name = Sha256::digest(path.as_os_str().as_encoded_bytes());
    sandbox
        .cache_dir()
        .join(format!("{}.memo", hex::encode(&name[..16])))
}

#[test]
fn an_unchanged_file_is_not_rehashed_and_a_rewritten_one_is() {
    let sandbox = Sandbox::new();
    let paths = settled_copies(&sandbox, &[("noop", "noop.wasm")]);
    let noop = &paths[0];

    let (first, _) = run_plugin(&sandbox, noop, &[]);
    assert_eq!(
        first["timings"]["load"]["wasm_hash"], "computed",
        "{first:#}"
    );
    assert_eq!(first["timings"]["load"]["cache"], "miss");
    let (second, stderr) = run_plugin(&sandbox, noop, &[]);
    assert_eq!(second["timings"]["load"]["wasm_hash"], "memo", "{second:#}");
    assert_eq!(second["timings"]["load"]["cache"], "hit");
    assert!(!stderr.contains("warning"), "{stderr}");

    // Rewritten in place: same size, same mtime, another hash (one byte of the producers
    // custom section). Only the ctime, which no one but the kernel sets, tells.
    let meta = std::fs::metadata(noop).unwrap();
    let mut bytes = std::fs::read(noop).unwrap();
    let at = bytes
        .windows(5)
        .rposition(|w| w == b"rustc")
        .expect("a producers section naming rustc");
    bytes[at] = b'R';
    std::fs::write(noop, &bytes).unwrap();
    filetime::set_file_mtime(noop, filetime::FileTime::from_last_modification_time(&meta)).unwrap();
    assert_eq!(std::fs::metadata(noop).unwrap().len(), meta.len());
    let (rewritten, _) = run_plugin(&sandbox, noop, &[]);
    assert_eq!(
        rewritten["timings"]["load"]["wasm_hash"], "computed",
        "{rewritten:#}"
    );
    assert_eq!(
        rewritten["timings"]["load"]["cache"], "miss",
        "{rewritten:#}"
    );
    assert_ne!(
        rewritten["timings"]["load"]["cache_file"], second["timings"]["load"]["cache_file"],
        "the rewritten file was loaded from the old file's entry"
    );
}

#[test]
fn a_forged_or_transplanted_memo_never_brings_in_another_components_code() {
    let sandbox = Sandbox::new();
    let paths = settled_copies(
        &sandbox,
        &[("noop", "noop.wasm"), ("hostile", "hostile.wasm")],
    );
    let (noop, hostile) = (&paths[0], &paths[1]);
    let hostile_params = ["-p", "case=panic"];
    // Both compiled, both memoised.
    for _ in 0..2 {
        run_plugin(&sandbox, noop, &[]);
        run_plugin(&sandbox, hostile, &hostile_params);
    }
    let noop_memo = memo_path(&sandbox, noop);
    let hostile_memo = memo_path(&sandbox, hostile);
    let genuine = std::fs::read_to_string(&noop_memo).expect("noop's memo");

    // The hostile file's memo (valid for its own path) over noop's; then noop's own memo with
    // the hostile component's hash in it.
    let hostile_line = std::fs::read_to_string(&hostile_memo).expect("hostile's memo");
    let hostile_sha = hostile_line.split(' ').nth(5).unwrap().to_string();
    let noop_sha = genuine.split(' ').nth(5).unwrap().to_string();
    let forged = genuine.replace(&noop_sha, &hostile_sha);
    for (what, memo) in [("transplanted", hostile_line), ("forged", forged)] {
        std::fs::write(&noop_memo, memo).unwrap();
        let (run, stderr) = run_plugin(&sandbox, noop, &[]);
        assert!(
            stderr.contains(&format!(
                "warning: compile cache memo for {} not used",
                noop.display()
            )),
            "{what}: {stderr}"
        );
        assert_eq!(
            run["timings"]["load"]["wasm_hash"], "computed",
            "{what}: {run:#}"
        );
        assert_eq!(
            run["status"], "no-action",
            "{what}: noop ran as something else: {run:#}"
        );
        assert_eq!(run["summary"], "nothing to do", "{what}: {run:#}");
    }

    // The hostile file moved over noop's path: another inode, so noop's memo does not apply.
    run_plugin(&sandbox, noop, &[]);
    std::fs::rename(hostile, noop).unwrap();
    let (run, _) = run_plugin(&sandbox, noop, &hostile_params);
    assert_eq!(run["timings"]["load"]["wasm_hash"], "computed", "{run:#}");
    assert!(
        run["reason"]
            .as_str()
            .unwrap_or("")
            .contains("panics on purpose"),
        "the file now holds the hostile playbook and must run as it: {run:#}"
    );
}
