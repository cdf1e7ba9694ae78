//! The seed runbook's "Bot Not Responding" procedure: check the bot's container, read its last
//! log lines for errors, check its health URL, `docker compose restart`, wait and verify it came
//! back, then tell ops what was found and done. Restarts are bounded per run; loops escalate.

use std::thread::sleep;
use std::time::{Duration, Instant};

use runbook_sdk::docker::{ListFilter, LogOptions};
use runbook_sdk::http::{ProbeFailure, ProbeResult};
use runbook_sdk::prelude::*;
use runbook_sdk::report::StepStatus;

const PROBE_TIMEOUT_MS: u32 = 3000;
/// Seconds Docker gives the bot to stop before killing it (`docker restart -t 10`).
const STOP_TIMEOUT_SECS: u32 = 10;
const POLL: Duration = Duration::from_secs(1);
const SHOWN_ERROR_LINES: usize = 10;
/// Matched case-insensitively, like `grep -iE`.
const ERROR_PATTERN: &str = "error|fatal|panic|exception|traceback|killed";

fn describe() -> Description {
    Description::new(
        "bot-down",
        "Bot Not Responding: container state, logs and health URL, a bounded verified restart, a summary to ops",
    )
    .param("container", "The bot's container (required unless selector is given)", None)
    .param("selector", "Label selector key=value; its first container is the bot", None)
    .param("health-url", "URL answering 2xx/3xx while the bot is healthy", None)
    .param("max-restarts", "Most restarts in one run", Some("1"))
    .param("log-lines", "How many of the last log lines to scan for errors", Some("100"))
    .param("wait-secs", "How long to wait for the bot to be healthy after a restart", Some("30"))
    .param("channel", "Notification channel for the summary", Some("ops"))
    .param("approve-with", "Approver group asked before the restart; empty = restart without asking", Some(""))
    .param("approve-timeout-secs", "How long to wait for an approver", Some("600"))
    .wants(Capability::Docker)
    .wants(Capability::Http)
    .wants(Capability::Notify)
    .wants(Capability::Approval)
}

struct Settings {
    container: Option<String>,
    selector: Option<String>,
    health_url: Option<String>,
    max_restarts: u32,
    log_lines: u32,
    wait_secs: u64,
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
            container: text("container"),
            selector: text("selector"),
            health_url: text("health-url"),
            max_restarts: incident.param_as("max-restarts")?.unwrap_or(1),
            log_lines: incident.param_as("log-lines")?.unwrap_or(100),
            wait_secs: incident.param_as("wait-secs")?.unwrap_or(30),
            channel: text("channel").unwrap_or_else(|| "ops".into()),
            approve_with: text("approve-with"),
            approve_timeout_secs: incident
                .param_as("approve-timeout-secs")?
                .unwrap_or(approval::DEFAULT_TIMEOUT_SECS),
        };
        if settings.container.is_none() && settings.selector.is_none() {
            let missing = "neither container nor selector is given";
            return Err(Error::Invalid(missing.into()));
        }
        Ok(settings)
    }
}

fn why(e: &Error) -> String {
    format!("{}: {}", e.kind(), e.detail())
}

fn ok_or_warning(ok: bool) -> StepStatus {
    if ok {
        StepStatus::Ok
    } else {
        StepStatus::Warning
    }
}

/// One look at the bot: `docker inspect` plus its health URL.
#[derive(Clone)]
struct Snapshot {
    state: String,
    health: Option<String>,
    restart_count: u32,
    exit_code: Option<i64>,
    oom_killed: bool,
    engine_error: String,
    probe: Option<ProbeResult>,
}

impl Snapshot {
    fn take(name: &str, url: Option<&str>) -> Result<Snapshot, Error> {
        let details = docker::inspect(name)?;
        let probe = match url {
            Some(url) => Some(http::probe(url, Some(PROBE_TIMEOUT_MS))?),
            None => None,
        };
        let c = details.container;
        Ok(Snapshot {
            state: c.state,
            health: c.health,
            restart_count: c.restart_count,
            exit_code: c.exit_code,
            oom_killed: details.oom_killed,
            engine_error: details.error,
            probe,
        })
    }

