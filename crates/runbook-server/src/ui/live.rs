//! Live timelines. A run this server executes appends its events to the store as they happen
//! (`crate::sink`), as a fleet agent's run does, so any replica's console can follow it.
//! Reading the store rather than an in-process broadcast is what lets a viewer on replica B
//! follow a run on replica A or on a node.
//!
//! A reader costs what it reads, not the run's size: each viewer first reads the events after
//! its own cursor, in pages; then one poller per followed run (`feed`) reads only the events
//! after the newest it has, renders each once and hands it to every viewer of that run through
//! a bounded queue. A viewer too slow to keep up is dropped; its browser reconnects with
//! Last-Event-ID and resumes from the store.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::broadcast;

use super::feed::{self, Item};
use super::page::message_page;
use crate::app::Shared;
use crate::store::Store;

/// A stream ends after this; the browser reconnects where it left off (Last-Event-ID).
const STREAM_FOR: std::time::Duration = std::time::Duration::from_secs(15 * 60);

#[derive(Deserialize)]
pub(crate) struct EventsQuery {
    /// Events the page already shows.
    #[serde(default)]
    from: usize,
}

/// One viewer: its cursor (the number of the next event it wants), what is ready to send,
/// and its place in the run's feed once it has caught up.
struct Follow {
    store: Arc<Store>,
    run_id: String,
    next: usize,
    ready: VecDeque<SseEvent>,
    feed: Option<broadcast::Receiver<Arc<Item>>>,
    /// Caught up with the store: the feed brings the rest.
    following: bool,
    ended: bool,
    until: Instant,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

pub(crate) async fn events(
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
    let next = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(q.from);
    let follow = Follow {
        store: app.store.clone(),
        run_id: id,
        next,
        ready: VecDeque::new(),
        feed: None,
        following: false,
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
            f.step().await;
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

impl Follow {
    /// Catching up: the next page after the cursor from the store; then the run's feed.
    async fn step(&mut self) {
        // Joined before the first read, so nothing appended meanwhile is missed (the feed's
        // copies of what the pages returned are skipped by number).
        let queue = self
            .feed
            .get_or_insert_with(|| feed::join(&self.store, &self.run_id, self.next));
        if !self.following {
            match self
                .store
                .events_after(&self.run_id, self.next, feed::PAGE)
                .await
            {
                Ok(Some(page)) => {
                    let (full, live) = (page.events.len() == feed::PAGE, page.live());
                    for (seq, text) in page.events {
                        self.push(seq, feed::render(&text));
                    }
                    if !full && !live {
                        self.end();
                    }
                    self.following = !full;
                }
                Ok(None) => self.end(),
                // The store is away for a moment: look again shortly.
                Err(_) => tokio::time::sleep(feed::POLL).await,
            }
            return;
        }
        let wait = self.until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(wait, queue.recv()).await {
            Ok(Ok(item)) => match item.as_ref() {
                Item::Event { seq, html } => self.push(*seq, Some(html.clone())),
                Item::End => self.end(),
            },
            // Too slow for the feed: drop the stream rather than buffer for it; the browser
            // reconnects from its last event id.
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => self.ended = true,
            Ok(Err(broadcast::error::RecvError::Closed)) => {
                (self.feed, self.following) = (None, false);
            }
            Err(_) => self.ended = true,
        }
    }

    /// Sends event `seq` if it is the one the viewer waits for (earlier ones it has).
    fn push(&mut self, seq: usize, html: Option<String>) {
        if seq < self.next {
            return;
        }
        self.next = seq + 1;
        if let Some(html) = html {
            self.ready.push_back(
                SseEvent::default()
                    .event("timeline")
                    .id(self.next.to_string())
                    .data(html),
            );
        }
    }

    fn end(&mut self) {
        self.ended = true;
        self.ready
            .push_back(SseEvent::default().event("end").data("ended"));
    }
}
