//! Sends the `[digest]`: the end-of-day report each day at `daily-at` (UTC) and the weekly
//! summary on `weekly-on`, through the outbox to the configured channel. Every replica runs
//! this task; each period's message carries a once-key (`digest:daily:2026-12-07`), which the
//! outbox's unique constraint lets in once, so the channel gets one message per period
//! whichever replicas are up. A period missed while no host ran is not sent late.

use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::notify::Notifier;
use crate::store::Store;
use runbook_core::figures::{Bucket, Window};
use runbook_runtime::digest::{self, DigestConfig, Period};

/// Longest sleep before the wall clock is read again.
const CLOCK_RECHECK: Duration = Duration::from_secs(60);

/// Starts the task when `[digest]` is configured (the config was checked at load).
pub fn start(
    notifier: Arc<Notifier>,
    store: Arc<Store>,
    config: Option<DigestConfig>,
) -> Option<tokio::task::JoinHandle<()>> {
    let config = config?;
    let (Ok(time), Ok(weekly)) = (config.time_of_day(), config.weekly_day()) else {
        return None;
    };
    Some(tokio::spawn(async move {
        loop {
            let due = next(Timestamp::now(), time);
            // Sleep in short steps: a clock that jumps is noticed within a minute.
            loop {
                let left = due.duration_since(Timestamp::now());
                if left <= SignedDuration::ZERO {
                    break;
                }
                let left = Duration::try_from(left).unwrap_or(CLOCK_RECHECK);
                tokio::time::sleep(left.min(CLOCK_RECHECK)).await;
            }
            let day = due.to_zoned(TimeZone::UTC);
            let mut periods = vec![Period::Day];
            if weekly == Some(day.weekday().to_monday_one_offset()) {
                periods.push(Period::Week);
            }
            for period in periods {
                if let Err(e) = send(&notifier, &store, &config.channel, period, due).await {
                    tracing::warn!("digest ({}) not sent: {e:#}", period.as_str());
                }
            }
        }
    }))
}

/// The first `time` of day (UTC) after `now`.
fn next(now: Timestamp, (h, m, s): (i8, i8, i8)) -> Timestamp {
    let today = now.to_zoned(TimeZone::UTC).date();
    let at = |date: jiff::civil::Date| {
        date.at(h, m, s, 0)
            .to_zoned(TimeZone::UTC)
            .map(|z| z.timestamp())
            .unwrap_or(now)
    };
    let candidate = at(today);
    if candidate > now {
        candidate
    } else {
        at(today.tomorrow().unwrap_or(today))
    }
}

/// Milliseconds and `Z`, as the store's times are written.
fn rfc3339(t: Timestamp) -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::from(t)).to_string()
}

/// The report of the period ending at `end`, queued once per period across replicas.
async fn send(
    notifier: &Notifier,
    store: &Arc<Store>,
    channel: &str,
    period: Period,
    end: Timestamp,
) -> anyhow::Result<()> {
    let (span, bucket) = match period {
        Period::Week => (SignedDuration::from_hours(7 * 24), Bucket::Day),
        _ => (SignedDuration::from_hours(24), Bucket::Hour),
    };
    let window = Window {
        since: rfc3339(end - span),
        until: rfc3339(end),
        bucket,
    };
    let figures = store.figures(&window).await?;
    let date = &window.until[..10];
    let key = format!("digest:{}:{date}", period.as_str());
    let notification = digest::notification(&figures, period, &key);
    notifier
        .submit_once(channel, &notification, Some(key))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_digest_is_today_or_tomorrow() {
        let now: Timestamp = "2026-12-07T10:00:00Z".parse().unwrap();
        assert_eq!(next(now, (18, 0, 0)).to_string(), "2026-12-07T18:00:00Z");
        assert_eq!(next(now, (10, 0, 0)).to_string(), "2026-12-08T10:00:00Z");
        assert_eq!(next(now, (9, 59, 59)).to_string(), "2026-12-08T09:59:59Z");
        assert_eq!(rfc3339(now), "2026-12-07T10:00:00.000Z");
    }
}
