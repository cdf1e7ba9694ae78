//! `[[schedule]]` in a real `host serve`: every-second cron expressions fire on time, each
//! firing is recorded once in the store with its run (so a restart never fires one twice, and
//! two replicas on one PostgreSQL fire each once), a firing while the schedule's run is still
//! going is skipped and recorded, and `catch-up` runs a missed firing once. Also: components
//! built against the 0.1.0 contract and the 0.2.0 one both load and run.
//!
//! The store is the sandbox's (SQLite, or PostgreSQL with RUNBOOK_TEST_STORE=postgres); the
//! replica test needs RUNBOOK_TEST_POSTGRES. Firings are read with `host schedules --json`.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use runbook_tests::Sandbox;
use runbook_tests::postgres;
use runbook_tests::server::Server;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `host schedules --json --history 1000`, by schedule name.
fn schedules(sandbox: &Sandbox, store: &str) -> Value {
    let run = sandbox.host_env(
        &["schedules", "--json", "--history", "1000"],
        &[("RUNBOOK_STORE", store)],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut by_name = serde_json::Map::new();
    for s in run.json().as_array().unwrap() {
        by_name.insert(s["name"].as_str().unwrap().to_string(), s.clone());
    }
    by_name.into()
}

fn firings<'a>(all: &'a Value, name: &str) -> &'a [Value] {
    all[name]["history"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Runs in the store whose trigger is `schedule` (`host runs --json`).
fn scheduled_runs(sandbox: &Sandbox, store: &str) -> Vec<Value> {
    let run = sandbox.host_env(
        &["runs", "--json", "--limit", "1000"],
        &[("RUNBOOK_STORE", store)],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["trigger"] == "schedule")
        .cloned()
        .collect()
}

fn ms_of(rfc3339: &str) -> i64 {
    humantime::parse_rfc3339(rfc3339)
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `S M H * * *`: daily, at the UTC time `ago` before now.
fn daily_at_ago(ago: Duration) -> String {
    let secs = (now_ms() / 1000) as u64 - ago.as_secs();
    let day = secs % 86_400;
    format!("{} {} {} * * *", day % 60, day / 60 % 60, day / 3600)
}

#[test]
fn schedules_fire_on_time_once_each_skip_on_overlap_and_catch_up_once() {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("hostile");
    sandbox.add_plugin("contract-v0-1");
    let missed = daily_at_ago(Duration::from_secs(30));
    sandbox.write(
        "host.toml",
        format!(
            r#"plugin-dirs = ["plugins"]

[server]
shutdown-grace-secs = 1

[plugins.hostile]
max-concurrent = 8

[[schedule]]
name = "tick"
cron = "* * * * * *"
playbook = "hostile"
params = {{ case = "trigger" }}
severity = "critical"

[[schedule]]
name = "slow"
cron = "* * * * * *"
playbook = "hostile"
params = {{ case = "nap", target = "2500" }}

[[schedule]]
name = "legacy"
cron = "*/2 * * * * *"
playbook = "contract-v0-1"

[[schedule]]
name = "missed"
cron = "{missed}"
playbook = "hostile"
params = {{ case = "quick" }}
catch-up = true

[[schedule]]
name = "missed-no-catch-up"
cron = "{missed}"
playbook = "hostile"
params = {{ case = "quick" }}
"#
        ),
    );
    let store = sandbox.store();
    let mut server = Server::start(&sandbox, &[]);

    wait_for(
        "three tick runs, a skipped slow firing, a legacy run",
        || {
            let all = schedules(&sandbox, &store);
            let ticks_done = firings(&all, "tick")
                .iter()
                .filter(|f| f["outcome"] == "no-action")
                .count();
            let skipped = firings(&all, "slow")
                .iter()
                .any(|f| f["outcome"] == "skipped");
            let legacy = firings(&all, "legacy")
                .iter()
                .any(|f| f["outcome"] == "resolved");
            ticks_done >= 3 && skipped && legacy
        },
    );
    let all = schedules(&sandbox, &store);

    // On time: each tick's run was admitted within a second of its firing's time, and the
    // firings are whole seconds apart.
    for firing in firings(&all, "tick") {
        let Some(id) = firing["run_id"].as_str() else {
            continue;
        };
        let run = server.get(&format!("/runs/{id}")).json();
        let late = ms_of(run["started_at"].as_str().unwrap()) - firing["at_ms"].as_i64().unwrap();
        assert!((0..=1000).contains(&late), "{late} ms late: {firing:#}");
        assert_eq!(firing["at_ms"].as_i64().unwrap() % 1000, 0, "{firing:#}");
        assert_eq!(run["severity"], "P1", "{run:#}");
    }
    // A 0.2.0 component is handed trigger `schedule`; a 0.1.0 one `cli`; both runs are stored
    // as `schedule`.
    let tick = firings(&all, "tick")
        .iter()
        .find(|f| f["outcome"] == "no-action")
        .unwrap();
    let run = server.wait_for_run(tick["run_id"].as_str().unwrap(), WAIT);
    assert_eq!(
        (run["trigger"].as_str(), run["summary"].as_str()),
        (Some("schedule"), Some("trigger schedule")),
        "{run:#}"
    );
    let legacy = firings(&all, "legacy")
        .iter()
        .find(|f| f["outcome"] == "resolved")
        .unwrap();
    let run = server.wait_for_run(legacy["run_id"].as_str().unwrap(), WAIT);
    assert_eq!(
        (run["trigger"].as_str(), run["summary"].as_str()),
        (Some("schedule"), Some("0.1.0 component ran, trigger cli")),
        "{run:#}"
    );

    // Overlap: a slow firing during its previous run is recorded as skipped, naming that run,
    // and the slow runs never overlap.
    let slow = firings(&all, "slow");
    let skipped = slow.iter().find(|f| f["outcome"] == "skipped").unwrap();
    let going = skipped["skipped_for"].as_str().unwrap();
    assert!(
        slow.iter().any(|f| f["run_id"] == going),
        "{skipped:#} names no run of the schedule: {slow:#?}"
    );
    assert!(skipped["run_id"].is_null(), "{skipped:#}");

    // Catch-up: the firing missed 30 s before start ran once, at start; without catch-up not.
    let caught = firings(&all, "missed");
    assert_eq!(caught.len(), 1, "{caught:#?}");
    assert_eq!(caught[0]["catch_up"], true);
    assert!(caught[0]["run_id"].is_string(), "{:#}", caught[0]);
    assert!(firings(&all, "missed-no-catch-up").is_empty());

    // Restart: nothing recorded is fired again, the missed firing is not caught up twice.
    server.stop("TERM");
    let before_restart: usize = ["tick", "slow", "legacy"]
        .iter()
        .map(|s| firings(&schedules(&sandbox, &store), s).len())
        .sum();
    let mut server = Server::start(&sandbox, &[]);
    wait_for("two more tick firings after the restart", || {
        let all = schedules(&sandbox, &store);
        let now: usize = ["tick", "slow", "legacy"]
            .iter()
            .map(|s| firings(&all, s).len())
            .sum();
        now >= before_restart + 2
    });
    server.stop("TERM");
    let all = schedules(&sandbox, &store);
    assert_eq!(firings(&all, "missed").len(), 1, "{:#}", all["missed"]);
    assert!(firings(&all, "missed-no-catch-up").is_empty());
    let runs = scheduled_runs(&sandbox, &store);
    let run_ids: HashSet<&str> = runs.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let mut fired_runs = HashSet::new();
    for name in ["tick", "slow", "legacy", "missed"] {
        let mut times = HashSet::new();
        for f in firings(&all, name) {
            assert!(times.insert(f["at_ms"].as_i64().unwrap()), "{name}: {f:#}");
            if let Some(id) = f["run_id"].as_str() {
                assert!(fired_runs.insert(id), "{name}: run {id} named twice");
            }
        }
    }
    // Every scheduled run belongs to exactly one recorded firing: none was started twice.
    assert_eq!(
        run_ids,
        fired_runs.iter().copied().collect::<HashSet<_>>(),
        "runs {runs:#?}"
    );
}

#[test]
fn two_replicas_on_one_postgresql_run_each_firing_once() {
    if postgres::cluster().is_none() {
        eprintln!("skipped: RUNBOOK_TEST_POSTGRES not set (scripts/test.sh sets it)");
        return;
    }
    let db = postgres::Database::create();
    let sandbox = Sandbox::new();
    sandbox.add_plugin("hostile");
    sandbox.write(
        "host.toml",
        r#"plugin-dirs = ["plugins"]

[server]
shutdown-grace-secs = 1

[plugins.hostile]
max-concurrent = 8

[[schedule]]
name = "tick"
cron = "* * * * * *"
playbook = "hostile"
params = { case = "quick" }
"#,
    );
    let env = [("RUNBOOK_STORE", db.url.as_str())];
    let (mut a, mut b) = (Server::start(&sandbox, &env), Server::start(&sandbox, &env));
    let started = now_ms();
    wait_for("six firings with both replicas up", || {
        let all = schedules(&sandbox, &db.url);
        firings(&all, "tick")
            .iter()
            .filter(|f| f["at_ms"].as_i64().unwrap() > started + 1000)
            .count()
            >= 6
    });
    a.stop("TERM");
    b.stop("TERM");
    let runs = scheduled_runs(&sandbox, &db.url);
    let all = schedules(&sandbox, &db.url);
    let ticks = firings(&all, "tick");
    let mut times = HashSet::new();
    for f in ticks {
        assert!(times.insert(f["at_ms"].as_i64().unwrap()), "{f:#}");
        // A run, or (the previous run still going on a loaded machine) a recorded skip.
        assert!(
            f["run_id"].is_string() || f["outcome"] == "skipped",
            "{f:#}"
        );
    }
    // Consecutive seconds, none missing while both ran, and one run per firing.
    let newest = ticks[0]["at_ms"].as_i64().unwrap();
    for second in 0..5 {
        assert!(
            times.contains(&(newest - second * 1000)),
            "firing at {} missing: {ticks:#?}",
            newest - second * 1000
        );
    }
    let ids: HashSet<&str> = runs.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), runs.len());
    let fired: HashSet<&str> = ticks.iter().filter_map(|f| f["run_id"].as_str()).collect();
    assert_eq!(
        ids, fired,
        "a run without its own firing, or the reverse: {runs:#?}"
    );
    assert!(fired.len() >= 3, "{ticks:#?}");
}

