//! The seed runbook's "Web UI Down" procedure: probe the site, check the web container and its
//! last log lines, `docker compose restart` it, wait and re-probe, then tell ops what was found
//! (failure kind, latency before and after) and done. Without a container it only escalates.

use std::thread::sleep;
use std::time::{Duration, Instant};

use runbook_sdk::docker::LogOptions;
use runbook_sdk::http::{ProbeFailure, ProbeResult};
use runbook_sdk::prelude::*;
use runbook_sdk::report::StepStatus;

/// Seconds Docker gives the web server to stop before killing it (`docker restart -t 10`).
const STOP_TIMEOUT_SECS: u32 = 10;
const POLL: Duration = Duration::from_secs(1);
const SHOWN_ERROR_LINES: usize = 10;
/// Matched case-insensitively, like `grep -iE`.
const ERROR_PATTERN: &str = "error|fatal|panic|exception|traceback|killed";

fn describe() -> Description {
    Description::new(
        "web-down",
        "Web UI Down: probe the URL, check the web container and its logs, restart it, re-probe, a summary to ops",
    )
    .required_param("url", "URL of the web UI")
    .param("container", "The web container; without it nothing is restarted", None)
    .param("expected-status", "HTTP status (2xx/3xx) the URL answers when up", Some("200"))
    .param("wait-secs", "How long to re-probe after the restart", Some("30"))
    .param("log-lines", "How many of the last log lines to scan for errors", Some("100"))
    .param("timeout-ms", "Timeout of each probe", Some("3000"))
    .param("channel", "Notification channel for the summary", Some("ops"))
    .param("approve-with", "Approver group asked before the restart; empty = restart without asking", Some(""))
    .param("approve-timeout-secs", "How long to wait for an approver", Some("600"))
    .wants(Capability::Docker)
    .wants(Capability::Http)
    .wants(Capability::Notify)
    .wants(Capability::Approval)
}

struct Settings {
    url: String,
    container: Option<String>,
    expected: u16,
    wait_secs: u64,
    log_lines: u32,
    timeout_ms: u32,
    channel: String,
    approve_with: Option<String>,
    approve_timeout_secs: u32,
}

impl Settings {
    fn from(incident: &Incident) -> Result<Self, Error> {
        let text = |name: &str| {
            let value = incident.param(name).map(str::trim);
            value.filter(|v| !v.is_empty()).map(String::from)
        };
        let settings = Settings {
            url: text("url").ok_or_else(|| Error::Invalid("parameter url is empty".into()))?,
            container: text("container"),
            expected: incident.param_as("expected-status")?.unwrap_or(200),
            wait_secs: incident.param_as("wait-secs")?.unwrap_or(30),
            log_lines: incident.param_as("log-lines")?.unwrap_or(100),
            timeout_ms: incident.param_as("timeout-ms")?.unwrap_or(3000),
            channel: text("channel").unwrap_or_else(|| "ops".into()),
            approve_with: text("approve-with"),
            approve_timeout_secs: incident
                .param_as("approve-timeout-secs")?
                .unwrap_or(approval::DEFAULT_TIMEOUT_SECS),
        };
        // probe() calls anything but 2xx/3xx unhealthy, so another status could never be "up".
        if !(200..400).contains(&settings.expected) {
            let bad = format!("expected-status {} is not 2xx or 3xx", settings.expected);
            return Err(Error::Invalid(bad));
        }
        Ok(settings)
    }

    fn probe(&self) -> Result<ProbeResult, Error> {
        http::probe(&self.url, Some(self.timeout_ms))
    }

    fn is_up(&self, probe: &ProbeResult) -> bool {
        probe.healthy && probe.status == Some(self.expected)
    }

    /// Why a probe is not up: refused, timeout, dns, tls, other, or "http-status 502, expected 200".
    fn failure(&self, probe: &ProbeResult) -> String {
        let kind = match probe.failure {
            Some(ProbeFailure::Refused) => "refused",
            Some(ProbeFailure::Timeout) => "timeout",
            Some(ProbeFailure::Dns) => "dns",
            Some(ProbeFailure::Tls) => "tls",
            Some(ProbeFailure::Other) => "other",
            // No failure but not up: a 2xx/3xx other than the expected one.
            Some(ProbeFailure::HttpStatus) | None => "http-status",
        };
        match probe.status {
            Some(got) if kind == "http-status" => {
                format!("{kind} {got}, expected {}", self.expected)
            }
            _ => kind.to_string(),
        }
    }

    /// "up (HTTP 200, 12 ms)" or "down: refused (2 ms) connection refused".
    fn probe_text(&self, probe: &ProbeResult) -> String {
        let (failure, ms) = (self.failure(probe), probe.latency_ms);
        if self.is_up(probe) {
            return format!("up (HTTP {}, {ms} ms)", self.expected);
        }
        let text = format!("down: {failure} ({ms} ms) {}", probe.detail);
        text.trim_end().to_string()
    }
}

fn why(e: &Error) -> String {
    format!("{}: {}", e.kind(), e.detail())
}

