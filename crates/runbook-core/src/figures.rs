//! Figures over a window of runs: counts by outcome, times from detection to start, to the
//! first mutating action and to the outcome (p50/p90), approvals, actions by kind. Both store
//! backends do the counting in SQL and hand the rows to [`assemble`], so both give the same
//! figures to the millisecond. No I/O here.
//!
//! Percentiles are nearest-rank: the p-th percentile of n sorted values is the value at rank
//! ⌈p·n/100⌉ (1-based). Times are whole milliseconds; a timestamp's digits past the
//! millisecond are dropped when the run is stored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::mutations::{Actions, actions_of, alert_keys, is_mutating, normalize_time};

use crate::records::RunStatus;

/// At most this many names per ranked list (top alerts, playbooks, nodes).
pub const TOP: usize = 10;

/// How runs are grouped over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    /// Characters of an RFC 3339 time that name its bucket (`2026-12-07T03`, `2026-12-07`).
    pub fn prefix_len(self) -> usize {
        match self {
            Bucket::Hour => 13,
            Bucket::Day => 10,
        }
    }
}

/// The runs accepted in `[since, until)` (RFC 3339 UTC text, compared as text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub since: String,
    pub until: String,
    pub bucket: Bucket,
}

impl Window {
    /// The window that ends now and lasted `span`, by hour up to two days, by day beyond.
    pub fn last(span: std::time::Duration) -> Window {
        let now = std::time::SystemTime::now();
        let since = now.checked_sub(span).unwrap_or(std::time::UNIX_EPOCH);
        Window {
            since: humantime::format_rfc3339_millis(since).to_string(),
            until: humantime::format_rfc3339_millis(now + std::time::Duration::from_millis(1))
                .to_string(),
            bucket: if span > std::time::Duration::from_secs(2 * 86_400) {
                Bucket::Day
            } else {
                Bucket::Hour
            },
        }
    }
}

/// p50 and p90 of some durations, and how many there were.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: Option<i64>,
    pub p90_ms: Option<i64>,
}

impl Percentiles {
    /// Of `values`, which this sorts.
    pub fn of(values: &mut [i64]) -> Percentiles {
        values.sort_unstable();
        Percentiles {
            count: values.len() as u64,
            p50_ms: nearest_rank(values, 50),
            p90_ms: nearest_rank(values, 90),
        }
    }
}

/// The `p`-th percentile (0 < p ≤ 100) of `sorted` by nearest rank; `None` when empty.
pub fn nearest_rank(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len() as u64;
    let rank = (u64::from(p) * n).div_ceil(100).clamp(1, n);
    Some(sorted[rank as usize - 1])
}

/// One playbook's (or one alert name's) runs in the window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupFigures {
    pub name: String,
    pub runs: u64,
    /// Runs by status (every status of `RunStatus::ALL` seen, by its name).
    pub outcomes: BTreeMap<String, u64>,
    /// Resolved or mitigated: the automation handled it.
    pub automatic: u64,
    pub escalated: u64,
    /// From detection (the alert's `startsAt`, else the run's acceptance) to the run's start.
    pub to_start: Percentiles,
    /// … to its first mutating action that was performed (not a dry run's "would").
    pub to_first_action: Percentiles,
    /// … to its outcome, for runs that reported one (resolved … failed; not lost or cut off).
    pub to_outcome: Percentiles,
}

impl GroupFigures {
    /// Good outcomes (resolved, mitigated, no-action) among ended runs, in percent.
    pub fn success_rate(&self) -> Option<f64> {
        let ended: u64 = self
            .outcomes
            .iter()
            .filter(|(s, _)| !RunStatus::parse(s).is_live())
            .map(|(_, n)| n)
            .sum();
        let good: u64 = self
            .outcomes
            .iter()
            .filter(|(s, _)| RunStatus::parse(s).is_good())
            .map(|(_, n)| n)
            .sum();
        (ended > 0).then(|| good as f64 * 100.0 / ended as f64)
    }
}

/// Runs of one bucket by status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketFigures {
    /// `2026-12-07T03` (hour) or `2026-12-07` (day).
    pub start: String,
    pub outcomes: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalFigures {
    pub asked: u64,
    /// By state: pending, approved, rejected, expired, lost.
    pub states: BTreeMap<String, u64>,
    /// From asked to answered, for answered questions (approved or rejected).
    pub to_answer: Percentiles,
}

/// A name and how many times it came up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counted {
    pub name: String,
    pub count: u64,
}

/// Upper bounds (ms) of the time-to-mitigate histogram's bars; the last bar is open.
pub const MITIGATE_BARS: [(i64, &str); 6] = [
    (60_000, "< 1 min"),
    (300_000, "1–5 min"),
    (900_000, "5–15 min"),
    (3_600_000, "15–60 min"),
    (14_400_000, "1–4 h"),
    (i64::MAX, "≥ 4 h"),
];

