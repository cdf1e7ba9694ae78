//! The digest: a window's figures as the operators' end-of-day report and weekly summary, in
//! Markdown (`host digest --markdown`), JSON, plain text for a terminal, and as a notification
//! that goes through the outbox to Slack, Telegram, e-mail … (the `[digest]` schedule).
//! Pure functions of the figures. Every name in them (playbook, alert, node) was chosen by a
//! playbook or a webhook: it is escaped for where it is shown and capped.

use std::fmt::Write;

use serde_json::{Value, json};

use crate::notify::{Message, Notification};
use runbook_core::figures::{Figures, GroupFigures, MITIGATE_BARS, Percentiles};
use runbook_core::records::RunStatus;

/// Longest name shown in a digest.
const NAME_CHARS: usize = 80;
/// Rows of the playbooks table in a message.
const MESSAGE_PLAYBOOKS: usize = 8;

/// Which report: the seeds' "End of Day Report" or "Weekly Summary".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    /// `host digest --since …` for any other span.
    Window,
}

impl Period {
    pub fn title(self) -> &'static str {
        match self {
            Period::Day => "End of Day Report",
            Period::Week => "Weekly Summary",
            Period::Window => "Runbook digest",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "daily",
            Period::Week => "weekly",
            Period::Window => "window",
        }
    }
}

/// A duration for people: `850 ms`, `12.0 s`, `4.5 min`, `2.1 h`.
pub fn duration(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return "–".into();
    };
    let abs = ms.unsigned_abs() as f64;
    let sign = if ms < 0 { "-" } else { "" };
    if abs < 1000.0 {
        format!("{sign}{abs:.0} ms")
    } else if abs < 60_000.0 {
        format!("{sign}{:.1} s", abs / 1000.0)
    } else if abs < 3_600_000.0 {
        format!("{sign}{:.1} min", abs / 60_000.0)
    } else {
        format!("{sign}{:.1} h", abs / 3_600_000.0)
    }
}

fn p50_p90(p: &Percentiles) -> String {
    if p.count == 0 {
        return "–".into();
    }
    format!("{} / {}", duration(p.p50_ms), duration(p.p90_ms))
}

