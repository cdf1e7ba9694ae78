//! `[[schedule]]` in host.toml: a playbook run on a cron expression in an IANA time zone.
//! Parsing (croner: 5 fields, or 6 with seconds first; `@daily` and friends) and the zone
//! (jiff, with its zone database compiled in) are checked when the config is read, so a bad
//! expression or zone is a config error with its line and column. `host serve` fires them
//! (server/schedule.rs); `host schedules` lists them.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer};

// Cron expressions and zones are parsed in core (where `fuzz/` reaches them).
pub use runbook_core::cron::{CronExpr, Zone};

use crate::records::FiringRecord;
use crate::severity::Priority;
use crate::store::Store;

/// Longest a schedule's name may be: it is a key in the store and shown in lists.
pub const MAX_NAME_LEN: usize = 64;
/// Largest `jitter-secs`: an hour spreads schedules that share a minute, and keeps a
/// firing's time plus its delay far from the end of time arithmetic.
pub const MAX_JITTER_SECS: u64 = 3600;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ScheduleConfig {
    /// Names the schedule in `host schedules` and keys its firings in the store; default: the
    /// playbook's name (two schedules of one playbook must name themselves).
    pub name: Option<String>,
    pub cron: CronExpr,
    pub playbook: String,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// IANA zone the expression is read in (default UTC): "0 6 * * *" in Europe/Berlin is
    /// 06:00 there, summer and winter.
    #[serde(default)]
    pub timezone: Zone,
    /// P1–P4 (or critical, warning, …) for the runs; default P3.
    #[serde(default, deserialize_with = "priority")]
    pub severity: Option<Priority>,
    #[serde(default)]
    pub dry_run: bool,
    /// Each firing waits up to this long (the same delay on every replica for one firing),
    /// so schedules on the same minute do not all start at once. At most
    /// [`MAX_JITTER_SECS`], and never half the time to the schedule's next firing or more.
    #[serde(default)]
    pub jitter_secs: u64,
    /// A firing missed while no host ran (the latest before start) runs once at start.
    #[serde(default)]
    pub catch_up: bool,
}

impl ScheduleConfig {
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.playbook)
    }

    /// The first firing strictly after `after`; None when the expression never matches again.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        self.cron.next_after(after, &self.timezone)
    }

    /// The latest firing at or before `at` (what catch-up runs).
    pub fn latest_at(&self, at: Timestamp) -> Option<Timestamp> {
        self.cron.latest_at(at, &self.timezone)
    }

    /// The delay of one firing within `jitter-secs`: derived from the schedule and the firing,
    /// so every replica waits the same and the store's key decides which one runs it. Less
    /// than half the time to the following firing, so a delayed firing never runs after the
    /// next one is due.
    pub fn jitter(&self, firing: Timestamp) -> Duration {
        let mut bound_ms = self.jitter_secs.min(MAX_JITTER_SECS) * 1000;
        if bound_ms == 0 {
            return Duration::ZERO;
        }
        if let Some(following) = self.next_after(firing) {
            let gap_ms = following.duration_since(firing).as_millis();
            bound_ms = bound_ms.min(u64::try_from(gap_ms / 2).unwrap_or(0));
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (self.name(), firing.as_millisecond()).hash(&mut hasher);
        Duration::from_millis(hasher.finish() % (bound_ms + 1))
    }

    /// When `firing` is run: its time plus its jitter; None past the end of representable
    /// time (never a panic).
    pub fn fires_at(&self, firing: Timestamp) -> Option<Timestamp> {
        let jitter = jiff::SignedDuration::try_from(self.jitter(firing)).ok()?;
        firing.checked_add(jitter).ok()
    }

    /// What the firing loop does when it wakes at wall-clock `now`, every firing up to
    /// `after` handled. The clock is believed only as far as it goes: after a jump forward
    /// (or a suspended machine) over several firings, only the latest of them runs, once, as
    /// a catch-up; after a jump back before `after`, the loop continues from `now`, and the
    /// firings it meets again are the store's already (recorded under their time: not run
    /// twice).
    pub fn due(&self, after: Timestamp, now: Timestamp) -> Due {
        if now < after {
            return Due::Rewind(now);
        }
        let Some(next) = self.next_after(after) else {
            return Due::Never;
        };
        let Some(at) = self.fires_at(next) else {
            return Due::Never;
        };
        if now < at {
            return Due::Sleep(at);
        }
        match self.latest_at(now) {
            Some(latest) if latest > next => Due::Fire {
                at: latest,
                catch_up: true,
            },
            _ => Due::Fire {
                at: next,
                catch_up: false,
            },
        }
    }

    /// What `load` checks beyond the types: the name (a store key), the playbook's name, and
    /// the jitter's bound.
    pub fn check(&self) -> Result<(), String> {
        if self.jitter_secs > MAX_JITTER_SECS {
            return Err(format!(
                "jitter-secs = {}: at most {MAX_JITTER_SECS} (an hour)",
                self.jitter_secs
            ));
        }
        let name = self.name();
        if name.is_empty()
            || name.len() > MAX_NAME_LEN
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "name {name:?}: letters, digits, '-', '_' or '.', at most {MAX_NAME_LEN}"
            ));
        }
        crate::catalog::check_name(&self.playbook).map_err(|e| format!("playbook {e}"))
    }
}

