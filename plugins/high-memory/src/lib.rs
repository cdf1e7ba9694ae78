//! The seeds' "High Memory Usage Response" (memory > 150 MB for 10+ minutes): sample the
//! matching containers' memory (`docker stats`) K times over a window, report the trend (steady
//! growth is a likely leak), restart a container over the critical threshold only when
//! `restart=true` and the operator granted `restart`, verify its memory after, notify ops.

use std::thread::sleep;
use std::time::{Duration, Instant};

use runbook_sdk::docker::{Container, ContainerStats, ListFilter};
use runbook_sdk::human_bytes;
use runbook_sdk::prelude::*;
use runbook_sdk::report::StepStatus;

const MIB: u64 = 1 << 20;
/// Each `docker stats` waits about a second for a CPU sample: bounds one round.
const MAX_CONTAINERS: usize = 10;
const MAX_SAMPLES: u32 = 30;
/// Seconds Docker gives the container to stop before killing it (`docker restart -t 10`).
const STOP_TIMEOUT_SECS: u32 = 10;
const POLL: Duration = Duration::from_secs(1);

fn describe() -> Description {
    Description::new(
        "high-memory",
        "High Memory Usage: sample the containers' memory over a window, report the trend, restart one over the critical threshold when allowed, verify, notify",
    )
    .param("containers", "Container-name glob (e.g. bot or api-*); an alert's container or name label when empty", None)
    .param("label", "Label selector (key or key=value) of the containers to sample", None)
    .param("samples", "How many samples per container (2-30)", Some("5"))
    .param("window-secs", "Seconds the samples are spread over (must fit the run's deadline)", Some("60"))
    .param("warn-mb", "Memory (MiB) from which a container is a warning", Some("150"))
    .param("critical-mb", "Memory (MiB) from which a container is critical (and may be restarted)", Some("300"))
    .param("growth-percent", "Growth over the window (%) that, rising in most samples, reads as a likely leak", Some("10"))
    .param("restart", "Restart a container over critical-mb (also needs the docker `restart` grant)", Some("false"))
    .param("max-restarts", "Most containers restarted in one run", Some("1"))
    .param("wait-secs", "How long to wait for a restarted container to run again", Some("30"))
    .param("channel", "Notification channel for the summary", Some("ops"))
    .wants(Capability::Docker)
    .wants(Capability::Notify)
}

struct Settings {
    containers: Option<String>,
    label: Option<String>,
    samples: u32,
    window_secs: u64,
    warn: u64,
    critical: u64,
    growth_percent: f64,
    restart: bool,
    max_restarts: u32,
    wait_secs: u64,
    channel: String,
}

impl Settings {
    fn from(incident: &Incident) -> Result<Self, Error> {
        let text = |name: &str| {
            let value = incident.param(name).map(str::trim);
            value.filter(|v| !v.is_empty()).map(String::from)
        };
        // An alert route (e.g. ContainerMemoryHigh from cAdvisor) names the container in a label.
        let from_alert = || {
            (incident
                .alert_label("container")
                .or_else(|| incident.alert_label("name")))
            .filter(|v| !v.trim().is_empty())
            .map(String::from)
        };
        let settings = Settings {
            containers: text("containers").or_else(from_alert),
            label: text("label"),
            samples: incident.param_as("samples")?.unwrap_or(5),
            window_secs: incident.param_as("window-secs")?.unwrap_or(60),
            warn: incident.param_as::<u64>("warn-mb")?.unwrap_or(150) * MIB,
            critical: incident.param_as::<u64>("critical-mb")?.unwrap_or(300) * MIB,
            growth_percent: incident.param_as("growth-percent")?.unwrap_or(10.0),
            restart: incident.param_as("restart")?.unwrap_or(false),
            max_restarts: incident.param_as("max-restarts")?.unwrap_or(1),
            wait_secs: incident.param_as("wait-secs")?.unwrap_or(30),
            channel: text("channel").unwrap_or_else(|| "ops".into()),
        };
        if settings.containers.is_none() && settings.label.is_none() {
            return Err(Error::Invalid(
                "neither containers nor label is given (and no alert names a container)".into(),
            ));
        }
        if !(2..=MAX_SAMPLES).contains(&settings.samples) {
            return Err(Error::Invalid(format!("samples must be 2-{MAX_SAMPLES}")));
        }
        if settings.warn > settings.critical {
            return Err(Error::Invalid("warn-mb is above critical-mb".into()));
        }
        Ok(settings)
    }
}

#[derive(Clone, Copy, PartialEq, PartialOrd)]
enum Level {
    Ok,
    Warning,
    Critical,
}

#[derive(Clone, Copy, PartialEq)]
enum Trend {
    Growing,
    Stable,
    Falling,
}