    fn healthy(&self) -> bool {
        self.state == "running"
            && matches!(self.health.as_deref(), None | Some("healthy"))
            && self.probe.as_ref().is_none_or(|p| p.healthy)
    }

    /// What is wrong, in a few words: "exited (exit code 1, OOM-killed)".
    fn problem(&self) -> String {
        let mut why = Vec::new();
        if self.state != "running" {
            if let Some(code) = self.exit_code.filter(|_| self.state != "created") {
                why.push(format!("exit code {code}"));
            }
            if self.oom_killed {
                why.push("OOM-killed".to_string());
            }
            if why.is_empty() {
                return self.state.clone();
            }
            return format!("{} ({})", self.state, why.join(", "));
        }
        if let Some(health) = self.health.as_deref().filter(|h| *h != "healthy") {
            why.push(format!("health {health}"));
        }
        if let Some(probe) = self.probe.as_ref().filter(|p| !p.healthy) {
            why.push(format!("health URL {}", probe_text(probe)));
        }
        if why.is_empty() {
            return "running and healthy".into();
        }
        format!("running but {}", why.join(", "))
    }

    /// Everything inspect and the probe said, one fact per line.
    fn facts(&self, url: Option<&str>) -> Vec<String> {
        let code = self.exit_code.map_or("-".into(), |c| c.to_string());
        let health = self.health.as_deref().unwrap_or("none");
        let oom = if self.oom_killed { "yes" } else { "no" };
        let mut lines = vec![format!(
            "state {}, exit code {code}, restart count {}, health {health}, OOM-killed {oom}",
            self.state, self.restart_count
        )];
        if !self.engine_error.is_empty() {
            lines.push(format!("engine error: {}", self.engine_error));
        }
        if let (Some(url), Some(probe)) = (url, &self.probe) {
            lines.push(format!("health URL {url}: {}", probe_text(probe)));
        }
        lines
    }
}

fn probe_text(p: &ProbeResult) -> String {
    let status = p.status.map(|s| format!("HTTP {s}, ")).unwrap_or_default();
    if p.healthy {
        return format!("ok ({status}{} ms)", p.latency_ms);
    }
    let kind = match p.failure {
        Some(ProbeFailure::Refused) => "refused",
        Some(ProbeFailure::Timeout) => "timeout",
        Some(ProbeFailure::Dns) => "dns",
        Some(ProbeFailure::Tls) => "tls",
        Some(ProbeFailure::HttpStatus) => "http-status",
        Some(ProbeFailure::Other) | None => "other",
    };
    let text = format!("failing: {kind} ({status}{} ms) {}", p.latency_ms, p.detail);
    text.trim_end().to_string()
}

/// The container named, or the first one carrying the selector's label.
fn resolve_container(settings: &Settings) -> Result<String, Error> {
    if let Some(name) = &settings.container {
        return Ok(name.clone());
    }
    let selector = settings.selector.clone().unwrap_or_default();
    let filter = ListFilter {
        all: true,
        name: None,
        labels: vec![selector.clone()],
    };
    let found = docker::list_containers(&filter)?;
    let Some(first) = found.first() else {
        return Err(Error::NotFound(format!(
            "no container has the label {selector}"
        )));
    };
    if found.len() > 1 {
        warn!(
            "{} containers match {selector}; using the first",
            found.len()
        );
    }
    // Docker's API spells names "/bot"; grants and the CLI say "bot".
    Ok(first.name.trim_start_matches('/').to_string())
}