/// What a schedule's firing loop does next ([`ScheduleConfig::due`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing is due: sleep until this wall-clock time (the next firing plus its jitter).
    Sleep(Timestamp),
    /// Run the firing at `at`, then go on after it. `catch_up`: the clock passed more than
    /// one firing and this, the latest of them, is the only one that runs.
    Fire { at: Timestamp, catch_up: bool },
    /// The clock went back before the last firing handled: go on after this time.
    Rewind(Timestamp),
    /// The expression never fires again (or not before the end of representable time).
    Never,
}

/// A schedule as `host schedules` shows it: when it fires next, and its last firing (from
/// the store) with its outcome.
#[derive(Debug, serde::Serialize)]
pub struct ScheduleStatus {
    pub name: String,
    pub playbook: String,
    pub cron: String,
    pub timezone: String,
    pub catch_up: bool,
    /// RFC 3339 (UTC); none when the expression never fires again.
    pub next: Option<String>,
    pub last: Option<FiringRecord>,
    /// The recorded firings, newest first (`--history N`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<FiringRecord>,
}

/// Every configured schedule's status; `history` firings of each (at least the last one).
pub async fn statuses(
    store: &Store,
    schedules: &[ScheduleConfig],
    history: usize,
) -> anyhow::Result<Vec<ScheduleStatus>> {
    let now = Timestamp::now();
    let mut out = Vec::with_capacity(schedules.len());
    for schedule in schedules {
        let mut firings = store.firings(schedule.name(), history.max(1)).await?;
        let last = firings.first().cloned();
        if history == 0 {
            firings.clear();
        }
        out.push(ScheduleStatus {
            name: schedule.name().to_string(),
            playbook: schedule.playbook.clone(),
            cron: schedule.cron.text.clone(),
            timezone: schedule.timezone.name.clone(),
            catch_up: schedule.catch_up,
            next: schedule.next_after(now).map(|t| t.to_string()),
            last,
            history: firings,
        });
    }
    Ok(out)
}

/// The statuses as a table for the terminal.
pub fn table(statuses: &[ScheduleStatus]) -> String {
    use std::fmt::Write;
    if statuses.is_empty() {
        return "no [[schedule]] in the config\n".into();
    }
    let mut out = String::new();
    for s in statuses {
        let last = match &s.last {
            None => "never fired".to_string(),
            Some(f) => {
                let run = f
                    .run_id
                    .as_deref()
                    .or(f.skipped_for.as_deref())
                    .unwrap_or("-");
                let catch_up = if f.catch_up { " (catch-up)" } else { "" };
                match &f.skipped_for {
                    Some(_) => format!("{} skipped{catch_up}: run {run} still going", f.at),
                    None => format!("{} {}{catch_up}: run {run}", f.at, f.outcome),
                }
            }
        };
        let _ = writeln!(
            out,
            "{}  {}  {:?} {}\n  next: {}\n  last: {last}",
            s.name,
            s.playbook,
            s.cron,
            s.timezone,
            s.next.as_deref().unwrap_or("never")
        );
        for f in s.history.iter().skip(1) {
            let run = f
                .run_id
                .as_deref()
                .or(f.skipped_for.as_deref())
                .unwrap_or("-");
            let _ = writeln!(out, "        {} {}: run {run}", f.at, f.outcome);
        }
    }
    out
}