/// Everything the digest and the dashboard show about one window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    pub window: Window,
    /// Every run of the window together (`name` empty).
    pub total: GroupFigures,
    /// Most runs first, then by name.
    pub playbooks: Vec<GroupFigures>,
    /// Runs by the name of the alert that started them, most first (at most [`TOP`]).
    pub alert_runs: Vec<GroupFigures>,
    /// Alerts received (every disposition), most first (at most [`TOP`]).
    pub top_alerts: Vec<Counted>,
    pub alerts_received: u64,
    /// Runs by node (the fleet node, else the alert's `instance` label), most first.
    pub nodes: Vec<Counted>,
    pub buckets: Vec<BucketFigures>,
    /// Counts of resolved and mitigated runs by how long detection to outcome took
    /// ([`MITIGATE_BARS`]).
    pub to_mitigate: Vec<u64>,
    pub approvals: ApprovalFigures,
    /// Mutating calls performed, by `interface.function`, most first.
    pub actions: Vec<Counted>,
}

/// A count of runs of one (playbook, alert, node, bucket, status), as the store's GROUP BY
/// gives it.
#[derive(Debug, Clone)]
pub struct CountRow {
    pub playbook: String,
    pub alertname: Option<String>,
    pub node: Option<String>,
    pub bucket: String,
    pub status: String,
    pub runs: u64,
}

/// The durations (ms) from detection of one (playbook, alert, status)'s runs.
#[derive(Debug, Clone, Default)]
pub struct DurationGroup {
    pub playbook: String,
    pub alertname: Option<String>,
    pub status: String,
    pub to_start: Vec<i64>,
    pub to_first_action: Vec<i64>,
    pub to_end: Vec<i64>,
}

/// The rows a backend read for a window.
#[derive(Debug, Clone, Default)]
pub struct FigureRows {
    pub counts: Vec<CountRow>,
    pub durations: Vec<DurationGroup>,
    /// (alertname, count) of alerts received.
    pub alerts: Vec<(String, u64)>,
    /// (state, count) of approvals asked.
    pub approval_states: Vec<(String, u64)>,
    pub answer_ms: Vec<i64>,
    /// (kind, count) of mutating calls.
    pub actions: Vec<(String, u64)>,
}

/// Sums runs into groups as a backend reads them, borrowing each row's text: a window of
/// 100k runs allocates per group, not per run.
#[derive(Debug, Default)]
pub struct Tally {
    key: String,
    count_index: std::collections::HashMap<String, usize>,
    time_index: std::collections::HashMap<String, usize>,
    pub counts: Vec<CountRow>,
    pub durations: Vec<DurationGroup>,
}

impl Tally {
    fn key(&mut self, parts: &[Option<&str>]) {
        self.key.clear();
        for part in parts {
            // NUL and SOH cannot be in a stored text (the store escapes controls).
            self.key.push_str(part.unwrap_or("\u{0}"));
            self.key.push('\u{1}');
        }
    }

    /// `runs` runs of (playbook, alert, node, bucket, status).
    pub fn count(
        &mut self,
        (playbook, alertname, node): (&str, Option<&str>, Option<&str>),
        bucket: &str,
        status: &str,
        runs: u64,
    ) {
        self.key(&[Some(playbook), alertname, node, Some(bucket), Some(status)]);
        if let Some(&i) = self.count_index.get(self.key.as_str()) {
            self.counts[i].runs += runs;
            return;
        }
        self.count_index.insert(self.key.clone(), self.counts.len());
        self.counts.push(CountRow {
            playbook: playbook.to_string(),
            alertname: alertname.map(String::from),
            node: node.map(String::from),
            bucket: bucket.to_string(),
            status: status.to_string(),
            runs,
        });
    }

    /// One run's (to start, to first action, to end) in ms.
    pub fn time(
        &mut self,
        (playbook, alertname, status): (&str, Option<&str>, &str),
        [to_start, to_first_action, to_end]: [Option<i64>; 3],
    ) {
        if to_start.is_none() && to_first_action.is_none() && to_end.is_none() {
            return;
        }
        self.key(&[Some(playbook), alertname, Some(status)]);
        let i = match self.time_index.get(self.key.as_str()) {
            Some(&i) => i,
            None => {
                self.time_index
                    .insert(self.key.clone(), self.durations.len());
                self.durations.push(DurationGroup {
                    playbook: playbook.to_string(),
                    alertname: alertname.map(String::from),
                    status: status.to_string(),
                    ..DurationGroup::default()
                });
                self.durations.len() - 1
            }
        };
        let group = &mut self.durations[i];
        group.to_start.extend(to_start);
        group.to_first_action.extend(to_first_action);
        group.to_end.extend(to_end);
    }
}

/// Ended with an outcome the playbook reported (not lost, cut off or never delivered).
pub fn reported(status: RunStatus) -> bool {
    matches!(
        status,
        RunStatus::Resolved
            | RunStatus::Mitigated
            | RunStatus::Escalated
            | RunStatus::NoAction
            | RunStatus::Failed
    )
}

#[derive(Default)]
struct Acc {
    counts: GroupFigures,
    to_start: Vec<i64>,
    to_first_action: Vec<i64>,
    to_outcome: Vec<i64>,
}

