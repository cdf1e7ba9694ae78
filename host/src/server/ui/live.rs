//! Live timelines. A run this server executes appends its events to the store as they happen
//! (batched into `append_events` under this process's runner, as a fleet agent's run does), so
//! any replica's console can follow it; a viewer's stream polls the store for new events and
//! ends when the run does. Polling the store rather than an in-process broadcast is what lets
//! a viewer on replica B follow a run on replica A or on a node.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::message_page;
use crate::server::Shared;
use crate::store::Store;
use crate::timeline::{Event, Sink};

/// Events of one run appended live; past this the outcome carries the rest.
const MAX_LIVE_EVENTS: usize = 10_000;
/// Events per `append_events` (while one is in flight the next batch gathers).
const BATCH: usize = 256;
/// How often a viewer's stream looks for new events.
const POLL: Duration = Duration::from_millis(250);
/// A stream ends after this; the browser reconnects where it left off (Last-Event-ID).
const STREAM_FOR: Duration = Duration::from_secs(15 * 60);

/// The sink of a run this process executes. Nothing is spawned until the first event: a run
/// without events (the intake benchmark's no-op runs) costs nothing more.
pub(in crate::server) fn store_sink(store: Arc<Store>, run_id: String) -> Sink {
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
        match store.append_events(&run_id, runner, from, batch).await {
            Ok(true) => from += count,
            // The run ended or was taken from this process, or the store is away: live
            // events are a view, the outcome carries the whole timeline.
            Ok(false) | Err(_) => return,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct EventsQuery {
    /// Events the page already shows.
    #[serde(default)]
    from: usize,
}

struct Follow {
    store: Arc<Store>,
    run_id: String,
    sent: usize,
    ready: VecDeque<SseEvent>,
    ended: bool,
    until: Instant,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

pub(super) async fn events(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Response {
    let Ok(permit) = app.console.streams.clone().try_acquire_owned() else {
        return message_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            "too many live timelines are being followed; reload later",
        );
    };
    // A reconnecting browser says where it was.
    let sent = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(q.from);
    let follow = Follow {
        store: app.dispatcher.host().store.clone().expect("store"),
        run_id: id,
        sent,
        ready: VecDeque::new(),
        ended: false,
        until: Instant::now() + STREAM_FOR,
        _permit: permit,
    };
    let stream = futures::stream::unfold(follow, |mut f| async move {
        loop {
            if let Some(event) = f.ready.pop_front() {
                return Some((Ok::<_, Infallible>(event), f));
            }
            if f.ended || Instant::now() > f.until {
                return None;
            }
            f.look().await;
            if f.ready.is_empty() && !f.ended {
                tokio::time::sleep(POLL).await;
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

impl Follow {
    async fn look(&mut self) {
        let run = match self.store.get(&self.run_id).await {
            Ok(Some(run)) => run,
            Ok(None) => {
                self.end();
                return;
            }
            // The store is away for a moment: look again later.
            Err(_) => return,
        };
        for event in run.timeline.iter().skip(self.sent) {
            self.sent += 1;
            // Escaped HTML; SSE data may not hold a carriage return.
            let html = super::pages::event_item(event, Some(&run))
                .into_string()
                .replace('\r', "&#13;");
            self.ready.push_back(
                SseEvent::default()
                    .event("timeline")
                    .id(self.sent.to_string())
                    .data(html),
            );
        }
        if !matches!(
            run.run.status.as_str(),
            "queued" | "running" | "waiting-approval"
        ) {
            self.end();
        }
    }

    fn end(&mut self) {
        self.ended = true;
        self.ready
            .push_back(SseEvent::default().event("end").data("ended"));
    }
}
