//! The seeds' "Daily Health Checks": the containers that should run are running and healthy,
//! the health URLs answer 2xx in time (< 500 ms), the disks are under their thresholds, the
//! containers' memory and CPU (`docker stats`) are under theirs, and a test message goes through
//! the alert channel. One summary: all green is info, anything else a warning or critical
//! listing what failed. It only looks; nothing is restarted.

use runbook_sdk::docker::{Container, ListFilter};
use runbook_sdk::http::ProbeFailure;
use runbook_sdk::human_bytes;
use runbook_sdk::prelude::*;
use runbook_sdk::report::StepStatus;

const MIB: u64 = 1 << 20;
/// `docker stats` waits for a second sample per container: a bound on the run's length.
const MAX_CONTAINERS: usize = 20;

fn describe() -> Description {
    Description::new(
        "health-check",
        "Daily Health Checks: containers running and healthy, health URLs 2xx in time, disk usage, container memory and CPU, a test message, one summary",
    )
    .param("containers", "Comma-separated container names expected running", None)
    .param("label", "Label selector (key or key=value): every container with it is expected running", None)
    .param("urls", "Comma-separated health URLs expected to answer 2xx", None)
    .param("latency-ms", "A health URL slower than this is a warning", Some("500"))
    .param("timeout-ms", "Timeout of each health URL probe", Some("3000"))
    .param("mounts", "Comma-separated mount points whose usage is checked (empty: none)", Some("/"))
    .param("disk-warn-percent", "Usage (%) from which a mount is a warning", Some("80"))
    .param("disk-critical-percent", "Usage (%) from which a mount is critical", Some("90"))
    .param("memory-mb", "Memory (MiB) above which a container is a warning (empty: no limit)", None)
    .param("memory-limit-percent", "Memory use (% of the container's own limit, when it has one) above which it is a warning", Some("90"))
    .param("cpu-percent", "CPU (% of one core) above which a container is a warning", Some("70"))
    .param("test-channel", "Channel the test message goes through (empty: no test message)", Some("ops"))
    .param("channel", "Notification channel for the summary", Some("ops"))
    .wants(Capability::Docker)
    .wants(Capability::Http)
    .wants(Capability::FsRead)
    .wants(Capability::Notify)
}

struct Settings {
    containers: Vec<String>,
    label: Option<String>,
    urls: Vec<String>,
    latency_ms: u32,
    timeout_ms: u32,
    mounts: Vec<String>,
    disk_warn: f64,
    disk_critical: f64,
    memory_mb: Option<u64>,
    memory_limit_percent: f64,
    cpu_percent: f64,
    test_channel: Option<String>,
    channel: String,
}

impl Settings {
    fn from(incident: &Incident) -> Result<Self, Error> {
        let text = |name: &str| {
            let value = incident.param(name).map(str::trim);
            value.filter(|v| !v.is_empty()).map(String::from)
        };
        let settings = Settings {
            containers: incident.param_list("containers"),
            label: text("label"),
            urls: incident.param_list("urls"),
            latency_ms: incident.param_as("latency-ms")?.unwrap_or(500),
            timeout_ms: incident.param_as("timeout-ms")?.unwrap_or(3000),
            mounts: incident.param_list("mounts"),
            disk_warn: incident.param_as("disk-warn-percent")?.unwrap_or(80.0),
            disk_critical: incident.param_as("disk-critical-percent")?.unwrap_or(90.0),
            memory_mb: incident.param_as("memory-mb")?,
            memory_limit_percent: incident.param_as("memory-limit-percent")?.unwrap_or(90.0),
            cpu_percent: incident.param_as("cpu-percent")?.unwrap_or(70.0),
            test_channel: text("test-channel"),
            channel: text("channel").unwrap_or_else(|| "ops".into()),
        };
        let percent = 0.0..=100.0;
        if !percent.contains(&settings.disk_warn) || !percent.contains(&settings.disk_critical) {
            return Err(Error::Invalid(
                "disk thresholds must be percentages (0-100)".into(),
            ));
        }
        if settings.disk_warn > settings.disk_critical {
            return Err(Error::Invalid(format!(
                "disk-warn-percent ({}) is above disk-critical-percent ({})",
                settings.disk_warn, settings.disk_critical
            )));
        }
        if settings.containers.is_empty()
            && settings.label.is_none()
            && settings.urls.is_empty()
            && settings.mounts.is_empty()
        {
            return Err(Error::Invalid(
                "nothing to check: give containers, label, urls or mounts".into(),
            ));
        }
        Ok(settings)
    }
}