impl Acc {
    fn count(&mut self, status: &str, runs: u64) {
        self.counts.runs += runs;
        *self.counts.outcomes.entry(status.to_string()).or_default() += runs;
        match RunStatus::parse(status) {
            RunStatus::Resolved | RunStatus::Mitigated => self.counts.automatic += runs,
            RunStatus::Escalated => self.counts.escalated += runs,
            _ => {}
        }
    }

    fn time(&mut self, group: &DurationGroup) {
        self.to_start.extend(&group.to_start);
        self.to_first_action.extend(&group.to_first_action);
        if reported(RunStatus::parse(&group.status)) {
            self.to_outcome.extend(&group.to_end);
        }
    }

    fn finish(mut self, name: &str) -> GroupFigures {
        self.counts.name = name.to_string();
        self.counts.to_start = Percentiles::of(&mut self.to_start);
        self.counts.to_first_action = Percentiles::of(&mut self.to_first_action);
        self.counts.to_outcome = Percentiles::of(&mut self.to_outcome);
        self.counts
    }
}

fn ranked(map: BTreeMap<String, u64>, top: usize) -> Vec<Counted> {
    let mut list: Vec<Counted> = map
        .into_iter()
        .map(|(name, count)| Counted { name, count })
        .collect();
    list.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    list.truncate(top);
    list
}

fn groups(map: BTreeMap<String, Acc>, top: usize) -> Vec<GroupFigures> {
    let mut list: Vec<GroupFigures> = map
        .into_iter()
        .map(|(name, acc)| acc.finish(&name))
        .collect();
    list.sort_by(|a, b| b.runs.cmp(&a.runs).then_with(|| a.name.cmp(&b.name)));
    list.truncate(top);
    list
}

/// The figures of `window` from the rows a backend read: the one place both backends' rows
/// become figures.
pub fn assemble(window: Window, rows: FigureRows) -> Figures {
    let mut total = Acc::default();
    let mut playbooks: BTreeMap<String, Acc> = BTreeMap::new();
    let mut alerts: BTreeMap<String, Acc> = BTreeMap::new();
    let mut nodes: BTreeMap<String, u64> = BTreeMap::new();
    let mut buckets: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for row in &rows.counts {
        total.count(&row.status, row.runs);
        playbooks
            .entry(row.playbook.clone())
            .or_default()
            .count(&row.status, row.runs);
        if let Some(alert) = &row.alertname {
            alerts
                .entry(alert.clone())
                .or_default()
                .count(&row.status, row.runs);
        }
        if let Some(node) = &row.node {
            *nodes.entry(node.clone()).or_default() += row.runs;
        }
        *buckets
            .entry(row.bucket.clone())
            .or_default()
            .entry(row.status.clone())
            .or_default() += row.runs;
    }
    let mut to_mitigate = vec![0; MITIGATE_BARS.len()];
    for group in &rows.durations {
        total.time(group);
        playbooks
            .entry(group.playbook.clone())
            .or_default()
            .time(group);
        if let Some(alert) = &group.alertname {
            alerts.entry(alert.clone()).or_default().time(group);
        }
        let mitigated = matches!(
            RunStatus::parse(&group.status),
            RunStatus::Resolved | RunStatus::Mitigated
        );
        if mitigated {
            for ms in &group.to_end {
                let bar = MITIGATE_BARS.iter().position(|(upper, _)| ms < upper);
                to_mitigate[bar.unwrap_or(MITIGATE_BARS.len() - 1)] += 1;
            }
        }
    }
    let mut answer_ms = rows.answer_ms;
    let states: BTreeMap<String, u64> = rows.approval_states.into_iter().collect();
    let received: BTreeMap<String, u64> = rows.alerts.into_iter().collect();
    Figures {
        window,
        total: total.finish(""),
        playbooks: groups(playbooks, usize::MAX),
        alert_runs: groups(alerts, TOP),
        alerts_received: received.values().sum(),
        top_alerts: ranked(received, TOP),
        nodes: ranked(nodes, TOP),
        buckets: buckets
            .into_iter()
            .map(|(start, outcomes)| BucketFigures { start, outcomes })
            .collect(),
        to_mitigate,
        approvals: ApprovalFigures {
            asked: states.values().sum(),
            states,
            to_answer: Percentiles::of(&mut answer_ms),
        },
        actions: ranked(rows.actions.into_iter().collect(), usize::MAX),
    }
}

/// A finished run written whole (tests and benches seed stores with known runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededRun {
    pub id: String,
    pub playbook: String,
    pub status: String,
    pub alert: Option<Value>,
    pub node: Option<String>,
    /// Accepted.
    pub started_at: String,
    pub running_since: Option<String>,
    pub first_action_at: Option<String>,
    pub ended_at: Option<String>,
    /// Mutating calls by kind.
    pub actions: Vec<(String, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_is_the_ceiling_rank() {
        let v = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
        assert_eq!(nearest_rank(&v, 50), Some(50));
        assert_eq!(nearest_rank(&v, 90), Some(90));
        assert_eq!(nearest_rank(&v[..3], 50), Some(20));
        assert_eq!(nearest_rank(&v[..3], 90), Some(30));
        assert_eq!(nearest_rank(&v[..1], 50), Some(10));
        assert_eq!(nearest_rank(&[], 50), None);
    }
}