#[test]
fn components_built_against_0_1_0_and_0_2_0_both_load_and_run() {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("hostile");
    sandbox.add_plugin("contract-v0-1");
    sandbox.write("host.toml", "plugin-dirs = [\"plugins\"]\n");
    let old = sandbox.host(&["run", "contract-v0-1", "--json"]);
    assert_eq!(old.code, 0, "{}", old.stderr);
    let old = old.json();
    assert_eq!(
        old["summary"], "0.1.0 component ran, trigger cli",
        "{old:#}"
    );
    // Its capability call (report.step, imported as runbook:host/report@0.1.0) reached the host.
    assert!(
        old["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.to_string().contains("contract")),
        "{old:#}"
    );
    let new = sandbox.host(&["run", "hostile", "-p", "case=trigger", "--json"]);
    assert_eq!(new.code, 0, "{}", new.stderr);
    assert_eq!(new.json()["summary"], "trigger cli");
    // `host inspect` describes both.
    let described = sandbox.host(&["inspect", "contract-v0-1", "--json"]);
    assert_eq!(described.code, 0, "{}", described.stderr);
    assert_eq!(
        described.json()["name"],
        "contract-v0-1",
        "{}",
        described.stdout
    );
}

#[test]
fn a_component_built_against_0_2_0_loads_and_runs_under_the_current_contract() {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("contract-v0-2");
    sandbox.write("host.toml", "plugin-dirs = [\"plugins\"]\n");
    let run = sandbox.host(&["run", "contract-v0-2", "--json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let run = run.json();
    assert_eq!(run["status"], "resolved", "{run:#}");
    assert_eq!(
        run["summary"], "0.2.0 component ran, trigger cli",
        "{run:#}"
    );
    // Its report.step, imported as runbook:host/report@0.2.0, reached the host.
    assert!(
        run["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.to_string().contains("contract") && e.to_string().contains("0.2.0")),
        "{run:#}"
    );
    let described = sandbox.host(&["inspect", "contract-v0-2", "--json"]);
    assert_eq!(described.code, 0, "{}", described.stderr);
    let described = described.json();
    assert_eq!(described["name"], "contract-v0-2", "{described:#}");
    assert_eq!(described["version"], "0.2.0", "{described:#}");
}