#[derive(Clone, Copy, PartialEq, PartialOrd, Debug)]
enum Level {
    Ok,
    Warning,
    Critical,
}

impl Level {
    fn word(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "WARNING",
            Level::Critical => "CRITICAL",
        }
    }

    fn step(self) -> StepStatus {
        match self {
            Level::Ok => StepStatus::Ok,
            Level::Warning => StepStatus::Warning,
            Level::Critical => StepStatus::Failed,
        }
    }
}

/// Every check's result: one line of the report each, the failures also in the summary.
#[derive(Default)]
struct Checks {
    lines: Vec<(Level, String)>,
}

impl Checks {
    fn add(&mut self, level: Level, line: impl Into<String>) {
        self.lines.push((level, line.into()));
    }

    fn worst(&self, from: usize) -> Level {
        (self.lines[from..].iter().map(|(l, _)| *l))
            .fold(Level::Ok, |a, b| if b > a { b } else { a })
    }

    fn failures(&self) -> Vec<&str> {
        (self.lines.iter())
            .filter(|(l, _)| *l > Level::Ok)
            .map(|(_, s)| s.as_str())
            .collect()
    }
}

fn why(e: &Error) -> String {
    format!("{}: {}", e.kind(), e.detail())
}

/// Runs one section as a step: its status is the worst of the lines it added.
fn section(checks: &mut Checks, name: &str, detail: &str, body: impl FnOnce(&mut Checks)) {
    report::step(name, StepStatus::Started, detail);
    let from = checks.lines.len();
    body(checks);
    let worst = checks.worst(from);
    let added = checks.lines.len() - from;
    let bad = checks.lines[from..]
        .iter()
        .filter(|(l, _)| *l > Level::Ok)
        .count();
    report::step(name, worst.step(), &format!("{bad} of {added} not ok"));
}

/// The containers expected running: the named ones (a missing name is critical) and every
/// container with the label, running or not.
fn expected_containers(settings: &Settings, checks: &mut Checks) -> Vec<Container> {
    let mut found: Vec<Container> = Vec::new();
    for name in &settings.containers {
        match docker::inspect(name) {
            Ok(details) => found.push(details.container),
            Err(Error::NotFound(_)) => {
                checks.add(Level::Critical, format!("container {name}: not found"))
            }
            Err(e) => checks.add(
                Level::Warning,
                format!("container {name}: not checked ({})", why(&e)),
            ),
        }
    }
    if let Some(label) = &settings.label {
        let filter = ListFilter {
            all: true,
            name: None,
            labels: vec![label.clone()],
        };
        match docker::list_containers(&filter) {
            Ok(listed) if listed.is_empty() => checks.add(
                Level::Critical,
                format!("label {label}: no container has it"),
            ),
            Ok(listed) => {
                for c in listed {
                    if !found.iter().any(|f| f.id == c.id) {
                        found.push(c);
                    }
                }
            }
            Err(e) => checks.add(
                Level::Warning,
                format!("label {label}: not checked ({})", why(&e)),
            ),
        }
    }
    found
}

fn check_container(c: &Container, checks: &mut Checks) {
    let health = c.health.as_deref();
    let (level, what) = match (c.state.as_str(), health) {
        ("running", Some("unhealthy")) => (Level::Critical, "running but unhealthy".to_string()),
        ("running", Some("starting")) => {
            (Level::Warning, "running, health check starting".to_string())
        }
        ("running", Some(h)) => (Level::Ok, format!("running, {h}")),
        ("running", None) => (Level::Ok, "running (no health check)".to_string()),
        (state, _) => {
            let code = c
                .exit_code
                .map_or(String::new(), |c| format!(", exit code {c}"));
            (Level::Critical, format!("{state}{code}, expected running"))
        }
    };
    let restarts = match c.restart_count {
        0 => String::new(),
        n => format!(", {n} restarts"),
    };
    checks.add(level, format!("container {}: {what}{restarts}", c.name));
}

