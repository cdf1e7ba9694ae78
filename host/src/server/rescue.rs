//! The rescuer: every process serving a store looks, every few seconds, for runs whose
//! process died. A `running` run whose lease ran out (its process stopped renewing: killed,
//! or cut off from the store for a whole lease) is marked `lost`, never re-run (its actions
//! may have happened), and the `ops` channel is told once per run through the outbox, however
//! many replicas look. Queued runs need no rescue: they wait in the store until any process
//! claims them (dispatch.rs).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::sync::watch;

use crate::notify::{AlertRef, Message, Notification, Notifier};
use crate::severity::Priority;
use crate::store::{LOST_REASON, Store, UnfinishedRun};

/// Lost runs told about per look.
const NOTICES_PER_LOOK: usize = 64;

/// One look: expired leases become lost runs, and ops hear about each lost run once.
/// Returns (runs marked lost, notices queued).
pub async fn look(notifier: &Notifier, store: &Store) -> Result<(usize, usize)> {
    let lost = store.expire_leases().await?;
    let mut told = 0;
    loop {
        let untold = store.take_lost_unnotified(NOTICES_PER_LOOK).await?;
        let more = untold.len() == NOTICES_PER_LOOK;
        for run in untold {
            match notifier.submit("ops", &lost_notice(&run)).await {
                Ok(_) => told += 1,
                Err(e) => eprintln!("telling ops that run {} was lost: {e}", run.id),
            }
        }
        if !more {
            return Ok((lost, told));
        }
    }
}

/// Looks every `every` until `stop` turns true.
pub async fn keep_looking(
    notifier: Arc<Notifier>,
    store: Arc<Store>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        match look(&notifier, &*store).await {
            Ok((0, _)) => {}
            Ok((lost, _)) => eprintln!(
                "{lost} runs lost: their host stopped renewing their leases (not re-run; ops told)"
            ),
            Err(e) => eprintln!("looking for lost runs in the store: {e:#}"),
        }
    }
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