/// `docker logs --tail N | grep -iE …`, as lines for the notification (at most 10 error lines).
fn scan_logs(name: &str, tail: u32) -> Vec<String> {
    report::step("logs", StepStatus::Started, &format!("last {tail} lines"));
    let options = LogOptions {
        tail: Some(tail),
        since_secs: None,
        timestamps: false,
    };
    let lines = match docker::logs(name, options) {
        Ok(lines) => lines,
        Err(e) => {
            report::step("logs", StepStatus::Skipped, &why(&e));
            return vec![format!("Logs could not be read ({})", why(&e))];
        }
    };
    let excerpt: String = lines.iter().map(|l| format!("{}\n", l.text)).collect();
    if let Err(e) = report::attach("bot-logs.txt", "text/plain", excerpt.as_bytes()) {
        warn!("attach bot-logs.txt: {}", why(&e));
    }
    let errors: Vec<&str> = (lines.iter().map(|l| l.text.as_str()))
        .filter(|text| {
            let lower = text.to_lowercase();
            ERROR_PATTERN.split('|').any(|word| lower.contains(word))
        })
        .collect();
    let detail = format!("{} error lines in {}", errors.len(), lines.len());
    report::step("logs", ok_or_warning(errors.is_empty()), &detail);
    let mut out = vec![format!(
        "Error lines in the last {} log lines: {}",
        lines.len(),
        errors.len()
    )];
    out.extend(
        errors
            .iter()
            .take(SHOWN_ERROR_LINES)
            .map(|l| format!("  {l}")),
    );
    if errors.len() > SHOWN_ERROR_LINES {
        out.push(format!("  … and {} more", errors.len() - SHOWN_ERROR_LINES));
    }
    out
}

enum Wait {
    Healthy(f64),
    TimedOut,
    /// Crashed again, looping or gone: waiting longer or restarting again would not help.
    Failed(String),
}

/// Polls every second until the bot is healthy, crashes, loops or `wait-secs` pass.
fn wait_healthy(name: &str, settings: &Settings, latest: &mut Snapshot) -> Wait {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(settings.wait_secs);
    // A restart count above this one means the restart policy is relaunching a crashing bot.
    let mut baseline = docker::inspect(name)
        .ok()
        .map(|d| d.container.restart_count);
    loop {
        sleep(POLL);
        match Snapshot::take(name, settings.health_url.as_deref()) {
            Ok(snap) => {
                let base = *baseline.get_or_insert(snap.restart_count);
                *latest = snap;
                let (now, count) = (latest.problem(), latest.restart_count);
                if latest.healthy() {
                    return Wait::Healthy(started.elapsed().as_secs_f64());
                }
                if matches!(latest.state.as_str(), "exited" | "dead") {
                    return Wait::Failed(format!("it crashed again: {now}"));
                }
                if count > base || latest.state == "restarting" {
                    let what =
                        format!("it went into a restart loop ({now}, restart count {count})");
                    return Wait::Failed(what);
                }
            }
            Err(Error::NotFound(d)) => {
                return Wait::Failed(format!("the container vanished ({d})"));
            }
            // A slow engine is not a verdict; keep polling until the deadline.
            Err(e) => warn!("while waiting for {name}: {}", why(&e)),
        }
        if Instant::now() >= deadline {
            return Wait::TimedOut;
        }
    }
}

/// One more look after a pause: catches a bot that comes up and dies at once.
fn recheck(name: &str, settings: &Settings, latest: &mut Snapshot) -> Result<(), String> {
    sleep(POLL);
    let snap = Snapshot::take(name, settings.health_url.as_deref());
    *latest = snap.map_err(|e| format!("the re-check failed ({})", why(&e)))?;
    if !latest.healthy() {
        return Err(format!("it failed the re-check ({})", latest.problem()));
    }
    Ok(())
}

/// The summary when an action budget refused the restart: which budget, what it counts, when
/// it frees up.
fn over_budget(name: &str, problem: &str, budget: &OverBudgetInfo) -> String {
    let counted = if budget.key.is_empty() {
        String::new()
    } else {
        format!(" for {}", budget.key)
    };
    format!(
        "bot {name} is {problem}; not restarted: action budget {} is spent{counted} and frees up in {} ({})",
        budget.budget,
        runbook_sdk::human_secs(budget.frees_in_secs),
        budget.message
    )
}

/// `docker start` for a stopped container (`restart` would first try to stop it), else restart.
fn restart(
    name: &str,
    latest: &Snapshot,
    dry_run: bool,
    actions: &mut Vec<String>,
) -> Result<(), Error> {
    let stopped = matches!(latest.state.as_str(), "exited" | "created");
    let result = if stopped {
        docker::start(name)
    } else {
        docker::restart(name, Some(STOP_TIMEOUT_SECS))
    };
    let how = if stopped {
        format!(" (docker start: it was {})", latest.state)
    } else {
        String::new()
    };
    actions.push(match &result {
        Ok(()) if dry_run => format!("would restart {name}{how}"),
        Ok(()) => format!("restarted {name}{how}"),
        Err(Error::OverBudget(budget)) => {
            format!(
                "restart of {name} refused by action budget {}",
                budget.budget
            )
        }
        Err(e) => format!("restart of {name} failed ({})", why(e)),
    });
    result
}

