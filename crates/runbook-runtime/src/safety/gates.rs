//! Two safety rails as host.toml spells them: `[plugins.X] breaker = { failures, within,
//! cool-down }` and `[[maintenance]]` windows (start/end, or cron + duration). Checked when
//! the config is read; the label matchers are compiled by the server (routing.rs), which
//! refuses to start on a bad one. Deciding with them is the server's (server/safety.rs).

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer};

use crate::schedule::{CronExpr, Zone};
pub use runbook_core::safety::{BreakerRule, MAX_MATCHER, MAX_MATCHERS, MAX_REASON, MAX_WINDOW};

/// Where a breaker's opening is told when its config names no channel.
pub const DEFAULT_BREAKER_CHANNEL: &str = "ops";

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("{text:?}: {e} (like \"15m\", \"2h\")")))
}

fn some_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

fn some_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    let text = String::deserialize(d)?;
    text.parse::<Timestamp>().map(Some).map_err(|e| {
        serde::de::Error::custom(format!(
            "{text:?}: {e} (RFC 3339, like \"2026-12-24T22:00:00Z\")"
        ))
    })
}

/// `[plugins.X] breaker`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BreakerConfig {
    /// Runs ended `failed` or `escalated` that open it…
    pub failures: u32,
    /// …within this long (`"15m"`).
    #[serde(deserialize_with = "duration")]
    pub within: Duration,
    /// Open this long, unless reset (`host breaker reset X`).
    #[serde(deserialize_with = "duration")]
    pub cool_down: Duration,
    /// Where its opening is told (default `ops`).
    pub channel: Option<String>,
}

impl BreakerConfig {
    pub fn rule(&self) -> BreakerRule {
        BreakerRule {
            failures: self.failures,
            within: self.within,
            cool_down: self.cool_down,
        }
    }

    pub fn channel(&self) -> &str {
        self.channel.as_deref().unwrap_or(DEFAULT_BREAKER_CHANNEL)
    }

    pub fn check(&self) -> Result<(), String> {
        if self.failures == 0 || self.failures > 10_000 {
            return Err(format!("failures = {}: 1 to 10000", self.failures));
        }
        if self.within.is_zero() || self.cool_down.is_zero() {
            return Err("within and cool-down must be longer than 0".into());
        }
        Ok(())
    }
}

/// `[[maintenance]]`: alerts matching it (and scheduled runs of it) are recorded
/// `suppressed` while it is in force.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MaintenanceConfig {
    pub name: String,
    /// Alert label matchers, as routes spell them (`instance="web01"`); all must match. A
    /// scheduled run is seen with the labels `schedule` and `playbook`.
    #[serde(default)]
    pub matchers: Vec<String>,
    /// Runs for these fleet nodes.
    #[serde(default)]
    pub nodes: Vec<String>,
    #[serde(default, deserialize_with = "some_time")]
    pub start: Option<Timestamp>,
    #[serde(default, deserialize_with = "some_time")]
    pub end: Option<Timestamp>,
    /// When it starts, repeatedly; with `duration`.
    pub cron: Option<CronExpr>,
    #[serde(default, deserialize_with = "some_duration")]
    pub duration: Option<Duration>,
    /// The zone `cron` is read in (default UTC).
    #[serde(default)]
    pub timezone: Zone,
    pub reason: Option<String>,
}

impl MaintenanceConfig {
    pub fn check(&self) -> Result<(), String> {
        let name = &self.name;
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "name {name:?}: letters, digits, '-', '_' or '.', at most 64"
            ));
        }
        check_scope(&self.matchers, &self.nodes, self.reason.as_deref())?;
        match (&self.start, &self.end, &self.cron, &self.duration) {
            (Some(start), Some(end), None, None) if start < end => Ok(()),
            (Some(_), Some(_), None, None) => Err("end must be after start".into()),
            (None, None, Some(_), Some(d)) if !d.is_zero() => Ok(()),
            _ => Err("give either start and end (RFC 3339), or cron and duration".into()),
        }
    }

    /// When the occurrence in force at `now` ends; None when it is not in force.
    pub fn active_until(&self, now: Timestamp) -> Option<Timestamp> {
        let (start, end) = self.occurrence_at(now)?;
        (start <= now && now < end).then_some(end)
    }

    /// The occurrence in force at `now`, else the next one (for the console).
    pub fn occurrence_at(&self, now: Timestamp) -> Option<(Timestamp, Timestamp)> {
        match (&self.start, &self.end, &self.cron, &self.duration) {
            (Some(start), Some(end), _, _) => Some((*start, *end)),
            (_, _, Some(cron), Some(duration)) => {
                let span = jiff::SignedDuration::try_from(*duration).ok()?;
                if let Some(start) = cron.latest_at(now, &self.timezone)
                    && let Ok(end) = start.checked_add(span)
                    && now < end
                {
                    return Some((start, end));
                }
                let start = cron.next_after(now, &self.timezone)?;
                Some((start, start.checked_add(span).ok()?))
            }
            _ => None,
        }
    }
}

