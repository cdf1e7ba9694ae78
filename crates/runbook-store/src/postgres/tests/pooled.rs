//! The contract suite again, through PgBouncer in transaction mode (`pgbouncer=true`; the
//! pooler scripts/test-env.sh starts, `RUNBOOK_TEST_PGBOUNCER`): every statement of the store
//! must work where no prepared statement or session setting outlives its transaction. LISTEN
//! goes to the cluster directly, as `RUNBOOK_STORE_LISTEN_URL` would send it.

use std::sync::Arc;

use super::super::Postgres;
use super::{TEST_POOL, admin, drop_database, fresh_database};
use crate::backend::Backend;
use crate::conformance::{Subject, conformance_tests};

/// The fresh database's URL through the pooler, and the direct URL (for LISTEN).
async fn pooled_database() -> Option<(String, String, String, String)> {
    let Ok(pooler) = std::env::var("RUNBOOK_TEST_PGBOUNCER") else {
        println!("skipped: RUNBOOK_TEST_PGBOUNCER not set");
        return None;
    };
    let (cluster, direct, name) = fresh_database().await?;
    let mut url = url::Url::parse(&pooler).unwrap();
    url.set_path(&name);
    url.set_query(Some("pgbouncer=true"));
    Some((cluster, direct, url.to_string(), name))
}

async fn subject() -> Option<Subject> {
    let (cluster, direct, url, name) = pooled_database().await?;
    let backend = Arc::new(
        Postgres::open(&url, Some(&direct), TEST_POOL, 256)
            .await
            .unwrap(),
    );
    let (again, listen) = (url.clone(), direct.clone());
    Some(Subject {
        backend,
        open_again: Arc::new(move || {
            let (url, listen) = (again.clone(), listen.clone());
            Box::pin(async move {
                let backend = Postgres::open(&url, Some(&listen), TEST_POOL, 256).await?;
                Ok(Arc::new(backend) as Arc<dyn Backend>)
            })
        }),
        set_schema_version: Arc::new(move |version| {
            let url = direct.clone();
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

/// The timeout is the transaction's own: a lone statement sees it, and the pooled server
/// connection keeps no setting of ours after it (the next client would inherit it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_statement_timeout_is_set_per_transaction_and_left_nowhere() {
    let Some((cluster, _, url, name)) = pooled_database().await else {
        return;
    };
    let store = Postgres::open(&url, None, 1, 1).await.unwrap();
    let client = store.client().await.unwrap();
    let inside = super::super::sql::query(
        &client,
        "SELECT current_setting($1)",
        &[&"statement_timeout"],
    )
    .await
    .unwrap();
    assert_eq!(inside[0].get::<_, String>(0), "10s");
    let outside = client.simple_query("SHOW statement_timeout").await.unwrap();
    let shown = outside.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(shown.as_deref(), Some("0"));
    drop((client, store));
    drop_database(&cluster, &name).await;
}

/// Without the opt-in, the pooler refuses the store's start-up options: the error says what
/// to add, and nothing was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_opt_in_the_error_names_the_setting() {
    let Some((cluster, direct, url, name)) = pooled_database().await else {
        return;
    };
    let plain = url.replace("?pgbouncer=true", "");
    let err = match Postgres::open(&plain, None, 1, 1).await {
        Ok(_) => panic!("a store through the pooler without pgbouncer=true connected"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("pgbouncer=true"), "{err}");
    let tables = admin(&direct)
        .await
        .query(
            "SELECT 1 FROM pg_tables WHERE tablename = 'schema_version'",
            &[],
        )
        .await
        .unwrap();
    assert!(tables.is_empty(), "the refused store migrated the database");
    drop_database(&cluster, &name).await;
}

/// The opt-in is ours, taken out of the URL (the server never sees it), in both URL forms;
/// anything but true or false is refused, not read as either.
#[test]
fn the_opt_in_is_read_from_either_url_form_and_checked() {
    use super::super::tls::split;
    let (config, link) =
        split("postgres://u@pool.example:6432/runs?application_name=x&pgbouncer=true").unwrap();
    assert!(link.pooler);
    assert_eq!(config.get_application_name(), Some("x"));
    let (config, link) = split("host=pool.example port=6432 dbname=runs pgbouncer=true").unwrap();
    assert!(link.pooler);
    assert_eq!(config.get_dbname(), Some("runs"));
    assert!(!split("postgres://u@db.example/runs").unwrap().1.pooler);
    let err = split("postgres://u@db.example/runs?pgbouncer=yes")
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("true or false"), "{err:#}");
}