fn priority<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Priority>, D::Error> {
    let text = String::deserialize(d)?;
    Priority::parse(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(toml_text: &str) -> Result<ScheduleConfig, String> {
        toml::from_str(toml_text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_cron_in_a_zone_fires_at_local_time_and_seconds_are_optional() {
        let s = schedule(
            "cron = \"0 6 * * *\"\nplaybook = \"health-check\"\ntimezone = \"Europe/Berlin\"",
        )
        .unwrap();
        // 2026-07-01 is summer time in Berlin (UTC+2): 06:00 there is 04:00 UTC.
        let after: Timestamp = "2026-07-01T00:00:00Z".parse().unwrap();
        assert_eq!(
            s.next_after(after).unwrap().to_string(),
            "2026-07-01T04:00:00Z"
        );
        assert_eq!(
            s.latest_at(after).unwrap().to_string(),
            "2026-06-30T04:00:00Z"
        );
        let every_second = schedule("cron = \"* * * * * *\"\nplaybook = \"quick\"").unwrap();
        let at: Timestamp = "2026-07-01T00:00:00.5Z".parse().unwrap();
        assert_eq!(
            every_second.next_after(at).unwrap().to_string(),
            "2026-07-01T00:00:01Z"
        );
        assert_eq!(every_second.timezone.name, "UTC");
    }

    #[test]
    fn a_bad_cron_zone_or_severity_is_an_error_with_its_position() {
        let bad_cron = schedule("playbook = \"x\"\ncron = \"61 * * * *\"").unwrap_err();
        assert!(
            bad_cron.contains("line 2") && bad_cron.contains("cron"),
            "{bad_cron}"
        );
        let bad_zone = schedule("cron = \"@daily\"\nplaybook = \"x\"\ntimezone = \"Mars/Olympus\"")
            .unwrap_err();
        assert!(
            bad_zone.contains("line 3") && bad_zone.contains("Mars/Olympus"),
            "{bad_zone}"
        );
        let bad_severity =
            schedule("cron = \"@daily\"\nplaybook = \"x\"\nseverity = \"meh\"").unwrap_err();
        assert!(bad_severity.contains("line 3"), "{bad_severity}");
    }

    #[test]
    fn jitter_stays_within_its_bound_and_is_the_same_for_one_firing() {
        let mut s = schedule("cron = \"@hourly\"\nplaybook = \"x\"").unwrap();
        let firing: Timestamp = "2026-07-01T04:00:00Z".parse().unwrap();
        assert_eq!(s.jitter(firing), Duration::ZERO);
        s.jitter_secs = 30;
        assert!(s.jitter(firing) <= Duration::from_secs(30));
        assert_eq!(s.jitter(firing), s.jitter(firing));
        // Never half the way to the next firing: a per-minute schedule waits under 30 s.
        let mut minutely = schedule("cron = \"* * * * *\"\nplaybook = \"x\"").unwrap();
        minutely.jitter_secs = MAX_JITTER_SECS;
        for minute in 0..200 {
            let at = firing + jiff::SignedDuration::from_mins(minute);
            assert!(minutely.jitter(at) <= Duration::from_secs(30), "{at}");
        }
    }

    #[test]
    fn jitter_secs_is_capped_when_the_config_is_read() {
        let mut s = schedule("cron = \"@hourly\"\nplaybook = \"x\"").unwrap();
        s.jitter_secs = MAX_JITTER_SECS;
        assert_eq!(s.check(), Ok(()));
        s.jitter_secs = u64::MAX;
        let e = s.check().unwrap_err();
        assert!(
            e.contains("jitter-secs") && e.contains("at most 3600"),
            "{e}"
        );
        // Even unchecked, a huge value is no overflow: the delay stays within the cap.
        assert!(s.jitter("2026-07-01T04:00:00Z".parse().unwrap()) <= Duration::from_secs(3600));
    }

    #[test]
    fn time_arithmetic_at_the_end_of_time_is_checked_not_a_panic() {
        let mut s = schedule("cron = \"* * * * * *\"\nplaybook = \"x\"").unwrap();
        s.jitter_secs = MAX_JITTER_SECS;
        let end = Timestamp::MAX;
        assert_eq!(
            s.fires_at(end),
            Some(end).filter(|_| s.jitter(end).is_zero())
        );
        let late = end - jiff::SignedDuration::from_secs(1);
        // Whatever the jitter, no panic; and nothing fires beyond representable time.
        let _ = s.fires_at(late);
        assert!(matches!(
            s.due(late, end),
            Due::Never | Due::Fire { .. } | Due::Sleep(_)
        ));
        assert_eq!(s.due(end, end), Due::Never);
    }

    /// The firing loop of server/schedule.rs against a scripted wall clock: each wake-up reads
    /// the next time; returns the firings run (time, catch-up).
    fn drive(s: &ScheduleConfig, start: Timestamp, clock: &[Timestamp]) -> Vec<(String, bool)> {
        let mut after = start;
        let mut fired = Vec::new();
        for &now in clock {
            // Everything due at this instant, as the loop does before it sleeps again.
            loop {
                match s.due(after, now) {
                    Due::Fire { at, catch_up } => {
                        fired.push((at.to_string(), catch_up));
                        after = at;
                    }
                    Due::Rewind(to) => after = to,
                    Due::Sleep(_) | Due::Never => break,
                }
            }
        }
        fired
    }

    fn t(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn a_clock_jump_forward_runs_one_catch_up_not_every_missed_firing() {
        let every_second = schedule("cron = \"* * * * * *\"\nplaybook = \"x\"").unwrap();
        let start = t("2026-07-01T10:00:00.5Z");
        // Normal ticks: each second once.
        let fired = drive(
            &every_second,
            start,
            &[t("2026-07-01T10:00:01.01Z"), t("2026-07-01T10:00:02.01Z")],
        );
        assert_eq!(
            fired,
            [
                ("2026-07-01T10:00:01Z".into(), false),
                ("2026-07-01T10:00:02Z".into(), false)
            ]
        );
        // The clock jumps an hour ahead: one catch-up (the latest missed), not 3600 firings.
        let fired = drive(
            &every_second,
            start,
            &[t("2026-07-01T10:00:01.01Z"), t("2026-07-01T11:00:01.3Z")],
        );
        assert_eq!(
            fired,
            [
                ("2026-07-01T10:00:01Z".into(), false),
                ("2026-07-01T11:00:01Z".into(), true)
            ]
        );
        // A daily schedule after a machine slept a week: one catch-up.
        let daily = schedule("cron = \"0 6 * * *\"\nplaybook = \"x\"").unwrap();
        let fired = drive(
            &daily,
            t("2026-07-01T00:00:00Z"),
            &[t("2026-07-08T12:00:00Z"), t("2026-07-09T06:00:00.2Z")],
        );
        assert_eq!(
            fired,
            [
                ("2026-07-08T06:00:00Z".into(), true),
                ("2026-07-09T06:00:00Z".into(), false)
            ]
        );
        // Years ahead on a per-second schedule: still one, and computed without walking them.
        let fired = drive(&every_second, start, &[t("2036-07-01T10:00:00.2Z")]);
        assert_eq!(fired, [("2036-07-01T10:00:00Z".into(), true)]);
    }

    #[test]
    fn a_clock_jump_back_runs_no_catch_up_and_the_schedule_goes_on() {
        let every_second = schedule("cron = \"* * * * * *\"\nplaybook = \"x\"").unwrap();
        let start = t("2026-07-01T10:00:00.5Z");
        let fired = drive(
            &every_second,
            start,
            &[
                t("2026-07-01T10:00:01.01Z"),
                // An hour back: nothing fires at once…
                t("2026-07-01T09:00:01.5Z"),
                // …and the schedule goes on from the new time, not an hour later.
                t("2026-07-01T09:00:02.01Z"),
            ],
        );
        assert_eq!(
            fired,
            [
                ("2026-07-01T10:00:01Z".into(), false),
                ("2026-07-01T09:00:02Z".into(), false)
            ]
        );
        // With jitter, and back and forth: at most one catch-up per jump.
        let mut minutely = schedule("cron = \"* * * * *\"\nplaybook = \"x\"").unwrap();
        minutely.jitter_secs = 20;
        let clock = [
            t("2026-07-01T10:01:30Z"),
            t("2026-07-01T13:00:30Z"),
            t("2026-07-01T08:00:00Z"),
            t("2026-07-01T08:01:30Z"),
        ];
        let fired = drive(&minutely, start, &clock);
        let catch_ups = fired.iter().filter(|(_, c)| *c).count();
        assert_eq!(catch_ups, 1, "{fired:?}");
        assert_eq!(fired.len(), 3, "{fired:?}");
    }
}