/// What the run learnt besides the first probe, for the notification.
#[derive(Default)]
struct Findings {
    /// The last re-probe after the restart.
    after: Option<ProbeResult>,
    state: Option<String>,
    /// The container's inspect summary and its error log lines.
    lines: Vec<String>,
}

/// `docker ps` and `docker logs --tail N | grep -iE …`; only a missing container is an error.
fn examine(name: &str, log_lines: u32, found: &mut Findings) -> Result<(), Error> {
    report::step("container", StepStatus::Started, name);
    match docker::inspect(name) {
        Ok(details) => {
            let c = details.container;
            let code = c.exit_code.map_or("-".into(), |c| c.to_string());
            let health = c.health.as_deref().unwrap_or("none");
            let oom = if details.oom_killed {
                ", OOM-killed"
            } else {
                ""
            };
            let restarts = c.restart_count;
            let summary = format!(
                "state {}, exit code {code}, restart count {restarts}, health {health}{oom}",
                c.state
            );
            report::step("container", StepStatus::Ok, &summary);
            found.lines.push(format!("Container {name}: {summary}"));
            found.state = Some(c.state);
        }
        Err(Error::NotFound(_)) => {
            report::step("container", StepStatus::Failed, "not found");
            return Err(Error::NotFound(format!("container {name} not found")));
        }
        // The restart is the remedy; a failed look does not stop it.
        Err(e) => {
            report::step("container", StepStatus::Warning, &why(&e));
            found
                .lines
                .push(format!("Container {name}: inspect failed ({})", why(&e)));
        }
    }

    report::step(
        "logs",
        StepStatus::Started,
        &format!("last {log_lines} lines"),
    );
    let options = LogOptions {
        tail: Some(log_lines),
        since_secs: None,
        timestamps: false,
    };
    let lines = match docker::logs(name, options) {
        Ok(lines) => lines,
        Err(e) => {
            report::step("logs", StepStatus::Skipped, &why(&e));
            found
                .lines
                .push(format!("Logs could not be read ({})", why(&e)));
            return Ok(());
        }
    };
    let excerpt: String = lines.iter().map(|l| format!("{}\n", l.text)).collect();
    if let Err(e) = report::attach("web-logs.txt", "text/plain", excerpt.as_bytes()) {
        warn!("attach web-logs.txt: {}", why(&e));
    }
    let errors: Vec<&str> = (lines.iter().map(|l| l.text.as_str()))
        .filter(|text| {
            let lower = text.to_lowercase();
            ERROR_PATTERN.split('|').any(|word| lower.contains(word))
        })
        .collect();
    let (count, scanned) = (errors.len(), lines.len());
    let status = if errors.is_empty() {
        StepStatus::Ok
    } else {
        StepStatus::Warning
    };
    report::step("logs", status, &format!("{count} error lines in {scanned}"));
    found.lines.push(format!(
        "Error lines in the last {scanned} log lines: {count}"
    ));
    found.lines.extend(
        errors
            .iter()
            .take(SHOWN_ERROR_LINES)
            .map(|l| format!("  {l}")),
    );
    if count > SHOWN_ERROR_LINES {
        found
            .lines
            .push(format!("  … and {} more", count - SHOWN_ERROR_LINES));
    }
    Ok(())
}

/// Re-probes every second until the URL is up or `wait-secs` pass; the last probe either way.
fn wait_up(settings: &Settings) -> Result<(bool, ProbeResult, f64), Error> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(settings.wait_secs);
    loop {
        sleep(POLL);
        let probe = settings.probe()?;
        let up = settings.is_up(&probe);
        if up || Instant::now() >= deadline {
            return Ok((up, probe, started.elapsed().as_secs_f64()));
        }
    }
}