impl Trend {
    fn word(self) -> &'static str {
        match self {
            Trend::Growing => "growing (likely leak)",
            Trend::Stable => "stable",
            Trend::Falling => "falling",
        }
    }
}

/// One container's samples and what became of it.
struct Sampled {
    name: String,
    /// (seconds since the first round, stats)
    samples: Vec<(f64, ContainerStats)>,
    error: Option<String>,
    /// The figure after a restart, or why there is none.
    after: Option<Result<ContainerStats, String>>,
}

impl Sampled {
    fn last(&self) -> Option<u64> {
        self.samples.last().map(|(_, s)| s.memory_used)
    }

    fn level(&self, settings: &Settings) -> Level {
        match self.last() {
            Some(used) if used >= settings.critical => Level::Critical,
            Some(used) if used >= settings.warn => Level::Warning,
            _ => Level::Ok,
        }
    }

    /// Growing: up by `growth-percent` over the window and rising in most steps, so one spike
    /// is not a leak.
    fn trend(&self, settings: &Settings) -> Trend {
        let used: Vec<f64> = self
            .samples
            .iter()
            .map(|(_, s)| s.memory_used as f64)
            .collect();
        let (Some(first), Some(last)) = (used.first(), used.last()) else {
            return Trend::Stable;
        };
        let growth = (last - first) * 100.0 / first.max(1.0);
        let rises = used.windows(2).filter(|w| w[1] > w[0]).count();
        if growth >= settings.growth_percent && rises * 2 > used.len() - 1 {
            Trend::Growing
        } else if growth <= -settings.growth_percent {
            Trend::Falling
        } else {
            Trend::Stable
        }
    }

    fn growth_text(&self) -> String {
        match (self.samples.first(), self.samples.last()) {
            (Some((t0, a)), Some((t1, b))) => format!(
                "{} → {} in {:.0} s",
                human_bytes(a.memory_used),
                human_bytes(b.memory_used),
                t1 - t0
            ),
            _ => "no samples".into(),
        }
    }
}

fn why(e: &Error) -> String {
    format!("{}: {}", e.kind(), e.detail())
}

/// The running containers matching the name glob and label, at most `MAX_CONTAINERS`.
fn matching(settings: &Settings) -> Result<Vec<Container>, Error> {
    let filter = ListFilter {
        all: false,
        name: settings.containers.clone(),
        labels: settings.label.iter().cloned().collect(),
    };
    let mut found = docker::list_containers(&filter)?;
    found.sort_by(|a, b| a.name.cmp(&b.name));
    if found.len() > MAX_CONTAINERS {
        warn!(
            "{} containers match; sampling the first {MAX_CONTAINERS}",
            found.len()
        );
        found.truncate(MAX_CONTAINERS);
    }
    Ok(found)
}

/// K rounds of `docker stats`, spread evenly over the window. A refused stats call (no grant)
/// ends the run: without figures there is nothing to report.
fn sample(containers: &[Container], settings: &Settings) -> Result<Vec<Sampled>, Error> {
    let mut sampled: Vec<Sampled> = (containers.iter())
        .map(|c| Sampled {
            name: c.name.clone(),
            samples: Vec::new(),
            error: None,
            after: None,
        })
        .collect();
    let interval = Duration::from_secs(settings.window_secs) / (settings.samples - 1);
    let started = Instant::now();
    for round in 0..settings.samples {
        let due = started + interval * round;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            sleep(wait);
        }
        for s in sampled.iter_mut().filter(|s| s.error.is_none()) {
            match docker::stats(&s.name) {
                Ok(stats) => s.samples.push((started.elapsed().as_secs_f64(), stats)),
                Err(e @ Error::Denied(_)) => return Err(e),
                // Stopped or removed meanwhile: keep what was sampled, say why it ended.
                Err(e) => s.error = Some(why(&e)),
            }
        }
    }
    Ok(sampled)
}

