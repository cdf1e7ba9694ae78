//! What an action budget adds to a mutating call, on each store: the same call made through
//! a budgeted gate (freeze read, then check-and-take in one store transaction) and through an
//! unbudgeted one (freeze read only), interleaved, with a real Docker engine round trip as the
//! call when one answers. An ignored test, so it runs in the release build the suite uses:
//!
//! `RUNBOOK_TEST_POSTGRES=$(cat /tmp/runbook-pg/url) cargo test --release -p runbook-host \
//!  -p runbook-core -p runbook-store -p runbook-runtime -p runbook-server --lib \
//!  run::safety_bench -- --ignored --nocapture`

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::safety::*;
use crate::store::Store;

const ROUNDS: usize = 2000;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e3
}

async fn measure(label: &str, store: Arc<Store>, container: Option<&str>) {
    let budget = BudgetConfig {
        name: "bench".into(),
        actions: vec!["docker.restart".into()],
        per: Per::Container,
        // Never spent: every budgeted call is counted and goes.
        max: u32::MAX,
        within: Duration::from_secs(3600),
        playbooks: Vec::new(),
    };
    let rails = Safety::new(vec![budget], "bench".into(), Decider::Store(store));
    let engine = crate::caps::docker::DockerEngine::from_env();
    let action = |name: &str| Action {
        run_id: "bench".into(),
        playbook: "bench".into(),
        action: name.into(),
        container: Some("bench-container".into()),
    };
    let (budgeted, unbudgeted) = (action("docker.restart"), action("docker.pause"));
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for i in 0..ROUNDS + ROUNDS / 10 {
        for (gate, times) in [(&budgeted, &mut with), (&unbudgeted, &mut without)] {
            let started = Instant::now();
            assert_eq!(rails.gate(gate).await, Verdict::Go);
            if let Some(container) = container {
                engine.inspect_raw(container).await.expect("inspect");
            }
            if i >= ROUNDS / 10 {
                times.push(started.elapsed());
            }
        }
    }
    with.sort();
    without.sort();
    let (p50w, p99w) = (percentile(&with, 0.5), percentile(&with, 0.99));
    let (p50u, p99u) = (percentile(&without, 0.5), percentile(&without, 0.99));
    let call = if container.is_some() {
        "gate + docker inspect"
    } else {
        "gate only"
    };
    println!(
        "{label:<10} {call:<22} budgeted p50 {p50w:.3} ms p99 {p99w:.3} ms · unbudgeted p50 \
         {p50u:.3} ms p99 {p99u:.3} ms · p99 ratio {:.2}x · added at p99 {:+.3} ms",
        p99w / p99u,
        p99w - p99u
    );
}

fn docker(args: &[&str]) -> Option<String> {
    let out = Command::new("docker").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn budgeted_calls_cost_at_p99() {
    let container = docker(&[
        "run",
        "-d",
        "--rm",
        "--label",
        "runbook-test=1",
        "runbook-test/busybox:1",
        "sleep",
        "600",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let mut stores: Vec<(&str, Arc<Store>, Option<String>)> = vec![(
        "sqlite",
        crate::store::open(
            &crate::store::Location::Sqlite(dir.path().join("runs.sqlite3")),
            None,
        )
        .await
        .unwrap(),
        None,
    )];
    let mut database = None;
    if let Ok(admin) = std::env::var("RUNBOOK_TEST_POSTGRES") {
        let name = format!("rb_bench_{}", std::process::id());
        let create = Command::new("psql")
            .args([&admin, "-qc", &format!("CREATE DATABASE {name}")])
            .status()
            .unwrap();
        assert!(create.success());
        let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
        let store = crate::store::open(&crate::store::Location::Postgres(url), None)
            .await
            .unwrap();
        stores.push(("postgres", store, None));
        database = Some((admin, name));
    }
    for (label, store, _) in &stores {
        measure(label, store.clone(), None).await;
        if let Some(container) = &container {
            measure(label, store.clone(), Some(container)).await;
        }
    }
    drop(stores);
    if let Some(container) = container {
        docker(&["rm", "-f", &container]);
    }
    if let Some((admin, name)) = database {
        let _ = Command::new("psql")
            .args([
                &admin,
                "-qc",
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            ])
            .status();
    }
}
