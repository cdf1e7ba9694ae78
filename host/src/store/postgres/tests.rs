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
use crate::records::{Admit, Admitted, QueuedRun};
use crate::store::backend::Backend;
use crate::store::conformance::{Subject, conformance_tests};

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
    let dropped = admin(cluster)
        .await
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
    if let Err(e) = dropped {
        eprintln!("dropping the test database {name}: {e}");
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
        params: serde_json::json!({}),
        alert: None,
        dry_run: false,
        dedup_key: None,
        started_at: "2026-11-25T10:00:00.000Z".into(),
        severity: "P3".into(),
    };
    let admitted = s
        .backend
        .admit(Admit {
            run,
            dedup_window: None,
            cooldown: None,
            alert: None,
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
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
    assert!(err.contains("postgres runbook@127.0.0.1:1/runs"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
    assert!(Postgres::connect("mysql://nope").await.is_err());
}
