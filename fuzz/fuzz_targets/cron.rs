//! `[[schedule]]` cron specs and time zones. Input: line 1 the zone, line 2 the expression,
//! line 3 a start time (seconds since the epoch). The next firing is after the start and is a
//! time the expression matches; the latest firing at it is itself; an error has no control
//! character.
#![no_main]

use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;
use runbook_core::cron::{CronExpr, Zone};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let zone = lines.next().unwrap_or_default();
    let expr = lines.next().unwrap_or_default();
    let start = lines
        .next()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(|s| Timestamp::from_second(s).ok())
        .unwrap_or(Timestamp::UNIX_EPOCH);
    // Zone names are looked up, never read as paths.
    let zone = match Zone::parse(zone) {
        Ok(z) => z,
        Err(e) => {
            assert!(!e.chars().any(char::is_control), "{e:?}");
            Zone::default()
        }
    };
    // An error reaches a terminal (`host check`): no control character rides in it.
    let cron = match CronExpr::parse(expr) {
        Ok(cron) => cron,
        Err(e) => {
            assert!(!e.chars().any(char::is_control), "{e:?}");
            return;
        }
    };
    assert_eq!(cron.text, expr);
    let Some(next) = cron.next_after(start, &zone) else {
        return;
    };
    assert!(
        next > start,
        "{expr:?} in {zone:?}: next {next} not after {start}"
    );
    assert_eq!(
        cron.latest_at(next, &zone),
        Some(next),
        "{expr:?}: {next} does not match"
    );
    if let Some(latest) = cron.latest_at(start, &zone) {
        assert!(latest <= start);
        assert!(cron.next_after(latest, &zone).is_some_and(|n| n > latest));
    }
});
