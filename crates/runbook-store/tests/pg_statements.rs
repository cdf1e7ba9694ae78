//! What one no-op run costs PostgreSQL in statements (BEGIN and COMMIT included), from its
//! admission to its outcome: counted by the backend as it sends them, in a process of its own
//! (this file holds one test) so no other test's statements are counted. Before group commit
//! an admission was 4–6 statements and a finish 6, about 15 for a run alone.
//! Needs RUNBOOK_TEST_POSTGRES (scripts/test-env.sh); skipped without it.

use std::collections::HashMap;
use std::time::Duration;

use runbook_store::postgres::{Postgres, statements_sent};
use runbook_store::{Admit, AlertRecord, Disposition, QueuedRun, RunOutcome, RunQueue, SlotLimits};

fn run(id: &str, seq: usize) -> QueuedRun {
    QueuedRun {
        id: id.into(),
        playbook: "noop".into(),
        origin: "plugin-dir".into(),
        trigger: "webhook".into(),
        by: None,
        params: serde_json::json!({}),
        alert: None,
        dry_run: false,
        dedup_key: None,
        started_at: format!("2026-12-07T04:00:{:02}.{:03}Z", seq / 1000, seq % 1000),
        severity: "P3".into(),
        node: None,
    }
}

fn alert(name: &str) -> AlertRecord {
    AlertRecord {
        received_at: "2026-12-07T04:00:00.000Z".into(),
        source: "alertmanager".into(),
        alertname: name.into(),
        status: "firing".into(),
        fingerprint: name.into(),
        starts_at: "2026-12-07T04:00:00.000Z".into(),
        labels: serde_json::json!({ "alertname": name }),
        disposition: Disposition::Started,
        playbook: Some("noop".into()),
        run_id: None,
        detail: None,
    }
}

fn outcome(id: &str) -> RunOutcome {
    RunOutcome {
        run_id: id.into(),
        status: "resolved".into(),
        summary: "nothing to do".into(),
        actions: vec![],
        reason: None,
        ended_at: "2026-12-07T04:00:01.000Z".into(),
        timings: serde_json::json!({}),
        grants: serde_json::json!({}),
        events: vec![r#"{"kind":"started"}"#.into(), r#"{"kind":"ended"}"#.into()],
        artifacts: vec![],
    }
}

/// Statements sent while `admits` are admitted together, claimed and finished.
async fn statements_for(store: &Postgres, admits: Vec<Admit>) -> u64 {
    let limits = SlotLimits {
        default: admits.len(),
        per_playbook: HashMap::new(),
    };
    let before = statements_sent();
    let n = admits.len();
    for admitted in futures::future::join_all(admits.into_iter().map(|a| store.admit(a))).await {
        admitted.unwrap();
    }
    let mut claimed = Vec::new();
    while claimed.len() < n {
        let more = store
            .claim_queued("counter", n, &limits, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(!more.is_empty(), "queued runs left unclaimed");
        claimed.extend(more);
    }
    for run in &claimed {
        store.finish(outcome(&run.id)).await.unwrap();
    }
    statements_sent() - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_op_run_costs_few_statements() {
    let Ok(cluster) = std::env::var("RUNBOOK_TEST_POSTGRES") else {
        println!("skipped: RUNBOOK_TEST_POSTGRES not set");
        return;
    };
    let (admin, connection) = tokio_postgres::connect(&cluster, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let name = format!("runbook_statements_{}", std::process::id());
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let mut url = url::Url::parse(&cluster).unwrap();
    url.set_path(&name);
    let store = Postgres::connect_sized(url.as_str(), 4).await.unwrap();

    // The playbook's slot rows are made on its first claim, once per store: not per run.
    statements_for(&store, vec![plain(run("warm", 0))]).await;
    // One run alone (a run hook: no key, no alert record): admission, claim, finish.
    let alone = statements_for(&store, vec![plain(run("alone", 1))]).await;
    // An alert's runs arriving together: dedup key and alert record each.
    let admits = (1..=64)
        .map(|i| {
            let mut run = run(&format!("r{i}"), i + 1);
            run.dedup_key = Some(format!("alert-{i}"));
            Admit {
                run,
                dedup_window: Some(Duration::from_secs(300)),
                cooldown: None,
                alert: Some(alert(&format!("A{i}"))),
                gate: Default::default(),
            }
        })
        .collect();
    let together = statements_for(&store, admits).await;
    println!(
        "statements: a run alone {alone}; 64 alert runs together {together} ({:.2} per run)",
        together as f64 / 64.0
    );
    drop(store);
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
    // Before: 4 (admission) + 5 (claim) + 6 (finish) = 15 alone; 6 + ~1 + 6 = ~13 per alert
    // run together (836 for the 64). Then 1 + 5 + 1 (85 together); now 1 + 1 + 1, and about
    // 1.2 per run together (the finishes go one at a time here).
    assert!(alone <= 3, "a run alone cost {alone} statements");
    assert!(
        together <= 64 * 3,
        "64 runs together cost {together} statements"
    );
}

fn plain(run: QueuedRun) -> Admit {
    Admit {
        run,
        dedup_window: None,
        cooldown: None,
        alert: None,
        gate: Default::default(),
    }
}