/// Restarts at most `max-restarts` times; stops early when the bot crashes again or loops.
/// `latest` ends as the last look at the bot.
fn remediate(
    name: &str,
    settings: &Settings,
    latest: &mut Snapshot,
    dry_run: bool,
    actions: &mut Vec<String>,
) -> (Status, String) {
    let problem = latest.problem();
    if latest.state == "restarting" {
        // Docker is already restarting it over and over: one more restart would not help.
        let count = latest.restart_count;
        let summary = format!(
            "bot {name} is in a restart loop ({problem}, restart count {count}); not restarted"
        );
        return (Status::Escalated, summary);
    }
    for attempt in 1..=settings.max_restarts {
        let step = format!("restart {attempt}/{}", settings.max_restarts);
        report::step(&step, StepStatus::Started, &latest.problem());
        if let Err(e) = restart(name, latest, dry_run, actions) {
            report::step(&step, StepStatus::Failed, &why(&e));
            if let Some(budget) = e.over_budget() {
                // Storm-safe: restarting harder would not help and the host would refuse it
                // anyway; people decide, knowing which budget and when it frees.
                return (Status::Escalated, over_budget(name, &problem, budget));
            }
            return (
                Status::Escalated,
                format!("bot {name} is {problem}; the restart failed ({})", why(&e)),
            );
        }
        if dry_run {
            report::step(
                &step,
                StepStatus::Skipped,
                "dry run: not waiting for the restart",
            );
            return (
                Status::Escalated,
                format!("dry run: bot {name} is {problem}; would restart it"),
            );
        }
        let what = match wait_healthy(name, settings, latest) {
            Wait::Healthy(secs) => match recheck(name, settings, latest) {
                Ok(()) => {
                    report::step(&step, StepStatus::Ok, &format!("healthy after {secs:.1} s"));
                    let summary = format!(
                        "bot {name} was {problem}; restarted it and it was healthy again after {secs:.1} s"
                    );
                    return (Status::Resolved, summary);
                }
                Err(what) => format!("{what} after looking healthy at {secs:.1} s"),
            },
            Wait::TimedOut => {
                let detail = format!(
                    "not healthy within {} s: {}",
                    settings.wait_secs,
                    latest.problem()
                );
                report::step(&step, StepStatus::Warning, &detail);
                continue;
            }
            Wait::Failed(what) => what,
        };
        report::step(&step, StepStatus::Failed, &what);
        return (
            Status::Escalated,
            format!("bot {name} was {problem}; restarted it but {what}"),
        );
    }
    let summary = match settings.max_restarts {
        0 => format!("bot {name} is {problem}; max-restarts is 0, so it was not restarted"),
        n => format!(
            "bot {name} was {problem}; restarted it {n} time(s) but it was not healthy within {} s ({})",
            settings.wait_secs,
            latest.problem()
        ),
    };
    (Status::Escalated, summary)
}