/// A name from a playbook or webhook as Markdown text: one line, capped, every character
/// Markdown (or HTML inside it) would act on backslash-escaped.
pub fn md(text: &str) -> String {
    let one_line: String = crate::text::truncate(text, NAME_CHARS)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut out = String::with_capacity(one_line.len());
    for c in one_line.chars() {
        // Markdown's punctuation that can start something: emphasis, code, links (a `[` is
        // escaped, so `(` cannot make one), tables, headings, HTML, entities.
        if "\\`*_[]#|<>~&".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Failed and lost runs among ended ones, in percent.
pub fn error_rate(total: &GroupFigures) -> Option<f64> {
    let mut ended = 0;
    let mut bad = 0;
    for (status, n) in &total.outcomes {
        let status = RunStatus::parse(status);
        if status.is_live() {
            continue;
        }
        ended += n;
        if matches!(status, RunStatus::Failed | RunStatus::Lost) {
            bad += n;
        }
    }
    (ended > 0).then(|| bad as f64 * 100.0 / ended as f64)
}

fn percent(value: Option<f64>) -> String {
    value.map_or("–".into(), |v| format!("{v:.1}%"))
}

/// Outcomes in `RunStatus::ALL` order (statuses this host does not know last): `3 resolved,
/// 1 failed`.
pub fn outcome_list(group: &GroupFigures) -> String {
    let mut parts: Vec<String> = RunStatus::ALL
        .iter()
        .filter_map(|s| {
            let n = group.outcomes.get(s.as_str())?;
            Some(format!("{n} {}", s.as_str()))
        })
        .collect();
    for (status, n) in &group.outcomes {
        if RunStatus::parse(status) == RunStatus::Other {
            parts.push(format!("{n} {}", md(status)));
        }
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

fn busiest(f: &Figures) -> Option<(String, u64)> {
    f.buckets
        .iter()
        .map(|b| (b.start.clone(), b.outcomes.values().sum::<u64>()))
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
}

/// The report in Markdown, with the seeds' headings.
pub fn markdown(f: &Figures, period: Period) -> String {
    let t = &f.total;
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", period.title());
    let _ = writeln!(out, "{} → {}\n", f.window.since, f.window.until);
    let _ = writeln!(out, "## Total runs processed\n");
    let _ = writeln!(out, "- **{}** runs: {}", t.runs, outcome_list(t));
    let _ = writeln!(out, "- alerts received: {}", f.alerts_received);
    let _ = writeln!(out, "\n## Error rate\n");
    let _ = writeln!(out, "- failed or lost: {}", percent(error_rate(t)));
    let _ = writeln!(
        out,
        "- resolved automatically: {} · escalated: {}",
        t.automatic, t.escalated
    );
    let _ = writeln!(out, "\n## Average response time\n");
    let _ = writeln!(out, "| from detection to | runs | p50 / p90 |");
    let _ = writeln!(out, "|---|---:|---|");
    for (what, p) in [
        ("run start", &t.to_start),
        ("first action", &t.to_first_action),
        ("outcome", &t.to_outcome),
    ] {
        let _ = writeln!(out, "| {what} | {} | {} |", p.count, p50_p90(p));
    }
    let _ = writeln!(out, "\n## Usage peaks\n");
    if let Some((start, n)) = busiest(f) {
        let _ = writeln!(out, "- busiest period: {start} ({n} runs)");
    }
    let by_alert: Vec<String> = f
        .alert_runs
        .iter()
        .take(5)
        .map(|g| format!("{} ({})", md(&g.name), g.runs))
        .collect();
    if !by_alert.is_empty() {
        let _ = writeln!(out, "- runs by alert: {}", by_alert.join(", "));
    }
    for (label, list) in [
        ("alerts received", &f.top_alerts),
        ("noisiest nodes", &f.nodes),
    ] {
        let items: Vec<String> = list
            .iter()
            .take(5)
            .map(|c| format!("{} ({})", md(&c.name), c.count))
            .collect();
        if !items.is_empty() {
            let _ = writeln!(out, "- {label}: {}", items.join(", "));
        }
    }
    let actions: Vec<String> = f
        .actions
        .iter()
        .map(|c| format!("{} ×{}", md(&c.name), c.count))
        .collect();
    if !actions.is_empty() {
        let _ = writeln!(out, "- actions: {}", actions.join(", "));
    }
    let _ = writeln!(out, "\n## Security events\n");
    let a = &f.approvals;
    let state = |s: &str| a.states.get(s).copied().unwrap_or(0);
    let _ = writeln!(
        out,
        "- approvals asked: {} (approved {}, rejected {}, expired {}); time to answer p50 / p90: {}",
        a.asked,
        state("approved"),
        state("rejected"),
        state("expired"),
        p50_p90(&a.to_answer)
    );
    let _ = writeln!(
        out,
        "\n## {}\n",
        if period == Period::Week {
            "Issues encountered and resolved"
        } else {
            "Playbooks"
        }
    );
    let _ = writeln!(
        out,
        "| playbook | runs | success | outcomes | to outcome p50 / p90 |"
    );
    let _ = writeln!(out, "|---|---:|---:|---|---|");
    for g in &f.playbooks {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            md(&g.name),
            g.runs,
            percent(g.success_rate()),
            outcome_list(g),
            p50_p90(&g.to_outcome)
        );
    }
    out
}

/// The figures as JSON, with which report they are.
pub fn json(f: &Figures, period: Period) -> Value {
    json!({
        "report": period.title(),
        "period": period.as_str(),
        "error_rate_percent": error_rate(&f.total),
        "figures": f,
    })
}

/// The report as a notification: the channel's renderer (Slack blocks, Telegram HTML, e-mail)
/// escapes it for its medium; the body is plain lines.
pub fn notification(f: &Figures, period: Period, key: &str) -> Notification {
    let t = &f.total;
    let plain = |s: &str| crate::text::truncate(s, NAME_CHARS).into_owned();
    let mut body = String::new();
    let _ = writeln!(body, "{} → {}", f.window.since, f.window.until);
    let _ = writeln!(body, "Runs: {}", outcome_list(t));
    let _ = writeln!(
        body,
        "Resolved automatically {} · escalated {} · failed or lost {}",
        t.automatic,
        t.escalated,
        percent(error_rate(t))
    );
    let _ = writeln!(
        body,
        "Detection → start {} · first action {} · outcome {} (p50 / p90)",
        p50_p90(&t.to_start),
        p50_p90(&t.to_first_action),
        p50_p90(&t.to_outcome)
    );
    if !f.alert_runs.is_empty() {
        let alerts: Vec<String> = f
            .alert_runs
            .iter()
            .take(5)
            .map(|g| format!("{} ({})", plain(&g.name), g.runs))
            .collect();
        let _ = writeln!(body, "Top alerts (runs started): {}", alerts.join(", "));
    }
    for g in f.playbooks.iter().take(MESSAGE_PLAYBOOKS) {
        let _ = writeln!(
            body,
            "• {}: {} runs, {} ok, outcome p50 {}",
            plain(&g.name),
            g.runs,
            percent(g.success_rate()),
            duration(g.to_outcome.p50_ms)
        );
    }
    let a = &f.approvals;
    let severity = if t.outcomes.contains_key("failed") || t.outcomes.contains_key("lost") {
        "warning"
    } else {
        "info"
    };
    let message = Message {
        title: format!(
            "{} — {}",
            period.title(),
            f.window.until.get(..10).unwrap_or_default()
        ),
        body,
        severity: severity.into(),
        fields: vec![
            ("runs".into(), t.runs.to_string()),
            ("error rate".into(), percent(error_rate(t))),
            ("time to outcome p50".into(), duration(t.to_outcome.p50_ms)),
            ("approvals".into(), a.asked.to_string()),
        ],
    };
    Notification::new(message, "digest", key, None)
}

/// `[digest]` in host.toml: `host serve` sends the end-of-day report every day at `daily-at`
/// (UTC) and the weekly summary on `weekly-on` at the same time, to `channel`, once per
/// period across every replica on the store (the outbox's once-key names the period).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DigestConfig {
    /// A `[notify.*]` channel.
    pub channel: String,
    /// `HH:MM` or `HH:MM:SS`, UTC (default 18:00).
    #[serde(default = "default_daily_at")]
    pub daily_at: String,
    /// `monday` … `sunday`: also the weekly summary that day; absent: none.
    pub weekly_on: Option<String>,
}

fn default_daily_at() -> String {
    "18:00".into()
}

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

impl DigestConfig {
    /// (hour, minute, second) of `daily-at`.
    pub fn time_of_day(&self) -> anyhow::Result<(i8, i8, i8)> {
        let parts: Vec<&str> = self.daily_at.split(':').collect();
        let number = |s: &str, max: i8| s.parse::<i8>().ok().filter(|n| (0..=max).contains(n));
        if let [h, m] | [h, m, _] = parts[..] {
            let second = parts.get(2).map_or(Some(0), |s| number(&s[..], 59));
            if let (Some(h), Some(m), Some(s)) = (number(h, 23), number(m, 59), second) {
                return Ok((h, m, s));
            }
        }
        anyhow::bail!(
            "daily-at = {:?}: give a UTC time of day as HH:MM or HH:MM:SS, like \"18:00\"",
            crate::text::echo(&self.daily_at)
        )
    }

    /// Monday = 1 … Sunday = 7, when a weekly summary is wanted.
    pub fn weekly_day(&self) -> anyhow::Result<Option<i8>> {
        let Some(day) = &self.weekly_on else {
            return Ok(None);
        };
        let found = WEEKDAYS
            .iter()
            .position(|d| d.eq_ignore_ascii_case(day.trim()));
        match found {
            Some(i) => Ok(Some(i as i8 + 1)),
            None => anyhow::bail!(
                "weekly-on = {:?}: give a day of the week (monday … sunday)",
                crate::text::echo(day)
            ),
        }
    }

    /// The config's mistakes, said once at load: a bad time or day, an unknown channel.
    pub fn check(&self, channels: &[&str]) -> anyhow::Result<()> {
        self.time_of_day()?;
        self.weekly_day()?;
        if !channels.contains(&self.channel.as_str()) {
            anyhow::bail!(
                "channel {:?} is not a [notify.*] channel (configured: {})",
                crate::text::echo(&self.channel),
                channels.join(", ")
            );
        }
        Ok(())
    }
}

/// The time-to-mitigate histogram's bars as (label, count).
pub fn mitigate_bars(f: &Figures) -> Vec<(&'static str, u64)> {
    MITIGATE_BARS
        .iter()
        .zip(&f.to_mitigate)
        .map(|((_, label), n)| (*label, *n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_make_markdown_or_html() {
        let escaped = md("<script>alert(1)</script> | *x* [a](b)\nnext");
        assert!(!escaped.contains("<script>"), "{escaped}");
        assert!(escaped.contains("\\<script\\>"));
        assert!(escaped.contains("\\|") && escaped.contains("\\*x\\*"));
        assert!(!escaped.contains('\n'));
    }

    #[test]
    fn digest_times_and_days_are_checked() {
        let config = |at: &str, day: Option<&str>| DigestConfig {
            channel: "ops".into(),
            daily_at: at.into(),
            weekly_on: day.map(String::from),
        };
        assert_eq!(config("18:05", None).time_of_day().unwrap(), (18, 5, 0));
        assert_eq!(config("07:00:30", None).time_of_day().unwrap(), (7, 0, 30));
        assert!(config("24:00", None).time_of_day().is_err());
        assert!(config("6pm", None).time_of_day().is_err());
        assert_eq!(
            config("18:00", Some("Friday")).weekly_day().unwrap(),
            Some(5)
        );
        assert!(config("18:00", Some("fri")).weekly_day().is_err());
        assert!(config("18:00", None).check(&["slack"]).is_err());
        assert!(config("18:00", None).check(&["ops"]).is_ok());
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(Some(850)), "850 ms");
        assert_eq!(duration(Some(12_000)), "12.0 s");
        assert_eq!(duration(Some(270_000)), "4.5 min");
        assert_eq!(duration(None), "–");
    }
}
