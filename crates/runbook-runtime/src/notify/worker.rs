//! One delivery worker per network channel: claim the channel's oldest pending message, wait
//! for the rate limit, try once, and write down what happened. Order per channel is kept, so a
//! message backing off holds the ones behind it (a resolve never overtakes its trigger).

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use governor::{Quota, RateLimiter};
use tokio::sync::watch;

use super::Attempt;
use super::{Channel, Notification};
use crate::store::{Claim, OutboxRow, Store};

/// How often an idle worker looks for messages another host process queued.
const POLL: Duration = Duration::from_secs(2);
/// A claimed message is ours this long; a host that dies mid-send frees it after this.
const LEASE: Duration = Duration::from_secs(120);
/// A console or file delivery holds its row this long from the insert; a process that dies
/// before marking it leaves it to a worker after this.
pub(super) const LOCAL_HOLD: Duration = Duration::from_secs(60);
/// A sink's Retry-After is honoured up to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

pub(super) async fn run(
    channel: Arc<Channel>,
    store: Arc<Store>,
    mut shutdown: watch::Receiver<bool>,
) {
    let interval = channel.config.min_interval();
    let limiter = Quota::with_period(interval).map(RateLimiter::direct);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let claim = store.claim_head(&channel.name, LEASE).await;
        let wait = match claim {
            Ok(Claim::Due(row)) => {
                if let Some(limiter) = &limiter {
                    limiter.until_ready().await;
                }
                deliver(&channel, &store, *row).await;
                continue;
            }
            Ok(Claim::Wait(wait)) => wait.max(Duration::from_millis(1)).min(POLL),
            Ok(Claim::Empty) => POLL,
            Err(e) => {
                tracing::warn!("notify {}: reading the outbox: {e:#}", channel.name);
                POLL
            }
        };
        tokio::select! {
            _ = channel.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn deliver(channel: &Channel, store: &Arc<Store>, row: OutboxRow) {
    let sink = channel
        .sink
        .as_ref()
        .expect("workers run only for built sinks");
    let notification: Notification = match serde_json::from_str(&row.payload) {
        Ok(n) => n,
        Err(e) => {
            let _ = store
                .mark_failed(row.id, &format!("unreadable outbox payload: {e}"))
                .await;
            return;
        }
    };
    let attempt = sink
        .deliver(
            &channel.name,
            row.id,
            &notification,
            row.parts_sent as usize,
            |parts| {
                let (store, name, id) = (store.clone(), channel.name.clone(), row.id);
                tokio::spawn(async move {
                    if let Err(e) = store.mark_parts_sent(id, parts as i64).await {
                        tracing::warn!("notify {name}: recording progress: {e:#}");
                    }
                });
            },
        )
        .await;
    let delivery = channel.config.delivery();
    let result = match attempt {
        Attempt::Delivered => store.mark_delivered(row.id).await,
        Attempt::Failed(error) => {
            tracing::error!(
                "notify {}: message {} failed for good: {error}",
                channel.name,
                row.id
            );
            store.mark_failed(row.id, &error).await
        }
        Attempt::Retry { error, .. } if row.attempts >= i64::from(delivery.max_attempts) => {
            let error = format!("gave up after {} attempts: {error}", row.attempts);
            tracing::warn!("notify {}: message {} {error}", channel.name, row.id);
            store.mark_failed(row.id, &error).await
        }
        Attempt::Retry { error, after } => {
            let delay = after
                .map(|a| a.min(MAX_RETRY_AFTER))
                .unwrap_or_else(|| backoff(&delivery, row.attempts as usize));
            tracing::warn!(
                "notify {}: message {} attempt {} failed ({error}); retrying in {:.1}s",
                channel.name,
                row.id,
                row.attempts,
                delay.as_secs_f64()
            );
            store.mark_retry(row.id, delay, &error).await
        }
    };
    if let Err(e) = result {
        tracing::warn!("notify {}: recording delivery: {e:#}", channel.name);
    }
}

/// Exponential from `retry-base-ms`, doubling, with jitter so many hosts retrying the same
/// sink do not stampede it, capped at `retry-max-secs`.
fn backoff(delivery: &super::DeliveryConfig, attempts_made: usize) -> Duration {
    let max = Duration::from_secs(delivery.retry_max_secs.max(1));
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(delivery.retry_base_ms.max(1)))
        .with_max_delay(max)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(attempts_made.saturating_sub(1))
        .unwrap_or(max)
        .min(max)
}

/// Console and file deliveries happen inside the run; their result is written the same way.
/// A file append that may succeed later (`Retry`) is left pending for the channel's worker.
pub(super) async fn record_local(
    store: &Store,
    id: i64,
    config: &super::ChannelConfig,
    attempt: &Attempt,
) {
    let result = match attempt {
        Attempt::Delivered => store.mark_delivered(id).await,
        Attempt::Retry { error, .. } => {
            tracing::warn!("notify: message {id}: {error}; retrying");
            store
                .mark_retry(id, backoff(&config.delivery(), 1), error)
                .await
        }
        Attempt::Failed(e) => store.mark_failed(id, e).await,
    };
    if let Err(e) = result {
        tracing::warn!("notify: recording delivery of message {id}: {e:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let delivery = super::super::DeliveryConfig {
            retry_base_ms: 100,
            retry_max_secs: 2,
            ..Default::default()
        };
        let first = backoff(&delivery, 1);
        let third = backoff(&delivery, 3);
        assert!(
            first >= Duration::from_millis(100) && first < Duration::from_millis(200),
            "{first:?}"
        );
        assert!(
            third >= Duration::from_millis(400) && third < Duration::from_millis(800),
            "{third:?}"
        );
        assert!(backoff(&delivery, 30) <= Duration::from_secs(2));
    }
}
