//! `host test`: a playbook run against a fixture, and the verdict. Exit codes: 0 pass,
//! 1 mismatch or expectation failed, 2 bad fixture.

use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use super::{Fixture, Mismatch, Replayer, Tape};
use crate::bindings::Alert;
use crate::records::Trigger;
use crate::run::{Host, Prepared, RunRecord, RunRequest};
use crate::timeline::EventKind;

pub const EXIT_PASS: u8 = 0;
pub const EXIT_FAIL: u8 = 1;
pub const EXIT_BAD_FIXTURE: u8 = 2;

#[derive(Debug, Serialize)]
pub struct TestReport {
    pub playbook: String,
    /// pass, fail or bad-fixture.
    pub result: &'static str,
    /// The run as replayed (absent for a bad fixture).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    pub actions: Vec<String>,
    pub calls_replayed: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<Mismatch>,
    /// Recorded calls the playbook did not make.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unused_calls: Vec<Value>,
    /// What failed, one line each (expectations, the mismatch, a bad fixture).
    pub problems: Vec<String>,
    pub duration_ms: f64,
}

impl TestReport {
    pub fn exit_code(&self) -> u8 {
        match self.result {
            "pass" => EXIT_PASS,
            "bad-fixture" => EXIT_BAD_FIXTURE,
            _ => EXIT_FAIL,
        }
    }

    /// A fixture file that cannot be read or parsed.
    pub fn bad_file(playbook: &str, problem: String) -> Self {
        Self::bad(playbook, problem)
    }

    fn bad(playbook: &str, problem: String) -> Self {
        Self {
            playbook: playbook.to_string(),
            result: "bad-fixture",
            status: None,
            summary: None,
            actions: Vec::new(),
            calls_replayed: 0,
            mismatch: None,
            unused_calls: Vec::new(),
            problems: vec![problem],
            duration_ms: 0.0,
        }
    }

    /// For a terminal: the verdict, then the diff or the failed expectations.
    pub fn render(&self, fixture: &str) -> String {
        let verdict = match self.result {
            "pass" => "PASS",
            "bad-fixture" => "BAD FIXTURE",
            _ => "FAIL",
        };
        let mut out = format!(
            "{verdict} {} against {fixture} ({} calls replayed, {:.0} ms)\n",
            self.playbook, self.calls_replayed, self.duration_ms
        );
        if let (Some(status), None) = (&self.status, &self.mismatch) {
            out += &format!(
                "  outcome: {status}: {}\n",
                crate::text::escape(self.summary.as_deref().unwrap_or_default())
            );
        }
        if let Some(mismatch) = &self.mismatch {
            for line in mismatch.diff().lines() {
                out += &format!("  {}\n", crate::text::escape(line));
            }
        }
        for problem in &self.problems {
            if self.mismatch.is_none() || !problem.starts_with("call #") {
                out += &format!("  {}\n", crate::text::escape(problem));
            }
        }
        out
    }
}

