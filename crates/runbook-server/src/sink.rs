//! The timeline sink of a run this server executes: its events reach the store as they
//! happen, batched into `append_events` under this process's runner (as a fleet agent's run
//! does), so any replica's console can follow it (`ui::live`). Run execution's, not the
//! console's: it must never import `ui`.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::store::Store;
use crate::timeline::{Event, Sink};

/// Events of one run appended live; past this the outcome carries the rest.
const MAX_LIVE_EVENTS: usize = 10_000;
/// Events per `append_events` (while one is in flight the next batch gathers).
const BATCH: usize = 256;

/// The sink of a run this process executes. Nothing is spawned until the first event: a run
/// without events (the intake benchmark's no-op runs) costs nothing more.
pub(crate) fn store_sink(store: Arc<Store>, run_id: String) -> Sink {
    let runtime = tokio::runtime::Handle::current();
    let mut outbound: Option<mpsc::UnboundedSender<String>> = None;
    let mut sent = 0usize;
    Box::new(move |event: &Event| {
        if sent >= MAX_LIVE_EVENTS {
            return;
        }
        sent += 1;
        let sender = outbound.get_or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            runtime.spawn(append_live(store.clone(), run_id.clone(), rx));
            tx
        });
        let _ = sender.send(serde_json::to_string(event).expect("an event serializes"));
    })
}

async fn append_live(
    store: Arc<Store>,
    run_id: String,
    mut events: mpsc::UnboundedReceiver<String>,
) {
    let mut from = 0;
    while let Some(first) = events.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match events.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
        let count = batch.len();
        let runner = crate::store::this_runner();
        // The local timeline has capped itself already (`timeline::admit`).
        match store
            .append_events(&run_id, runner, from, batch, usize::MAX)
            .await
        {
            Ok(crate::store::Appended::Stored) => from += count,
            // The run ended or was taken from this process, or the store is away: live
            // events are a view, the outcome carries the whole timeline.
            Ok(_) | Err(_) => return,
        }
    }
}
