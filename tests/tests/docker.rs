//! bot-down, web-down and disk-full against the real Docker engine (`scripts/test-env.sh`
//! starts one). Containers are unique per test and removed when the test ends.

use std::sync::RwLock;

use runbook_tests::docker::{IMAGE, TestContainer, docker};
use runbook_tests::{Sandbox, calls};

/// `docker container prune` removes every stopped container on the engine, other tests'
/// included: the prune test runs alone, the others share.
static ENGINE: RwLock<()> = RwLock::new(());

fn run_json(sandbox: &Sandbox, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.push("--json");
    let run = sandbox.host(&all);
    (run.code, run.json())
}

/// `count` runs of the same arguments, started together (a barrier), as their JSON records.
fn runs_together(sandbox: &Sandbox, args: &[&str], count: usize) -> Vec<serde_json::Value> {
    let start = std::sync::Barrier::new(count);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..count)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    run_json(sandbox, args).1
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    })
}

fn restarts(run: &serde_json::Value) -> usize {
    calls(run, "docker", "restart").len() + calls(run, "docker", "start").len()
}

#[test]
fn bot_down_restarts_a_stopped_bot_and_verifies_it() {
    let _engine = ENGINE.read().unwrap();
    let bot = TestContainer::bot();
    docker(&["stop", "-t", "1", &bot.name]);
    bot.wait_for_state("exited");

    let sandbox = Sandbox::new();
    let health = bot.url("/health");
    let (code, run) = run_json(
        &sandbox,
        &[
            "bot-down",
            "-p",
            &format!("container={}", bot.name),
            "-p",
            &format!("health-url={health}"),
        ],
    );
    assert_eq!(run["status"], "resolved", "{run:#}");
    assert_eq!(code, 0);
    assert_eq!(bot.state(), "running");
    assert_eq!(restarts(&run), 1, "{run:#}");

    // The timeline lists every call: diagnosis, restart, verification, notification.
    for (interface, function) in [
        ("docker", "inspect"),
        ("docker", "logs"),
        ("http", "probe"),
        ("notify", "send"),
    ] {
        let found = calls(&run, interface, function);
        assert!(
            !found.is_empty(),
            "no {interface}.{function} in the timeline"
        );
        assert!(found.iter().all(|c| c["duration_ms"].is_number()));
    }
    let note = run["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "notification")
        .unwrap();
    assert_eq!(note["state"], "delivered");
    assert_eq!(note["channel"], "ops");
}

#[test]
fn bot_down_escalates_a_bot_that_crashes_again_without_endless_restarts() {
    let _engine = ENGINE.read().unwrap();
    let bot = TestContainer::bot();
    std::fs::write(bot.control_file("crash-on-start"), "").unwrap();
    std::fs::write(bot.control_file("crash"), "").unwrap();
    bot.wait_for_state("exited");

    let sandbox = Sandbox::new();
    let (code, run) = run_json(
        &sandbox,
        &[
            "bot-down",
            "-p",
            &format!("container={}", bot.name),
            "-p",
            "max-restarts=2",
            "-p",
            "wait-secs=5",
        ],
    );
    assert_eq!(run["status"], "escalated", "{run:#}");
    assert_eq!(code, 3);
    assert!(
        restarts(&run) >= 1 && restarts(&run) <= 2,
        "restarts: {}",
        restarts(&run)
    );
    let artifacts = run["artifacts"].as_array().unwrap();
    let logs = artifacts
        .iter()
        .find(|a| a["name"] == "bot-logs.txt")
        .expect("log excerpt attached");
    assert!(
        logs["text"].as_str().unwrap().contains("lost connection"),
        "{logs:#}"
    );
}

#[test]
fn bot_down_dry_run_restarts_nothing() {
    let _engine = ENGINE.read().unwrap();
    let bot = TestContainer::bot();
    docker(&["stop", "-t", "1", &bot.name]);
    bot.wait_for_state("exited");
    let started_before = bot.started_at();

    let sandbox = Sandbox::new();
    let (_, run) = run_json(
        &sandbox,
        &[
            "bot-down",
            "--dry-run",
            "-p",
            &format!("container={}", bot.name),
        ],
    );
    assert_eq!(bot.state(), "exited");
    assert_eq!(bot.started_at(), started_before);
    let mutations: Vec<_> = run["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["event"] == "call" && (e["function"] == "start" || e["function"] == "restart")
        })
        .collect();
    assert!(
        !mutations.is_empty() && mutations.iter().all(|c| c["result"] == "would"),
        "{run:#}"
    );
    assert_eq!(run["status"], "escalated");
}