fn run(incident: Incident) -> Result<Outcome, Error> {
    let settings = Settings::from(&incident)?;
    let name = match resolve_container(&settings) {
        Ok(name) => name,
        Err(Error::NotFound(detail)) => return Ok(missing(&incident, &settings, &detail)),
        Err(e) => return Err(e),
    };

    // 1. docker ps | grep bot; curl the health URL; docker logs bot --tail 100
    report::step("diagnose", StepStatus::Started, &name);
    let before = match Snapshot::take(&name, settings.health_url.as_deref()) {
        Ok(snapshot) => snapshot,
        Err(e) => {
            report::step("diagnose", StepStatus::Failed, &why(&e));
            return match e {
                Error::NotFound(_) => Ok(missing(
                    &incident,
                    &settings,
                    &format!("container {name} not found"),
                )),
                other => Err(other),
            };
        }
    };
    let facts = before.facts(settings.health_url.as_deref()).join("; ");
    report::step("diagnose", ok_or_warning(before.healthy()), &facts);
    let logs = scan_logs(&name, settings.log_lines);

    // 2. docker compose restart bot; wait; verify
    let (mut latest, mut actions, dry_run) = (before.clone(), Vec::new(), incident.dry_run);
    // A restart loop or max-restarts=0 restarts nothing, so there is nothing to ask about.
    let would_restart = before.state != "restarting" && settings.max_restarts > 0;
    let gate = if before.healthy() || !would_restart {
        approval::Gate::Act(None)
    } else {
        let question = restart_question(&name, &settings, &before, &logs);
        approval::gate(&incident, settings.approve_with.as_deref(), &question)
    };
    let (status, summary) = match gate {
        _ if before.healthy() => (Status::NoAction, format!("bot {name} is healthy")),
        approval::Gate::Act(asked) => {
            actions.extend(asked);
            remediate(&name, &settings, &mut latest, dry_run, &mut actions)
        }
        approval::Gate::Hold { why } => {
            report::step("restart", StepStatus::Skipped, &why);
            let problem = before.problem();
            let summary = format!("bot {name} is {problem}; did not restart it: {why}");
            (Status::Escalated, summary)
        }
    };
    let mut outcome = Outcome::new(status, summary).actions(actions);

    // 3. tell the team; a failed notification is recorded, not fatal
    let message = message(
        &name, &incident, &settings, &before, &logs, &latest, &outcome,
    );
    let channel = &settings.channel;
    outcome
        .actions
        .push(incident.notify_action(channel, &message));
    Ok(outcome)
}

/// What an approver sees before the restart: the bot's state and its error lines.
fn restart_question(
    name: &str,
    settings: &Settings,
    before: &Snapshot,
    logs: &[String],
) -> approval::Question {
    let mut body = vec![format!("bot {name} is {}.", before.problem())];
    body.extend(before.facts(settings.health_url.as_deref()));
    body.extend_from_slice(logs);
    approval::Question::new(format!("Restart bot {name}?"))
        .body(body.join("\n"))
        .action(format!("restart {name}"))
        .timeout_secs(settings.approve_timeout_secs)
}

/// The bot's container is gone (removed, renamed, never deployed): nothing to restart, and a
/// human must know.
fn missing(incident: &Incident, settings: &Settings, detail: &str) -> Outcome {
    let summary = format!("{detail}; nothing to restart");
    let message = Message::new(format!("bot container missing: {detail}"))
        .body(format!(
            "{summary}.\nCheck `docker ps -a` and the deployment: the container may have been \
             removed or renamed."
        ))
        .severity(Severity::Critical)
        .field("run", &incident.run_id);
    let channel = &settings.channel;
    Outcome::new(Status::Escalated, summary)
        .actions(vec![incident.notify_action(channel, &message)])
}

fn message(
    name: &str,
    incident: &Incident,
    settings: &Settings,
    before: &Snapshot,
    logs: &[String],
    latest: &Snapshot,
    outcome: &Outcome,
) -> Message {
    let url = settings.health_url.as_deref();
    let mut body = vec!["Found:".to_string()];
    body.extend(before.facts(url).iter().map(|f| format!("  {f}")));
    body.extend_from_slice(logs);
    if !outcome.actions.is_empty() {
        body.push("Done:".into());
        body.extend(outcome.actions.iter().map(|a| format!("  - {a}")));
    }
    if outcome.actions.iter().any(|a| a.starts_with("restarted")) {
        body.push("Now:".into());
        body.extend(latest.facts(url).iter().map(|f| format!("  {f}")));
    }
    body.push(outcome.summary.clone());

    let title = match outcome.status {
        Status::NoAction => format!("bot {name} is healthy"),
        Status::Resolved => format!("bot {name} restarted, healthy again"),
        _ => format!("bot {name} needs a human: {}", before.problem()),
    };
    let severity = match outcome.status {
        Status::Escalated => Severity::Critical,
        _ => Severity::Info,
    };
    Message::new(title)
        .body(body.join("\n"))
        .severity(severity)
        .field("container", name)
        .field("run", &incident.run_id)
        .field("state", &latest.state)
        .field("restarts", latest.restart_count.to_string())
}

runbook_sdk::export_playbook!(describe, run);