/// Runs `prepared` against the fixture with this host's grants; nothing is stored and
/// nothing reaches the world (every capability call is answered from the fixture).
pub async fn run_fixture(host: &Host, prepared: &Prepared, fixture: Fixture) -> TestReport {
    let name = prepared.source.name.clone();
    if let Err(e) = fixture.validate() {
        return TestReport::bad(&name, format!("{e:#}"));
    }
    let request = match request(&fixture) {
        Ok(request) => request,
        Err(e) => return TestReport::bad(&name, format!("incident: {e:#}")),
    };
    let started = Instant::now();
    let mut replayer = Replayer::new(fixture.calls.clone());
    replayer.wall_clock_ms = fixture.incident.wall_clock_ms;
    let tape = Tape::Replaying(replayer);
    let (record, tape) = match host.run_taped(prepared, request, None, Some(tape)).await {
        Ok(done) => done,
        // Parameters the playbook does not take, or miss.
        Err(e) => return TestReport::bad(&name, format!("incident: {e:#}")),
    };
    let Some(Tape::Replaying(replayer)) = tape else {
        return TestReport::bad(&name, "the replay was lost".into());
    };
    if let Some(problem) = replayer.bad.clone() {
        return TestReport::bad(&name, problem);
    }
    let mut problems = Vec::new();
    if let Some(mismatch) = &replayer.mismatch {
        problems.push(
            mismatch
                .diff()
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
        );
    }
    let unused = if replayer.mismatch.is_none() {
        replayer.unused()
    } else {
        Vec::new()
    };
    if !unused.is_empty() {
        problems.push(format!(
            "the run ended before {} recorded call(s), the first: {}.{} {}",
            unused.len(),
            unused[0]["interface"].as_str().unwrap_or("?"),
            unused[0]["function"].as_str().unwrap_or("?"),
            unused[0]["args"]
        ));
    }
    if replayer.mismatch.is_none() {
        problems.extend(expectations(&fixture, &record));
    }
    let calls_replayed = record
        .timeline
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Call { .. }))
        .count();
    TestReport {
        playbook: name,
        result: if problems.is_empty() { "pass" } else { "fail" },
        status: Some(record.status.to_string()),
        // A mismatch ends the run with a trap whose text the diff already shows.
        summary: replayer.mismatch.is_none().then(|| record.summary.clone()),
        actions: record.actions.clone(),
        calls_replayed,
        mismatch: replayer.mismatch,
        unused_calls: unused,
        problems,
        duration_ms: crate::timeline::round_ms(started.elapsed()),
    }
}

fn request(fixture: &Fixture) -> anyhow::Result<RunRequest> {
    let incident = &fixture.incident;
    let alert: Option<Alert> = incident.alert.clone();
    let trigger = match incident.trigger.as_deref() {
        None if alert.is_some() => Trigger::Alert,
        None => Trigger::Cli,
        Some(text) => Trigger::parse(text).ok_or_else(|| {
            anyhow::anyhow!("trigger {text:?}: expected cli, webhook, alert, schedule or console")
        })?,
    };
    Ok(RunRequest {
        params: incident.params.clone().into_iter().collect(),
        alert,
        trigger,
        by: None,
        dry_run: incident.dry_run,
        dedup_key: None,
        severity: None,
    })
}

/// Each expectation the run does not meet, as one line.
fn expectations(fixture: &Fixture, record: &RunRecord) -> Vec<String> {
    let expect = &fixture.expect;
    let mut problems = Vec::new();
    if let Some(status) = &expect.status
        && status != record.status
    {
        problems.push(format!(
            "status: expected {status}, got {}{}",
            record.status,
            record
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    }
    if let Some(pattern) = &expect.summary
        && !regex::Regex::new(pattern).is_ok_and(|re| re.is_match(&record.summary))
    {
        problems.push(format!(
            "summary: {:?} does not match {pattern:?}",
            record.summary
        ));
    }
    if let Some(actions) = &expect.actions
        && actions != &record.actions
    {
        problems.push(format!(
            "actions: expected {actions:?}, got {:?}",
            record.actions
        ));
    }
    if let Some(expected) = &expect.notifications {
        let sent: Vec<(String, String, String)> = record
            .timeline
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Notification {
                    channel,
                    severity,
                    title,
                    ..
                } => Some((channel.clone(), severity.clone(), title.clone())),
                _ => None,
            })
            .collect();
        let matches = expected.len() == sent.len()
            && expected
                .iter()
                .zip(&sent)
                .all(|(want, (channel, severity, title))| {
                    &want.channel == channel
                        && want.severity.as_ref().is_none_or(|s| s == severity)
                        && want
                            .title
                            .as_ref()
                            .is_none_or(|t| regex::Regex::new(t).is_ok_and(|re| re.is_match(title)))
                });
        if !matches {
            let shown: Vec<String> = sent
                .iter()
                .map(|(c, s, t)| format!("{c} ({s}): {t}"))
                .collect();
            problems.push(format!(
                "notifications: expected {}, got [{}]",
                serde_json::to_string(expected).unwrap_or_default(),
                shown.join("; ")
            ));
        }
    }
    problems
}
