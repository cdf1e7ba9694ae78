//! Start-up rescue of what a previous host left unfinished in the store. Runs accepted and
//! never started (`queued`) are started through the dispatcher with their stored parameters and
//! alert; runs cut off mid-run (`running`) are marked `lost`, never re-run (their actions may
//! have happened), and the `ops` channel is told once per run through the outbox.
//!
//! ONE `host serve` PER STORE is assumed here: a run found `running` at start-up belongs to a
//! host process that is gone, unless its recorded runner is a live process on this machine (a
//! `host run` next to the server). A live host elsewhere cannot be told from a dead one, so
//! with several replicas on one database (PostgreSQL) this start-up sweep must become a
//! periodic rescuer of runs whose lease expired, and queued runs must be claimed, not taken.

use anyhow::Result;

use super::dispatch::{Dispatcher, Refusal};
use crate::notify::{AlertRef, Message, Notification, Notifier, now_rfc3339};
use crate::severity::Priority;
use crate::store::{LOST_REASON, Store, UnfinishedRun};

/// What the rescue did, for the start-up log.
#[derive(Debug, Default)]
pub struct Rescued {
    pub lost: usize,
    pub resumed: usize,
    pub not_resumed: usize,
}

pub async fn rescue(
    dispatcher: &Dispatcher,
    notifier: &Notifier,
    store: &Store,
) -> Result<Rescued> {
    let mut rescued = Rescued {
        lost: store.mark_lost(&now_rfc3339())?,
        ..Rescued::default()
    };
    // Also retries the notices an earlier start-up could not queue.
    for run in store.lost_unnotified()? {
        match notifier.submit("ops", &lost_notice(&run)) {
            Ok(_) => store.mark_lost_notified(&run.id, &now_rfc3339())?,
            Err(e) => eprintln!("telling ops that run {} was lost: {e}", run.id),
        }
    }
    for run in store.queued()? {
        match resume(dispatcher, &run).await {
            Ok(()) => rescued.resumed += 1,
            Err((status, reason)) => {
                eprintln!(
                    "run {} ({}) is not started again: {reason}",
                    run.id, run.playbook
                );
                store.end_unfinished(&run.id, status, &reason, &now_rfc3339())?;
                rescued.not_resumed += 1;
            }
        }
    }
    Ok(rescued)
}

/// Queues a run a previous host accepted; on refusal, the status and reason to end it with.
async fn resume(
    dispatcher: &Dispatcher,
    run: &UnfinishedRun,
) -> Result<(), (&'static str, String)> {
    if run.trigger == "cli" {
        // Its `host run` ended before it started; running it later, unseen, would surprise.
        return Err((
            "interrupted",
            "the `host run` that accepted it ended before it started".into(),
        ));
    }
    let not_startable = |e: String| {
        (
            "failed",
            format!("could not be started by the next host: {e}"),
        )
    };
    let prepared = dispatcher
        .prepared(&run.playbook)
        .await
        .map_err(|e: Refusal| not_startable(e.to_string()))?;
    let pending = dispatcher
        .host()
        .resume(&prepared, run)
        .map_err(|e| not_startable(format!("{e:#}")))?;
    dispatcher.enqueue(prepared, pending);
    Ok(())
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
