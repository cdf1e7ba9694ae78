//! The contract suite (store/conformance.rs) on a real PostgreSQL, one fresh database per
//! test, plus what only this backend promises: migrations by replicas starting at once,
//! LISTEN/NOTIFY across replicas, quick errors from a database that is not there.
//! `RUNBOOK_TEST_POSTGRES` (scripts/test-env.sh starts a throwaway cluster) names a role that
//! may create databases; without it these tests say they are skipped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

use super::Postgres;
use crate::backend::{Backend, FleetStore, RunQueue};
use crate::conformance::{Subject, conformance_tests};
use crate::records::{Admit, Admitted, QueuedRun};

/// Small pools: tests run in parallel and the test cluster allows 300 connections.
const TEST_POOL: usize = 6;

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to RUNBOOK_TEST_POSTGRES={url}: {e}"));
    tokio::spawn(connection);
    client
}

/// A fresh database on the test cluster: its URL, and the URL of the cluster.
async fn fresh_database() -> Option<(String, String, String)> {
    let Ok(cluster) = std::env::var("RUNBOOK_TEST_POSTGRES") else {
        println!("skipped: RUNBOOK_TEST_POSTGRES not set");
        return None;
    };
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!(
        "runbook_test_{}_{nanos}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    admin(&cluster)
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let mut url = url::Url::parse(&cluster).unwrap();
    url.set_path(&name);
    Some((cluster, url.to_string(), name))
}

async fn drop_database(cluster: &str, name: &str) {
    let admin = admin(cluster).await;
    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    for attempt in 1..=3 {
        match admin.batch_execute(&drop).await {
            Ok(()) => return,
            Err(e) if attempt == 3 => {
                eprintln!("dropping the test database {name}: {}", super::pg_error(e))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

pub(crate) async fn subject() -> Option<Subject> {
    let (cluster, url, name) = fresh_database().await?;
    let backend = Arc::new(Postgres::connect_sized(&url, TEST_POOL).await.unwrap());
    let again = url.clone();
    let versioned = url.clone();
    Some(Subject {
        backend,
        open_again: Arc::new(move || {
            let url = again.clone();
            Box::pin(async move {
                let backend = Postgres::connect_sized(&url, TEST_POOL).await?;
                Ok(Arc::new(backend) as Arc<dyn Backend>)
            })
        }),
        set_schema_version: Arc::new(move |version| {
            let url = versioned.clone();
            Box::pin(async move {
                admin(&url)
                    .await
                    .execute(
                        "UPDATE schema_version SET version = $1",
                        &[&(version as i32)],
                    )
                    .await?;
                Ok(())
            })
        }),
        cleanup: Some(Arc::new(move || {
            let (cluster, name) = (cluster.clone(), name.clone());
            Box::pin(async move { drop_database(&cluster, &name).await })
        })),
    })
}

conformance_tests!(subject());

mod pooled;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_at_once_migrate_once() {
    let Some((cluster, url, name)) = fresh_database().await else {
        return;
    };
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { Postgres::connect_sized(&url, 2).await.map(drop) })
        })
        .collect();
    for open in opens {
        open.await.unwrap().unwrap();
    }
    let versions = admin(&url)
        .await
        .query("SELECT version FROM schema_version", &[])
        .await
        .unwrap();
    let versions: Vec<i32> = versions.iter().map(|r| r.get(0)).collect();
    assert_eq!(versions, [super::schema::MIGRATIONS.len() as i32]);
    drop_database(&cluster, &name).await;
}

/// A database written before the fleet (version 1) is migrated: its queued run is a
/// replica's, and is not taken for undeliverable by its new acceptance time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_from_before_the_fleet_keeps_its_runs_as_server_runs() {
    let Some((cluster, url, name)) = fresh_database().await else {
        return;
    };
    let old = admin(&url).await;
    old.batch_execute(super::schema::MIGRATIONS[0])
        .await
        .unwrap();
    old.batch_execute(
        "CREATE TABLE schema_version (version INTEGER NOT NULL);
         INSERT INTO schema_version VALUES (1);
         INSERT INTO runs (id, playbook, origin, trigger, params, dry_run, status, started_at)
         VALUES ('old', 'pb', 'plugin-dir', 'alert', '{}', false, 'queued',
                 '2026-11-25T10:00:00.000Z');",
    )
    .await
    .unwrap();
    let store = Postgres::connect_sized(&url, 2).await.unwrap();
    let limits = crate::SlotLimits {
        default: 1,
        per_playbook: Default::default(),
    };
    assert_eq!(store.expire_undelivered(Duration::ZERO).await.unwrap(), 0);
    let claimed = store
        .claim_queued("me", 1, &limits, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!((claimed[0].id.as_str(), &claimed[0].node), ("old", &None));
    drop(store);
    drop_database(&cluster, &name).await;
}

/// A finish batch the database refuses as a whole (one outcome's end time is no time) is
/// written again one outcome at a time: that outcome answers its own error, every other run of
/// the batch is recorded and frees its slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_outcome_fails_alone_and_its_batch_is_recorded() {
    use crate::conformance::{LONG, admit, claimed_ids, limits, outcome, queued, status};
    let Some(s) = subject().await else { return };
    let b = &s.backend;
    let ids: Vec<String> = (0..12).map(|i| format!("batch-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        b.admit(admit(queued(id, "pb", i))).await.unwrap();
    }
    let room = limits(ids.len(), &[]);
    assert_eq!(claimed_ids(b, "me", ids.len(), &room, LONG).await, ids);
    // Sent together, before the writer runs: they wait for it as one batch.
    let answers = futures::future::join_all(ids.iter().map(|id| {
        let mut finished = outcome(id, "resolved");
        if id == "batch-5" {
            finished.ended_at = "the day after".into();
        }
        b.finish(finished)
    }))
    .await;
    for (id, answer) in ids.iter().zip(&answers) {
        if id == "batch-5" {
            let refused = format!("{:#}", answer.as_ref().unwrap_err());
            assert!(refused.contains("timestamp"), "{refused}");
            assert_eq!(status(b, id).await, "running");
        } else {
            assert!(answer.is_ok(), "{id}: {answer:?}");
            let run = b.get(id).await.unwrap().unwrap();
            assert_eq!(
                (run.run.status.as_str(), run.timeline.len()),
                ("resolved", 2)
            );
        }
    }
    // The eleven recorded runs gave their slots back: eleven new runs are claimed at once.
    for (i, id) in (0..11).map(|i| (i, format!("after-{i}"))) {
        b.admit(admit(queued(&id, "pb", 20 + i))).await.unwrap();
    }
    assert_eq!(claimed_ids(b, "me", 20, &room, LONG).await.len(), 11);
    (s.cleanup.unwrap())().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admission_on_one_replica_wakes_the_claimers_of_another() {
    let Some(s) = subject().await else { return };
    let other = (s.open_again)().await.unwrap();
    // The listener is connected once a wake-up from it has been seen (it wakes on LISTEN).
    other.wait_for_queued(Duration::from_secs(5)).await;
    let waiting = tokio::spawn({
        let other = other.clone();
        async move {
            let started = Instant::now();
            other.wait_for_queued(Duration::from_secs(20)).await;
            started.elapsed()
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let run = QueuedRun {
        id: "woken".into(),
        playbook: "pb".into(),
        origin: "plugin-dir".into(),
        trigger: "alert".into(),
        by: None,
        params: serde_json::json!({}),
        alert: None,
        dry_run: false,
        dedup_key: None,
        started_at: "2026-11-25T10:00:00.000Z".into(),
        severity: "P3".into(),
        node: None,
    };
    let admitted = s
        .backend
        .admit(Admit {
            run,
            dedup_window: None,
            cooldown: None,
            alert: None,
            gate: Default::default(),
        })
        .await
        .unwrap();
    assert_eq!(admitted, Admitted::Started);
    let waited = waiting.await.unwrap();
    assert!(waited < Duration::from_secs(5), "woken after {waited:?}");
    drop(other);
    (s.cleanup.unwrap())().await;
}

#[tokio::test]
async fn a_database_that_is_not_there_is_an_error_at_once_and_no_password_is_shown() {
    let started = Instant::now();
    let err = Postgres::connect("postgres://runbook:s3cret@127.0.0.1:1/runs")
        .await
        .err()
        .expect("connected to nothing");
    let err = format!("{err:#}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(err.contains("postgres runbook@127.0.0.1:1/runs"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
    assert!(Postgres::connect("mysql://nope").await.is_err());
}

#[tokio::test]
async fn a_server_that_never_answers_is_an_error_within_the_connect_timeout() {
    // Accepts TCP connections and says nothing, like a database host that hangs.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    let started = Instant::now();
    let url = format!("postgres://runbook@127.0.0.1:{port}/runs");
    assert!(Postgres::connect(&url).await.is_err());
    let took = started.elapsed();
    assert!(
        took < super::CONNECT_TIMEOUT + Duration::from_secs(3),
        "{took:?}"
    );
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_the_server_ended_are_replaced_and_listening_resumes() {
    let Some(s) = subject().await else { return };
    let other = (s.open_again)().await.unwrap();
    other.wait_for_queued(Duration::from_secs(5)).await;
    s.backend.ping().await.unwrap();
    // What a database restart does to every replica: all their connections end.
    let url = std::env::var("RUNBOOK_TEST_POSTGRES").unwrap();
    let db = s.backend.describe().rsplit('/').next().unwrap().to_string();
    admin(&url)
        .await
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&db],
        )
        .await
        .unwrap();
    let mut attempts = 0;
    while s.backend.ping().await.is_err() {
        attempts += 1;
        assert!(attempts < 50, "the pool never reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The listener reconnected too: another replica's admission still wakes this one.
    let woken = Instant::now();
    let waiting = tokio::spawn({
        let other = other.clone();
        async move {
            // The reconnect itself wakes once; then the admission's notification must.
            loop {
                other.wait_for_queued(Duration::from_secs(20)).await;
                if matches!(other.run_counts().await, Ok((1, _))) {
                    return;
                }
            }
        }
    });
    let mut admitted = Err(anyhow::anyhow!("not tried"));
    for _ in 0..50 {
        admitted = s.backend.admit(one_run("after-restart")).await;
        if admitted.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(admitted.unwrap(), Admitted::Started);
    tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("not woken after the database restarted")
        .unwrap();
    assert!(woken.elapsed() < Duration::from_secs(10));
    drop(other);
    (s.cleanup.unwrap())().await;
}

fn one_run(id: &str) -> Admit {
    Admit {
        run: QueuedRun {
            id: id.into(),
            playbook: "pb".into(),
            origin: "plugin-dir".into(),
            trigger: "alert".into(),
            by: None,
            params: serde_json::json!({}),
            alert: None,
            dry_run: false,
            dedup_key: Some(format!("key-{id}")),
            started_at: "2026-11-25T10:00:00.000Z".into(),
            severity: "P3".into(),
            node: None,
        },
        dedup_window: Some(Duration::from_secs(3600)),
        cooldown: None,
        alert: None,
        gate: Default::default(),
    }
}

/// A figure, not a check: distinct admissions per second through one `Postgres` (pool of 16,
/// 64 in flight). `cargo test --release -p runbook-host --lib admissions_per_second -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn admissions_per_second() {
    let Some((cluster, url, name)) = fresh_database().await else {
        return;
    };
    let store = Arc::new(Postgres::connect(&url).await.unwrap());
    const N: usize = 4000;
    let started = Instant::now();
    let next = Arc::new(AtomicU32::new(0));
    let workers: Vec<_> = (0..64)
        .map(|_| {
            let (store, next) = (store.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= N {
                        return latencies;
                    }
                    let one = Instant::now();
                    store.admit(one_run(&format!("bench-{i}"))).await.unwrap();
                    latencies.push(one.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.unwrap());
    }
    let took = started.elapsed();
    latencies.sort();
    println!(
        "{N} admissions in {took:?}: {:.0}/s, p50 {:?}, p99 {:?}",
        N as f64 / took.as_secs_f64(),
        latencies[N / 2],
        latencies[N * 99 / 100]
    );
    drop(store);
    drop_database(&cluster, &name).await;
}

#[test]
fn a_key_cannot_pose_as_the_digest_of_another() {
    let long = "x".repeat(1000);
    let digest = super::index_key(&long).into_owned();
    assert!(
        digest.starts_with("sha256:") && digest.len() < 100,
        "{digest}"
    );
    assert_ne!(super::index_key(&digest), digest);
    assert_eq!(super::index_key("short"), "short");
}