/// The bounds every window (config or ad hoc) keeps: at least one matcher or node, few of
/// them, short; a short reason.
pub fn check_scope(
    matchers: &[String],
    nodes: &[String],
    reason: Option<&str>,
) -> Result<(), String> {
    if matchers.is_empty() && nodes.is_empty() {
        return Err("a maintenance window needs at least one matcher or node".into());
    }
    if matchers.len() > MAX_MATCHERS || nodes.len() > MAX_MATCHERS {
        return Err(format!(
            "at most {MAX_MATCHERS} matchers and {MAX_MATCHERS} nodes"
        ));
    }
    if let Some(long) = matchers.iter().chain(nodes).find(|m| m.len() > MAX_MATCHER) {
        return Err(format!(
            "{:?}…: a matcher or node is at most {MAX_MATCHER} bytes",
            long.chars().take(32).collect::<String>()
        ));
    }
    if reason.is_some_and(|r| r.len() > MAX_REASON) {
        return Err(format!("the reason is at most {MAX_REASON} bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(text: &str) -> Result<MaintenanceConfig, String> {
        let window: MaintenanceConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        window.check()?;
        Ok(window)
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn a_start_end_window_is_in_force_between_them_only() {
        let w = window(
            "name = \"db\"\nmatchers = ['team=\"db\"']\n\
             start = \"2026-12-24T22:00:00Z\"\nend = \"2026-12-25T02:00:00Z\"\n",
        )
        .unwrap();
        assert_eq!(w.active_until(at("2026-12-24T21:59:59Z")), None);
        assert_eq!(
            w.active_until(at("2026-12-24T23:00:00Z")),
            Some(at("2026-12-25T02:00:00Z"))
        );
        assert_eq!(w.active_until(at("2026-12-25T02:00:00Z")), None);
    }

    #[test]
    fn a_cron_window_is_in_force_for_its_duration_after_each_start() {
        // Saturdays 02:00 UTC for 3 h; 2026-12-05 is a Saturday.
        let w = window(
            "name = \"patching\"\nnodes = [\"web01\"]\ncron = \"0 2 * * 6\"\nduration = \"3h\"\n",
        )
        .unwrap();
        assert_eq!(
            w.active_until(at("2026-12-05T04:59:00Z")),
            Some(at("2026-12-05T05:00:00Z"))
        );
        assert_eq!(w.active_until(at("2026-12-05T05:00:00Z")), None);
        assert_eq!(w.active_until(at("2026-12-06T03:00:00Z")), None);
        assert_eq!(
            w.occurrence_at(at("2026-12-06T03:00:00Z")),
            Some((at("2026-12-12T02:00:00Z"), at("2026-12-12T05:00:00Z")))
        );
    }

    #[test]
    fn bad_windows_and_breakers_are_refused_with_why() {
        for (text, says) in [
            (
                "name = \"w\"\nnodes = [\"a\"]\nstart = \"tomorrow\"\nend = \"2026-12-25T02:00:00Z\"\n",
                "RFC 3339",
            ),
            (
                "name = \"w\"\nnodes = [\"a\"]\nstart = \"2026-12-25T02:00:00Z\"\nend = \"2026-12-24T02:00:00Z\"\n",
                "end must be after start",
            ),
            (
                "name = \"w\"\nnodes = [\"a\"]\ncron = \"0 2 * * 6\"\n",
                "cron and duration",
            ),
            (
                "name = \"w\"\nnodes = [\"a\"]\ncron = \"0 2 * * 6\"\nduration = \"3 fortnights\"\n",
                "unknown time unit",
            ),
            (
                "name = \"w\"\ncron = \"0 2 * * 6\"\nduration = \"1h\"\n",
                "at least one matcher or node",
            ),
            (
                "name = \"bad name\"\nnodes = [\"a\"]\ncron = \"0 2 * * 6\"\nduration = \"1h\"\n",
                "letters, digits",
            ),
            (
                "name = \"w\"\nnodes = [\"a\"]\ncron = \"0 2 * * 6\"\nduration = \"1h\"\nlabels = 1\n",
                "unknown field",
            ),
        ] {
            let err = window(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
        let long = format!(
            "name = \"w\"\nnodes = [\"a\"]\ncron = \"0 2 * * 6\"\nduration = \"1h\"\nreason = \"{}\"\n",
            "x".repeat(600)
        );
        assert!(window(&long).unwrap_err().contains("at most 512"));
        let breaker = |text: &str| -> Result<BreakerConfig, String> {
            let b: BreakerConfig = toml::from_str(text).map_err(|e| e.to_string())?;
            b.check()?;
            Ok(b)
        };
        let ok = breaker("failures = 3\nwithin = \"15m\"\ncool-down = \"30m\"\n").unwrap();
        assert_eq!(ok.rule().within, Duration::from_secs(900));
        assert_eq!(ok.channel(), "ops");
        assert!(
            breaker("failures = 0\nwithin = \"15m\"\ncool-down = \"30m\"\n")
                .unwrap_err()
                .contains("1 to 10000")
        );
        assert!(breaker("failures = 3\nwithin = \"soon\"\ncool-down = \"30m\"\n").is_err());
    }
}