/// Restarts the container (when there is one) and re-probes; `down` reads "down (refused, 2 ms)".
fn remediate(
    incident: &Incident,
    settings: &Settings,
    down: &str,
    found: &mut Findings,
    actions: &mut Vec<String>,
) -> (Status, String) {
    let url = &settings.url;
    let Some(name) = settings.container.as_deref() else {
        let summary = format!("{url} is {down}; no container given, so nothing was restarted");
        return (Status::Escalated, summary);
    };
    if let Err(e) = examine(name, settings.log_lines, found) {
        let summary = format!("{url} is {down}; {}, so nothing was restarted", e.detail());
        return (Status::Escalated, summary);
    }
    let question = approval::Question::new(format!("Restart {name}? {url} is down"))
        .body(format!("{url} is {down}.\n{}", found.lines.join("\n")))
        .action(format!("restart {name}"))
        .timeout_secs(settings.approve_timeout_secs);
    match approval::gate(incident, settings.approve_with.as_deref(), &question) {
        approval::Gate::Act(asked) => actions.extend(asked),
        approval::Gate::Hold { why } => {
            report::step("restart", StepStatus::Skipped, &why);
            let summary = format!("{url} is {down}; did not restart {name}: {why}");
            return (Status::Escalated, summary);
        }
    }

    // docker compose restart <web>
    report::step("restart", StepStatus::Started, name);
    if let Err(e) = docker::restart(name, Some(STOP_TIMEOUT_SECS)) {
        report::step("restart", StepStatus::Failed, &why(&e));
        actions.push(format!("restart of {name} failed ({})", why(&e)));
        let summary = format!("{url} is {down}; restarting {name} failed ({})", why(&e));
        return (Status::Escalated, summary);
    }
    if incident.dry_run {
        report::step("restart", StepStatus::Skipped, "dry run: not re-probing");
        actions.push(format!("would restart {name}"));
        return (
            Status::Escalated,
            format!("dry run: {url} is {down}; would restart {name}"),
        );
    }
    actions.push(format!("restarted {name}"));
    report::step("restart", StepStatus::Ok, name);

    // wait and check again
    report::step("re-probe", StepStatus::Started, url);
    let (up, after, secs) = match wait_up(settings) {
        Ok(result) => result,
        Err(e) => {
            report::step("re-probe", StepStatus::Failed, &why(&e));
            let summary = format!(
                "{url} was {down}, restarted {name}, re-probe failed ({})",
                why(&e)
            );
            return (Status::Escalated, summary);
        }
    };
    let (failure, ms) = (settings.failure(&after), after.latency_ms);
    found.after = Some(after);
    if up {
        report::step("re-probe", StepStatus::Ok, &format!("up after {secs:.1} s"));
        let summary =
            format!("{url} was {down}, restarted {name}, up again in {secs:.1} s, latency {ms} ms");
        (Status::Resolved, summary)
    } else {
        let still = format!("{failure}, {ms} ms");
        report::step("re-probe", StepStatus::Failed, &still);
        let wait = settings.wait_secs;
        let summary =
            format!("{url} was {down}, restarted {name}, still down after {wait} s ({still})");
        (Status::Escalated, summary)
    }
}

fn run(incident: Incident) -> Result<Outcome, Error> {
    let settings = Settings::from(&incident)?;
    let url = &settings.url;

    // 1. Is the site up? (the runbook's symptoms: 502 Bad Gateway, connection timeout)
    report::step("probe", StepStatus::Started, url);
    let before = settings.probe()?;
    let up = settings.is_up(&before);
    let status = if up {
        StepStatus::Ok
    } else {
        StepStatus::Failed
    };
    report::step("probe", status, &settings.probe_text(&before));

    // 2. docker ps; docker logs --tail 100; docker compose restart; wait; re-probe
    let (mut found, mut actions) = (Findings::default(), Vec::new());
    let (status, summary) = if up {
        let ms = before.latency_ms;
        (
            Status::NoAction,
            format!("{url} is up: HTTP {} in {ms} ms", settings.expected),
        )
    } else {
        let down = format!(
            "down ({}, {} ms)",
            settings.failure(&before),
            before.latency_ms
        );
        remediate(&incident, &settings, &down, &mut found, &mut actions)
    };
    let mut outcome = Outcome::new(status, summary).actions(actions);

    // 3. tell the team; a failed notification is recorded, not fatal
    let message = message(&incident, &settings, &before, &found, &outcome);
    let channel = &settings.channel;
    outcome
        .actions
        .push(incident.notify_action(channel, &message));
    Ok(outcome)
}

fn message(
    incident: &Incident,
    settings: &Settings,
    before: &ProbeResult,
    found: &Findings,
    outcome: &Outcome,
) -> Message {
    let url = &settings.url;
    let mut body = vec![format!(
        "Probe of {url} (expected HTTP {}):",
        settings.expected
    )];
    body.push(format!("  before  {}", settings.probe_text(before)));
    if let Some(after) = &found.after {
        body.push(format!("  after   {}", settings.probe_text(after)));
    }
    body.extend(found.lines.iter().cloned());
    // The runbook's other options: a restart does not fix a certificate or a DNS record.
    match before.failure {
        Some(ProbeFailure::Tls) => {
            body.push("Next: check the certificate's dates; renew it in Coolify if expired.".into())
        }
        Some(ProbeFailure::Dns) => {
            body.push("Next: check that DNS (dig +short) points at the server.".into())
        }
        _ => {}
    }
    if !outcome.actions.is_empty() {
        body.push("Done:".into());
        body.extend(outcome.actions.iter().map(|a| format!("  - {a}")));
    }
    body.push(outcome.summary.clone());

    let title = match outcome.status {
        Status::NoAction => format!("{url} is up"),
        Status::Resolved => format!("{url} was down; up again after a restart"),
        _ => format!("{url} is down: {}", settings.failure(before)),
    };
    let severity = match outcome.status {
        Status::Escalated => Severity::Critical,
        _ => Severity::Info,
    };
    let mut message = Message::new(title)
        .body(body.join("\n"))
        .severity(severity)
        .field("url", url)
        .field("run", &incident.run_id)
        .field("latency before", format!("{} ms", before.latency_ms));
    if let Some(after) = &found.after {
        message = message.field("latency after", format!("{} ms", after.latency_ms));
    }
    if !settings.is_up(before) {
        message = message.field("failure", settings.failure(before));
    }
    if let Some(name) = &settings.container {
        message = message.field("container", name);
    }
    if let Some(state) = &found.state {
        message = message.field("state", state);
    }
    message
}

runbook_sdk::export_playbook!(describe, run);