/// `docker stats`: memory against an absolute ceiling and the container's own limit, CPU.
fn check_stats(c: &Container, settings: &Settings, checks: &mut Checks) {
    let stats = match docker::stats(&c.name) {
        Ok(stats) => stats,
        Err(e) => {
            checks.add(
                Level::Warning,
                format!("stats of {}: not read ({})", c.name, why(&e)),
            );
            return;
        }
    };
    let used = stats.memory_used;
    // Docker reports the host's memory as the limit of an unlimited container.
    let limited = stats.memory_limit > 0 && stats.memory_limit < u64::MAX / 2;
    let of_limit = (used as f64) * 100.0 / (stats.memory_limit.max(1) as f64);
    let mut problems = Vec::new();
    if let Some(mb) = settings.memory_mb.filter(|mb| used > mb * MIB) {
        problems.push(format!("memory above {mb} MiB"));
    }
    if limited && of_limit > settings.memory_limit_percent {
        problems.push(format!(
            "memory above {}% of its limit",
            settings.memory_limit_percent
        ));
    }
    if stats.cpu_percent > settings.cpu_percent {
        problems.push(format!("CPU above {}%", settings.cpu_percent));
    }
    let level = if problems.is_empty() {
        Level::Ok
    } else {
        Level::Warning
    };
    let mut line = format!(
        "stats of {}: memory {} ({of_limit:.1}% of {}), CPU {:.1}%, {} pids",
        c.name,
        human_bytes(used),
        human_bytes(stats.memory_limit),
        stats.cpu_percent,
        stats.pids
    );
    if !problems.is_empty() {
        line.push_str(&format!(": {}", problems.join(", ")));
    }
    checks.add(level, line);
}

fn check_url(url: &str, settings: &Settings, checks: &mut Checks) {
    let probe = match http::probe(url, Some(settings.timeout_ms)) {
        Ok(probe) => probe,
        Err(e) => {
            checks.add(
                Level::Critical,
                format!("url {url}: not probed ({})", why(&e)),
            );
            return;
        }
    };
    let ms = probe.latency_ms;
    let line = match probe.status {
        // The seeds ask for 2xx: a redirect is not the health endpoint answering.
        Some(status) if (200..300).contains(&status) && ms >= settings.latency_ms => (
            Level::Warning,
            format!(
                "url {url}: HTTP {status} in {ms} ms, slower than {} ms",
                settings.latency_ms
            ),
        ),
        Some(status) if (200..300).contains(&status) => {
            (Level::Ok, format!("url {url}: HTTP {status} in {ms} ms"))
        }
        Some(status) => (
            Level::Critical,
            format!("url {url}: HTTP {status} in {ms} ms, expected 2xx"),
        ),
        None => {
            let kind = match probe.failure {
                Some(ProbeFailure::Refused) => "connection refused",
                Some(ProbeFailure::Timeout) => "timed out",
                Some(ProbeFailure::Dns) => "name not resolved",
                Some(ProbeFailure::Tls) => "TLS failed",
                _ => "no answer",
            };
            (Level::Critical, format!("url {url}: {kind} after {ms} ms"))
        }
    };
    checks.add(line.0, line.1);
}

fn check_mount(mount: &str, settings: &Settings, checks: &mut Checks) {
    match fs::usage(mount) {
        Ok(usage) => {
            let percent = usage.used_percent;
            let level = if percent >= settings.disk_critical {
                Level::Critical
            } else if percent >= settings.disk_warn {
                Level::Warning
            } else {
                Level::Ok
            };
            let line = format!(
                "disk {mount}: {percent:.1}% used, {} available (warn {}%, critical {}%)",
                human_bytes(usage.available_bytes),
                settings.disk_warn,
                settings.disk_critical
            );
            checks.add(level, line);
        }
        Err(e) => checks.add(
            Level::Warning,
            format!("disk {mount}: not checked ({})", why(&e)),
        ),
    }
}

