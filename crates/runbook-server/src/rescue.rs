//! The rescuer: every process serving a store looks, every few seconds, for runs whose
//! process died. A `running` run whose lease ran out (its process stopped renewing: killed,
//! or cut off from the store for a whole lease) is marked `lost`, never re-run (its actions
//! may have happened), and the `ops` channel is told once per run through the outbox, however
//! many replicas look. Queued runs need no rescue: they wait in the store until any process
//! claims them (dispatch.rs), except runs for a fleet node: one no agent of the node took
//! within `[fleet] node-wait-secs` ends `undeliverable` (never run elsewhere), and ops are told
//! once, the same way.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::sync::watch;

use crate::notify::{AlertRef, Message, Notification, Notifier};
use crate::severity::Priority;
use crate::store::{LOST_REASON, Store, UnfinishedRun};

/// Lost runs told about per look.
const NOTICES_PER_LOOK: usize = 64;

/// One look: expired leases become lost runs, runs for a node that waited too long become
/// undeliverable, and ops hear about each once. Returns (runs marked lost or undeliverable,
/// notices queued).
pub async fn look(
    notifier: &Notifier,
    store: &Store,
    node_wait: Duration,
) -> Result<(usize, usize)> {
    let ended = store.expire_leases().await? + store.expire_undelivered(node_wait).await?;
    let mut told = 0;
    for undeliverable in [false, true] {
        loop {
            let untold = if undeliverable {
                store
                    .take_undeliverable_unnotified(NOTICES_PER_LOOK)
                    .await?
            } else {
                store.take_lost_unnotified(NOTICES_PER_LOOK).await?
            };
            let more = untold.len() == NOTICES_PER_LOOK;
            for run in untold {
                let notice = if undeliverable {
                    undeliverable_notice(&run, node_wait)
                } else {
                    lost_notice(&run)
                };
                match notifier.submit("ops", &notice).await {
                    Ok(_) => told += 1,
                    Err(e) => tracing::warn!("telling ops about run {}: {e}", run.id),
                }
            }
            if !more {
                break;
            }
        }
    }
    Ok((ended, told))
}

/// Looks every `every` until `stop` turns true.
pub async fn keep_looking(
    notifier: Arc<Notifier>,
    store: Arc<Store>,
    approvals: Option<Arc<crate::approval::Approvals>>,
    every: Duration,
    node_wait: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        match look(&notifier, &*store, node_wait).await {
            Ok((0, _)) => {}
            Ok((ended, _)) => tracing::info!(
                "{ended} runs lost (their host or agent stopped renewing their leases) or \
                 undeliverable (no agent of their node took them); not re-run; ops told"
            ),
            Err(e) => tracing::warn!("looking for lost runs in the store: {e:#}"),
        }
        // Questions of runs that ended while they waited: their messages say so.
        if let Some(approvals) = &approvals {
            match approvals.rescue().await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!("{n} questions ended lost: their runs ended while they waited")
                }
                Err(e) => tracing::warn!("looking for questions of ended runs: {e:#}"),
            }
        }
    }
}

fn undeliverable_notice(run: &UnfinishedRun, wait: Duration) -> Notification {
    let node = run.node.as_deref().unwrap_or_default();
    let mut notice = lost_notice(run);
    notice.title = format!(
        "Run {} of {} was not delivered to node {node}",
        run.id, run.playbook
    );
    notice.body = format!(
        "{}. Is `host agent --node {node}` running and able to reach the server (`host nodes`)? \
         Run it by hand on the node if it is still needed.",
        crate::records::undeliverable_reason(node, wait)
    );
    notice.fields.push(("node".to_string(), node.to_string()));
    notice
}

fn lost_notice(run: &UnfinishedRun) -> Notification {
    let alert = run.alert.as_ref().map(|a| AlertRef {
        name: a["name"].as_str().unwrap_or_default().to_string(),
        fingerprint: a["fingerprint"].as_str().unwrap_or_default().to_string(),
        status: a["status"].as_str().unwrap_or_default().to_string(),
    });
    let mut fields = vec![
        ("run".to_string(), run.id.clone()),
        ("playbook".to_string(), run.playbook.clone()),
        ("trigger".to_string(), run.trigger.clone()),
        ("accepted at".to_string(), run.started_at.clone()),
    ];
    if let Some(alert) = &alert {
        fields.push(("alert".to_string(), alert.name.clone()));
    }
    if let Some(node) = &run.node {
        fields.push(("node".to_string(), node.clone()));
    }
    let message = Message {
        title: format!("Run {} of {} was lost", run.id, run.playbook),
        body: format!(
            "{LOST_REASON}. Check what it did with `host runs show {}` and finish by hand if \
             needed; the alert's next delivery starts a new run.",
            run.id
        ),
        severity: "warning".into(),
        fields,
    };
    Notification::new(message, &run.playbook, &run.id, alert)
        .with_priority(Priority::parse(&run.severity).ok())
}