#[test]
fn a_missing_bot_container_escalates_and_tells_ops() {
    let sandbox = Sandbox::new();
    let (code, run) = run_json(
        &sandbox,
        &["bot-down", "-p", "container=rbt-no-such-container"],
    );
    assert_eq!(code, 3, "{run:#}");
    assert_eq!(calls(&run, "docker", "inspect")[0]["result"], "not-found");
    assert_eq!(run["status"], "escalated");
    assert!(
        run["summary"]
            .as_str()
            .unwrap()
            .contains("container rbt-no-such-container not found"),
        "{run:#}"
    );
    let notes: Vec<&serde_json::Value> = run["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "notification")
        .collect();
    assert_eq!(notes.len(), 1, "{run:#}");
    assert_eq!(notes[0]["severity"], "critical");
    assert!(calls(&run, "docker", "restart").is_empty());
}

#[test]
fn a_dead_engine_is_unavailable_and_the_run_fails_fast() {
    let sandbox = Sandbox::new();
    let dead = sandbox.path().join("dead.sock");
    let endpoint = format!("unix://{}", dead.display());
    let out = sandbox.host_env(
        &["run", "bot-down", "--json", "-p", "container=bot"],
        &[("DOCKER_HOST", &endpoint)],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let run = out.json();
    let inspect = &calls(&run, "docker", "inspect")[0];
    assert_eq!(inspect["result"], "unavailable");
    assert!(
        inspect["detail"].as_str().unwrap().contains(&endpoint),
        "{inspect:#}"
    );
    assert!(run["reason"].as_str().unwrap().contains("unavailable"));
}

#[test]
fn web_down_restarts_a_web_container_whose_server_died() {
    let _engine = ENGINE.read().unwrap();
    let web = TestContainer::web();
    docker(&["exec", &web.name, "sh", "-c", "kill $(pidof httpd)"]);
    let started_before = web.started_at();

    let sandbox = Sandbox::new();
    let (code, run) = run_json(
        &sandbox,
        &[
            "web-down",
            "-p",
            &format!("url={}", web.url("/index.html")),
            "-p",
            &format!("container={}", web.name),
        ],
    );
    assert_eq!(run["status"], "resolved", "{run:#}");
    assert_eq!(code, 0);
    let probes = calls(&run, "http", "probe");
    assert!(
        probes[0]["detail"].as_str().unwrap().starts_with("down:"),
        "{:#}",
        probes[0]
    );
    assert!(
        probes.last().unwrap()["detail"]
            .as_str()
            .unwrap()
            .starts_with("healthy")
    );
    assert_eq!(calls(&run, "docker", "restart").len(), 1);
    assert_ne!(web.started_at(), started_before);
}

#[test]
fn web_down_on_a_healthy_url_does_nothing() {
    let _engine = ENGINE.read().unwrap();
    let web = TestContainer::web();
    let started_before = web.started_at();
    let sandbox = Sandbox::new();
    let (code, run) = run_json(
        &sandbox,
        &[
            "web-down",
            "-p",
            &format!("url={}", web.url("/index.html")),
            "-p",
            &format!("container={}", web.name),
        ],
    );
    assert_eq!(
        (code, run["status"].as_str().unwrap()),
        (0, "no-action"),
        "{run:#}"
    );
    assert!(calls(&run, "docker", "restart").is_empty());
    assert_eq!(web.started_at(), started_before);
}

#[test]
fn restarting_an_ungranted_container_is_denied() {
    let _engine = ENGINE.read().unwrap();
    let bot = TestContainer::bot();
    docker(&["stop", "-t", "1", &bot.name]);
    let sandbox = Sandbox::new();
    sandbox.write(
        "host.toml",
        "[plugins.bot-down.grants]\nnotify = [\"ops\"]\n\
         docker = [{ containers = [\"rbt-*\"], verbs = [\"read\"] }, { containers = [\"payments-*\"], verbs = [\"restart\", \"start\"] }]\n",
    );
    let (_, run) = run_json(
        &sandbox,
        &["bot-down", "-p", &format!("container={}", bot.name)],
    );
    let attempts: Vec<_> = run["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["event"] == "call" && (e["function"] == "start" || e["function"] == "restart")
        })
        .collect();
    assert!(!attempts.is_empty());
    assert!(attempts.iter().all(|c| c["result"] == "denied"), "{run:#}");
    assert_eq!(bot.state(), "exited");
    assert_eq!(run["status"], "escalated");
}

/// The docker CLI's `system df` figures, in bytes, from its JSON lines.
fn cli_df() -> Vec<(String, f64)> {
    docker(&["system", "df", "--format", "{{.Type}}\t{{.Size}}"])
        .lines()
        .map(|line| {
            let (kind, size) = line.split_once('\t').unwrap();
            (kind.to_string(), parse_size(size))
        })
        .collect()
}

/// "1.982MB", "0B", "512kB" → bytes (decimal units, as the docker CLI prints them).
fn parse_size(text: &str) -> f64 {
    let digits: String = text
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let value: f64 = digits.parse().unwrap_or(0.0);
    let unit = &text[digits.len()..];
    let scale = match unit {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        other => panic!("unknown unit {other:?} in {text:?}"),
    };
    value * scale
}

/// Debian's engine (20.10) answers a disk usage request made while another is walking with
/// a 500. Several disk-full runs at once (a fleet-wide disk alert) must all get their figures.
#[test]
fn simultaneous_disk_full_runs_all_get_docker_disk_usage() {
    let _engine = ENGINE.read().unwrap();
    let sandbox = Sandbox::new();
    let args = ["disk-full", "-p", "paths=", "-p", "backups=", "--dry-run"];
    // The first run compiles the playbook, so the others start together from the cache.
    let (_, first) = run_json(&sandbox, &args);
    assert_eq!(
        calls(&first, "docker", "disk-usage")[0]["result"],
        "ok",
        "{first:#}"
    );

    // Rounds of six started together: one round overlaps its walks only some of the time.
    for _round in 0..10 {
        let runs = runs_together(&sandbox, &args, 6);
        for run in &runs {
            let df = calls(run, "docker", "disk-usage");
            assert_eq!(df.len(), 1, "{run:#}");
            assert_eq!(df[0]["result"], "ok", "{run:#}");
        }
    }
}

#[test]
fn disk_full_reports_docker_df_and_prunes_only_when_granted() {
    let _engine = ENGINE.write().unwrap();
    let stopped = TestContainer::web();
    docker(&["stop", "-t", "1", &stopped.name]);
    // Leave something in the stopped container's writable layer, so prune reclaims bytes.
    let sandbox = Sandbox::new();
    let forced = [
        "disk-full",
        "-p",
        "warn-percent=0.001",
        "-p",
        "critical-percent=0.01",
        "-p",
        "paths=",
        "-p",
        "backups=",
    ];

    // Default grants: disk-usage only; prune is denied and nothing is removed.
    let (_, run) = run_json(&sandbox, &forced);
    let df = calls(&run, "docker", "disk-usage");
    assert_eq!(df[0]["result"], "ok", "{run:#}");
    let detail = df[0]["detail"].as_str().unwrap();
    for (kind, bytes) in cli_df() {
        let key = match kind.as_str() {
            "Images" => "images",
            "Containers" => "containers",
            "Local Volumes" => "volumes",
            "Build Cache" => "build-cache",
            _ => continue,
        };
        // "images 1 (1 active) 1.9 MiB, reclaimable 0 B": one decimal of a binary unit.
        let (ours, unit): (f64, f64) = detail
            .split("; ")
            .find(|s| s.starts_with(&format!("{key} ")))
            .and_then(|s| s.split(") ").nth(1))
            .and_then(|s| s.split(", ").next())
            .and_then(|size| {
                let (value, unit) = size.split_once(' ')?;
                let unit = match unit {
                    "B" => 1.0,
                    "KiB" => 1024.0,
                    "MiB" => 1024.0 * 1024.0,
                    "GiB" => 1024.0 * 1024.0 * 1024.0,
                    _ => return None,
                };
                Some((value.parse::<f64>().ok()? * unit, unit))
            })
            .unwrap_or_else(|| panic!("{key} not in {detail:?}"));
        // Ours is rounded to a tenth of its unit; the CLI to 4 significant digits.
        assert!(
            (ours - bytes).abs() <= unit * 0.05 + bytes * 0.001 + 1.0,
            "{key}: ours {ours}, docker {bytes}"
        );
    }
    assert_eq!(
        calls(&run, "docker", "prune")[0]["result"],
        "denied",
        "{run:#}"
    );
    assert_eq!(stopped.state(), "exited");

    // Granted: the stopped container goes and the bytes reclaimed are reported.
    sandbox.write(
        "host.toml",
        "[plugins.disk-full.grants]\nfs-read = [\"/\"]\nnotify = [\"ops\"]\ndocker = [{ verbs = [\"disk-usage\", \"prune\"] }]\n",
    );
    let (_, dry) = run_json(&sandbox, &[&forced[..], &["--dry-run"]].concat());
    assert_eq!(calls(&dry, "docker", "prune")[0]["result"], "would");
    assert_eq!(stopped.state(), "exited");

    let (_, run) = run_json(&sandbox, &forced);
    let prune = &calls(&run, "docker", "prune")[0];
    assert_eq!(prune["result"], "ok", "{run:#}");
    assert!(
        prune["detail"].as_str().unwrap().contains("containers"),
        "{prune:#}"
    );
    let gone = std::process::Command::new("docker")
        .args(["inspect", &stopped.name])
        .output()
        .unwrap();
    assert!(
        !gone.status.success(),
        "the stopped container survived the prune"
    );
}

/// The same engine prunes for one caller at a time too (409 to the others): simultaneous runs
/// granted `prune` all succeed, and together they leave no stopped container behind.
#[test]
fn simultaneous_prunes_all_succeed() {
    let _engine = ENGINE.write().unwrap();
    let label = format!("runbook-test-prune-race={}", std::process::id());
    // Enough stopped containers that one prune lasts long enough for the others to meet it.
    let created: Vec<String> = (0..30)
        .map(|_| {
            docker(&["create", "--label", &label, IMAGE, "true"])
                .trim()
                .to_string()
        })
        .collect();
    let sandbox = Sandbox::new();
    sandbox.write(
        "host.toml",
        "[plugins.disk-full.grants]\nfs-read = [\"/\"]\nnotify = [\"ops\"]\ndocker = [{ verbs = [\"disk-usage\", \"prune\"] }]\n",
    );
    let args = [
        "disk-full",
        "-p",
        "warn-percent=0.001",
        "-p",
        "critical-percent=0.01",
        "-p",
        "paths=",
        "-p",
        "backups=",
    ];
    let runs = runs_together(&sandbox, &args, 4);
    let left = docker(&["ps", "-aq", "--filter", &format!("label={label}")]);
    for id in left.split_whitespace() {
        docker(&["rm", "-f", id]);
    }
    for run in &runs {
        let prune = calls(run, "docker", "prune");
        assert_eq!(prune.len(), 1, "{run:#}");
        assert_eq!(prune[0]["result"], "ok", "{run:#}");
    }
    assert!(
        left.trim().is_empty(),
        "{} of {} containers survived",
        left.lines().count(),
        created.len()
    );
}
