//! One poller per followed run, shared by every viewer of it in this process: it reads only
//! the events after the newest it has (`Backend::events_after`), renders each once, and
//! hands them out through a bounded broadcast (a viewer that falls behind by more than
//! [`QUEUE`] events is told it lagged, never buffered for). It stops when its last viewer
//! leaves or the run ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::broadcast;

use crate::store::Store;
use crate::timeline::Event;

/// How often a followed run is looked at.
pub(super) const POLL: Duration = Duration::from_millis(250);
/// Events per read, for a feed and for a viewer catching up.
pub(super) const PAGE: usize = 256;
/// Events a viewer may be behind its feed before it is dropped.
const QUEUE: usize = 1024;

pub(super) enum Item {
    Event {
        seq: usize,
        html: String,
    },
    /// The run ended and every event before this was sent.
    End,
}

type Feeds = Mutex<HashMap<(usize, String), broadcast::Sender<Arc<Item>>>>;

/// The feeds of this process, by store and run.
fn feeds() -> &'static Feeds {
    static FEEDS: OnceLock<Feeds> = OnceLock::new();
    FEEDS.get_or_init(Feeds::default)
}

fn key(store: &Arc<Store>, run_id: &str) -> (usize, String) {
    (Arc::as_ptr(store) as *const () as usize, run_id.to_string())
}

/// A place in the feed of `run_id`, started (reading from `from`) if nobody follows it yet.
pub(super) fn join(
    store: &Arc<Store>,
    run_id: &str,
    from: usize,
) -> broadcast::Receiver<Arc<Item>> {
    let mut feeds = feeds().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(sender) = feeds.get(&key(store, run_id)) {
        return sender.subscribe();
    }
    let (sender, receiver) = broadcast::channel(QUEUE);
    feeds.insert(key(store, run_id), sender.clone());
    tokio::spawn(poll(store.clone(), run_id.to_string(), from, sender));
    receiver
}

/// Leaves the registry if nobody listens any more; under the registry's lock, so a viewer
/// joining at this moment either finds this feed still listed (and is counted) or starts a
/// new one.
fn abandoned(store: &Arc<Store>, run_id: &str, sender: &broadcast::Sender<Arc<Item>>) -> bool {
    let mut feeds = feeds().lock().unwrap_or_else(|p| p.into_inner());
    if sender.receiver_count() == 0 {
        feeds.remove(&key(store, run_id));
        return true;
    }
    false
}

fn finished(store: &Arc<Store>, run_id: &str) {
    feeds()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&key(store, run_id));
}

async fn poll(
    store: Arc<Store>,
    run_id: String,
    mut next: usize,
    sender: broadcast::Sender<Arc<Item>>,
) {
    loop {
        if abandoned(&store, &run_id, &sender) {
            return;
        }
        let page = match store.events_after(&run_id, next, PAGE).await {
            Ok(Some(page)) => page,
            Ok(None) => {
                finished(&store, &run_id);
                let _ = sender.send(Arc::new(Item::End));
                return;
            }
            // The store is away for a moment: look again at the next tick.
            Err(_) => {
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        let full = page.events.len() == PAGE;
        for (seq, text) in &page.events {
            next = seq + 1;
            if let Some(html) = render(text) {
                let _ = sender.send(Arc::new(Item::Event { seq: *seq, html }));
            }
        }
        if full {
            continue;
        }
        if !page.live() {
            finished(&store, &run_id);
            let _ = sender.send(Arc::new(Item::End));
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// An event's line as the run page shows it (escaped HTML; SSE data may not hold a carriage
/// return); `None` for text that is not an event.
pub(super) fn render(text: &str) -> Option<String> {
    let event: Event = serde_json::from_str(text).ok()?;
    Some(
        super::pages::event_item(&event, None)
            .into_string()
            .replace('\r', "&#13;"),
    )
}