/// `docker restart`, wait until it runs again, one more stats sample.
fn restart(s: &mut Sampled, settings: &Settings, dry_run: bool, actions: &mut Vec<String>) {
    let name = s.name.clone();
    report::step("restart", StepStatus::Started, &name);
    match docker::restart(&name, Some(STOP_TIMEOUT_SECS)) {
        Ok(()) if dry_run => {
            report::step("restart", StepStatus::Skipped, "dry run");
            actions.push(format!("would restart {name}"));
            return;
        }
        Ok(()) => {
            report::step("restart", StepStatus::Ok, &name);
            actions.push(format!("restarted {name}"));
        }
        Err(e @ Error::Denied(_)) => {
            report::step("restart", StepStatus::Skipped, &why(&e));
            actions.push(format!(
                "restart of {name} not granted (grant docker verb `restart` for it)"
            ));
            return;
        }
        Err(e) => {
            report::step("restart", StepStatus::Failed, &why(&e));
            actions.push(format!("restart of {name} failed ({})", why(&e)));
            return;
        }
    }

    report::step("verify", StepStatus::Started, &name);
    let deadline = Instant::now() + Duration::from_secs(settings.wait_secs);
    let after = loop {
        match docker::inspect(&name) {
            Ok(d) if d.container.state == "running" => {
                break docker::stats(&name).map_err(|e| why(&e));
            }
            Ok(d) if Instant::now() >= deadline => {
                break Err(format!(
                    "{} after {} s, not running",
                    d.container.state, settings.wait_secs
                ));
            }
            Ok(_) => sleep(POLL),
            Err(e) => break Err(why(&e)),
        }
    };
    let status = match &after {
        Ok(stats) if stats.memory_used < settings.critical => StepStatus::Ok,
        _ => StepStatus::Failed,
    };
    let detail = match &after {
        Ok(stats) => format!("memory after restart {}", human_bytes(stats.memory_used)),
        Err(e) => e.clone(),
    };
    report::step("verify", status, &detail);
    s.after = Some(after);
}