/// The seeds' "send test notification, verify message delivery": the host answers `send` once
/// the channel accepted (or queued) the message, so a refusal here means alerts are not arriving.
fn test_message(incident: &Incident, channel: &str, checks: &mut Checks) -> String {
    let message = Message::new("Health check: test message")
        .body("A test message from the daily health check; no action needed.")
        .severity(Severity::Info)
        .field("run", &incident.run_id);
    match notify::send(channel, &message) {
        Ok(()) if incident.dry_run => {
            checks.add(
                Level::Ok,
                format!("test message to {channel}: would send (dry run)"),
            );
            format!("would send a test message to {channel}")
        }
        Ok(()) => {
            checks.add(Level::Ok, format!("test message to {channel}: sent"));
            format!("sent a test message to {channel}")
        }
        Err(e) => {
            checks.add(
                Level::Critical,
                format!("test message to {channel}: failed ({})", why(&e)),
            );
            format!("test message to {channel} failed ({})", why(&e))
        }
    }
}

fn run(incident: Incident) -> Result<Outcome, Error> {
    let settings = Settings::from(&incident)?;
    let mut checks = Checks::default();
    let mut actions = Vec::new();

    if !settings.containers.is_empty() || settings.label.is_some() {
        let mut expected = Vec::new();
        let names = settings.containers.join(", ");
        let label = settings.label.as_deref().unwrap_or("");
        section(
            &mut checks,
            "containers",
            &format!("{names} {label}"),
            |checks| {
                expected = expected_containers(&settings, checks);
                for c in &expected {
                    check_container(c, checks);
                }
            },
        );
        let running: Vec<&Container> = (expected.iter())
            .filter(|c| c.state == "running")
            .take(MAX_CONTAINERS)
            .collect();
        if !running.is_empty() {
            let detail = format!("{} running containers", running.len());
            section(&mut checks, "memory and cpu", &detail, |checks| {
                for c in running {
                    check_stats(c, &settings, checks);
                }
            });
        }
    }
    if !settings.urls.is_empty() {
        section(
            &mut checks,
            "health urls",
            &settings.urls.join(", "),
            |checks| {
                for url in &settings.urls {
                    check_url(url, &settings, checks);
                }
            },
        );
    }
    if !settings.mounts.is_empty() {
        section(
            &mut checks,
            "disk usage",
            &settings.mounts.join(", "),
            |checks| {
                for mount in &settings.mounts {
                    check_mount(mount, &settings, checks);
                }
            },
        );
    }
    if let Some(channel) = &settings.test_channel {
        section(&mut checks, "test message", channel, |checks| {
            actions.push(test_message(&incident, channel, checks));
        });
    }

    let worst = checks.worst(0);
    let failures = checks.failures();
    let total = checks.lines.len();
    let title = match worst {
        Level::Ok => format!("Health check: all {total} checks green"),
        _ => format!(
            "Health check: {} of {total} checks not green",
            failures.len()
        ),
    };
    // The summary names what failed, so the run list alone tells the story.
    let summary = match worst {
        Level::Ok => title.clone(),
        _ => format!("{title}: {}", failures.join("; ")),
    };
    let mut report: String = (checks.lines.iter())
        .map(|(level, line)| format!("{:<8} {line}\n", level.word()))
        .collect();
    report.insert_str(0, &format!("{title}\n\n"));
    if let Err(e) = report::attach("health-report.txt", "text/plain", report.as_bytes()) {
        warn!("attach health-report.txt: {}", why(&e));
    }

    let severity = match worst {
        Level::Ok => Severity::Info,
        Level::Warning => Severity::Warning,
        Level::Critical => Severity::Critical,
    };
    let message = Message::new(&title)
        .body(report.trim_end())
        .severity(severity)
        .field("run", &incident.run_id)
        .field("checks", total.to_string())
        .field("not green", failures.len().to_string());
    actions.push(incident.notify_action(&settings.channel, &message));
    let outcome = match worst {
        Level::Ok => Outcome::no_action(summary),
        _ => Outcome::escalated(summary),
    };
    Ok(outcome.actions(actions))
}

runbook_sdk::export_playbook!(describe, run);