fn run(incident: Incident) -> Result<Outcome, Error> {
    let settings = Settings::from(&incident)?;
    let selector = [settings.containers.as_deref(), settings.label.as_deref()];
    let selector: Vec<&str> = selector.into_iter().flatten().collect();
    let selector = selector.join(", ");

    report::step("containers", StepStatus::Started, &selector);
    let containers = matching(&settings).inspect_err(|e| {
        report::step("containers", StepStatus::Failed, &why(e));
    })?;
    if containers.is_empty() {
        report::step("containers", StepStatus::Warning, "none running");
        let title = format!("High memory: no running container matches {selector}");
        let message = Message::new(&title)
            .severity(Severity::Warning)
            .field("run", &incident.run_id);
        let action = incident.notify_action(&settings.channel, &message);
        return Ok(Outcome::escalated(title).action(action));
    }
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    report::step("containers", StepStatus::Ok, &names.join(", "));

    let detail = format!(
        "{} samples over {} s",
        settings.samples, settings.window_secs
    );
    report::step("sample memory", StepStatus::Started, &detail);
    let mut sampled = sample(&containers, &settings).inspect_err(|e| {
        report::step("sample memory", StepStatus::Failed, &why(e));
    })?;
    report::step("sample memory", StepStatus::Ok, &detail);

    let mut actions = Vec::new();
    let mut restarts = 0;
    let mut lines = Vec::new();
    let mut worst = Level::Ok;
    let mut leaks = 0;
    let mut mitigated = 0;
    for s in sampled.iter_mut() {
        let (level, trend) = (s.level(&settings), s.trend(&settings));
        let limit = s.samples.last().map_or(0, |(_, st)| st.memory_limit);
        let mut line = format!(
            "{}: {}, {} (limit {})",
            s.name,
            s.growth_text(),
            trend.word(),
            human_bytes(limit)
        );
        if let Some(e) = &s.error {
            line.push_str(&format!("; sampling stopped: {e}"));
        }
        if trend == Trend::Growing {
            leaks += 1;
        }
        let mut level_now = level;
        if level == Level::Critical {
            line.push_str(&format!(
                ", over the critical {}",
                human_bytes(settings.critical)
            ));
            if !settings.restart {
                line.push_str(" (restart=true would restart it)");
            } else if restarts >= settings.max_restarts {
                line.push_str(&format!(
                    " (not restarted: max-restarts {} reached)",
                    settings.max_restarts
                ));
            } else {
                restarts += 1;
                restart(s, &settings, incident.dry_run, &mut actions);
                match &s.after {
                    Some(Ok(after)) => {
                        line.push_str(&format!(
                            "; after restart {}",
                            human_bytes(after.memory_used)
                        ));
                        if after.memory_used < settings.critical {
                            mitigated += 1;
                            level_now = Level::Warning;
                        }
                    }
                    Some(Err(e)) => line.push_str(&format!("; after restart: {e}")),
                    None => {}
                }
            }
        } else if level == Level::Warning {
            line.push_str(&format!(
                ", over the warning {}",
                human_bytes(settings.warn)
            ));
        }
        let level_now = if trend == Trend::Growing {
            level_now.max_level(Level::Warning)
        } else {
            level_now
        };
        worst = worst.max_level(level_now);
        lines.push(line);
    }

    let csv = samples_csv(&sampled);
    if let Err(e) = report::attach("memory-samples.csv", "text/csv", csv.as_bytes()) {
        warn!("attach memory-samples.csv: {}", why(&e));
    }
    let mut body = lines.join("\n");
    if leaks > 0 {
        body.push_str(
            "\n\nNext steps (runbook): profile the growing process (heap, open file descriptors: \
             lsof -p), review recent changes, tune the runtime's GC or memory limits.",
        );
    }
    if !actions.is_empty() {
        body.push_str("\n\nDone:\n");
        body.push_str(
            &actions
                .iter()
                .map(|a| format!("  - {a}"))
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
    let _ = report::attach("memory-report.txt", "text/plain", body.as_bytes());

    let status = match worst {
        Level::Ok => Status::NoAction,
        // The restart brought every critical container back under the threshold.
        Level::Warning if mitigated > 0 => Status::Mitigated,
        _ => Status::Escalated,
    };
    let title = match (status, worst) {
        (Status::NoAction, _) => format!("Memory fine: {selector}"),
        (Status::Mitigated, _) => format!("High memory mitigated by a restart: {selector}"),
        (_, Level::Critical) => format!("Memory critical: {selector}"),
        _ if leaks > 0 => format!("Memory growing (likely leak): {selector}"),
        _ => format!("Memory high: {selector}"),
    };
    let severity = match worst {
        Level::Ok => Severity::Info,
        Level::Warning => Severity::Warning,
        Level::Critical => Severity::Critical,
    };
    let mut message = Message::new(&title)
        .body(&body)
        .severity(severity)
        .field("run", &incident.run_id);
    for s in &sampled {
        if let Some(used) = s.last() {
            message = message.field(s.name.clone(), human_bytes(used));
        }
    }
    actions.push(incident.notify_action(&settings.channel, &message));
    // The title names the selector; one container selected by its own name is not named twice.
    let only_named = sampled.len() == 1 && sampled[0].name == selector;
    let summary_lines: Vec<&str> = lines
        .iter()
        .zip(&sampled)
        .map(
            |(line, s)| match line.strip_prefix(&format!("{}: ", s.name)) {
                Some(rest) if only_named => rest,
                _ => line.as_str(),
            },
        )
        .collect();
    let summary = format!("{title}: {}", summary_lines.join("; "));
    Ok(Outcome::new(status, summary).actions(actions))
}

impl Level {
    fn max_level(self, other: Level) -> Level {
        if other > self { other } else { self }
    }
}

/// Every sample as evidence: container, seconds into the window, memory, limit, CPU.
fn samples_csv(sampled: &[Sampled]) -> String {
    let mut csv = String::from("container,seconds,memory_bytes,limit_bytes,cpu_percent\n");
    for s in sampled {
        for (t, st) in &s.samples {
            csv.push_str(&format!(
                "{},{t:.1},{},{},{:.1}\n",
                s.name, st.memory_used, st.memory_limit, st.cpu_percent
            ));
        }
        if let Some(Ok(after)) = &s.after {
            csv.push_str(&format!(
                "{},after-restart,{},{},{:.1}\n",
                s.name, after.memory_used, after.memory_limit, after.cpu_percent
            ));
        }
    }
    csv
}

runbook_sdk::export_playbook!(describe, run);

#[cfg(test)]
mod tests {
    use super::*;

    fn sampled(mib: &[u64]) -> Sampled {
        let samples = (mib.iter().enumerate())
            .map(|(i, m)| {
                let stats = ContainerStats {
                    cpu_percent: 0.0,
                    memory_used: m * MIB,
                    memory_limit: 1 << 30,
                    pids: 1,
                };
                (i as f64, stats)
            })
            .collect();
        Sampled {
            name: "c".into(),
            samples,
            error: None,
            after: None,
        }
    }

    fn settings() -> Settings {
        Settings {
            containers: Some("c".into()),
            label: None,
            samples: 5,
            window_secs: 60,
            warn: 150 * MIB,
            critical: 300 * MIB,
            growth_percent: 10.0,
            restart: false,
            max_restarts: 1,
            wait_secs: 30,
            channel: "ops".into(),
        }
    }

    #[test]
    fn a_steady_climb_is_growing_a_spike_is_not() {
        let s = settings();
        assert!(sampled(&[100, 110, 120, 130, 140]).trend(&s) == Trend::Growing);
        // One jump then flat: up 40% but rising in one step of four.
        assert!(sampled(&[100, 140, 140, 140, 140]).trend(&s) == Trend::Stable);
        assert!(sampled(&[100, 101, 102, 103, 104]).trend(&s) == Trend::Stable);
        assert!(sampled(&[200, 150, 120, 110, 100]).trend(&s) == Trend::Falling);
    }

    #[test]
    fn the_last_sample_decides_the_level() {
        let s = settings();
        assert!(sampled(&[400, 100]).level(&s) == Level::Ok);
        assert!(sampled(&[100, 150]).level(&s) == Level::Warning);
        assert!(sampled(&[100, 300]).level(&s) == Level::Critical);
    }
}
