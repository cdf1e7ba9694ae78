//! The seeds' "Security Incident" procedure, automated where a machine can: assess (grep the
//! granted logs and the containers' recent logs for failed logins, unauthorized calls, rate
//! limiting and sudo), preserve the evidence as hashed artifacts, contain only when asked and
//! granted, and hand the security channel a checklist of what a machine must not do.

use std::collections::BTreeMap;

use runbook_sdk::docker::LogOptions;
use runbook_sdk::fs::GrepOptions;
use runbook_sdk::prelude::*;
use runbook_sdk::report::StepStatus;
use serde_json::json;

/// What is looked for. The patterns run natively in the host over files and in the guest over
/// container logs; a line counts once per category.
const CATEGORIES: &[(&str, &str)] = &[
    (
        "failed-login",
        r"failed password for|authentication failure|failed login|login failed",
    ),
    (
        "successful-login",
        r"accepted (password|publickey|keyboard-interactive) for|login succeeded|login successful",
    ),
    (
        "unauthorized",
        // A bare status code counts only as a word of its own, not inside a path or an id.
        r"unauthorized|forbidden|permission denied|(^|\s)40[13](\s|$)",
    ),
    (
        "rate-limit",
        r"rate.?limit|too many requests|(^|\s)429(\s|$)",
    ),
    ("sudo", r"sudo(\[\d+\])?:.*command="),
];

/// Steps a machine must not take; they go to the security channel as a checklist and into the
/// incident report as action items.
const MANUAL_STEPS: &[&str] = &[
    "Rotate all API keys in the provider consoles, update them in the deployment, redeploy",
    "Change the web UI password (BASIC_AUTH_PASS)",
    "Block the top sources at the firewall if they are not legitimate",
    "Review what was accessed and whether data was exfiltrated",
    "Notify the security team, stakeholders, and affected users if personal data was involved",
];

fn describe() -> Description {
    Description::new(
        "security",
        "Security Incident: scan logs for failed logins, unauthorized calls, rate limiting and sudo; keep the evidence; contain when asked",
    )
    .param("logs", "Comma-separated log files to scan (the host greps them)", Some("/var/log/auth.log"))
    .param("containers", "Comma-separated containers whose recent logs are scanned and kept", Some(""))
    .param("window-mins", "How far back container logs are read", Some("60"))
    .param("last-lines", "Only the last N lines (at most 10000) of each log file; empty = the whole file", Some(""))
    .param("brute-force-threshold", "Failed logins from one source that count as brute force", Some("5"))
    .param("evidence-lines", "Most matching lines kept per file and category", Some("200"))
    .param("contain", "none, pause, stop or disconnect (needs `container`, and the grant)", Some("none"))
    .param("container", "The container to contain", None)
    .param("network", "The network to disconnect `container` from (contain=disconnect)", None)
    .param("channel", "Notification channel", Some("security"))
    .param("approve-with", "Approver group asked before containing; empty = contain without asking", Some(""))
    .param("approve-timeout-secs", "How long to wait for an approver", Some("600"))
    .wants(Capability::FsRead)
    .wants(Capability::Docker)
    .wants(Capability::Notify)
    .wants(Capability::Approval)
}

#[derive(Clone, Copy, PartialEq)]
enum Contain {
    None,
    Pause,
    Stop,
    Disconnect,
}

struct Settings {
    logs: Vec<String>,
    containers: Vec<String>,
    window_secs: u64,
    last_lines: Option<u32>,
    threshold: u64,
    evidence_lines: u32,
    contain: Contain,
    container: Option<String>,
    network: Option<String>,
    channel: String,
    approve_with: Option<String>,
    approve_timeout_secs: u32,
}

impl Settings {
    fn from(incident: &Incident) -> Result<Self, Error> {
        let contain = match incident.param("contain").unwrap_or("none").trim() {
            "" | "none" => Contain::None,
            "pause" => Contain::Pause,
            "stop" => Contain::Stop,
            "disconnect" => Contain::Disconnect,
            other => {
                return Err(Error::Invalid(format!(
                    "contain={other:?}: expected none, pause, stop or disconnect"
                )));
            }
        };
        let nonempty = |name: &str| {
            incident
                .param(name)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(String::from)
        };
        let settings = Settings {
            logs: incident.param_list("logs"),
            containers: incident.param_list("containers"),
            window_secs: incident.param_as::<u64>("window-mins")?.unwrap_or(60) * 60,
            last_lines: incident.param_as("last-lines")?,
            threshold: incident.param_as("brute-force-threshold")?.unwrap_or(5),
            evidence_lines: incident.param_as("evidence-lines")?.unwrap_or(200),
            contain,
            container: nonempty("container"),
            network: nonempty("network"),
            channel: incident.param("channel").unwrap_or("security").to_string(),
            approve_with: nonempty("approve-with"),
            approve_timeout_secs: incident
                .param_as("approve-timeout-secs")?
                .unwrap_or(approval::DEFAULT_TIMEOUT_SECS),
        };
        if settings.contain != Contain::None && settings.container.is_none() {
            return Err(Error::Invalid(
                "contain is set but no container is given".into(),
            ));
        }
        if settings.contain == Contain::Disconnect && settings.network.is_none() {
            return Err(Error::Invalid(
                "contain=disconnect needs the network parameter".into(),
            ));
        }
        Ok(settings)
    }
}

/// One category's findings over every source.
#[derive(Default)]
struct Finding {
    count: u64,
    first_seen: Option<String>,
    last_seen: Option<String>,
    sources: BTreeMap<String, u64>,
    places: BTreeMap<String, u64>,
}

impl Finding {
    fn add(&mut self, place: &str, line: &str) {
        self.count += 1;
        *self.places.entry(place.to_string()).or_default() += 1;
        let at = timestamp(line);
        if self.first_seen.is_none() {
            self.first_seen = Some(at.clone());
        }
        self.last_seen = Some(at);
        if let Some(ip) = source_ip(line) {
            *self.sources.entry(ip).or_default() += 1;
        }
    }

    fn top_sources(&self, n: usize) -> Vec<(String, u64)> {
        let mut sources: Vec<(String, u64)> =
            self.sources.iter().map(|(k, v)| (k.clone(), *v)).collect();
        sources.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        sources.truncate(n);
        sources
    }
}

/// The line's leading timestamp: an ISO token, or syslog's "Mon dd hh:mm:ss".
fn timestamp(line: &str) -> String {
    let line = line.trim_start();
    if line.starts_with(|c: char| c.is_ascii_digit()) {
        line.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    } else {
        line.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The first IP address in the line that is not part of the timestamp.
fn source_ip(line: &str) -> Option<String> {
    line.split(|c: char| {
        c.is_whitespace() || matches!(c, '=' | ',' | ';' | '"' | '[' | ']' | '(' | ')')
    })
    .map(|token| token.trim_end_matches(['.', ':']))
    .find(|token| token.contains(['.', ':']) && token.parse::<std::net::IpAddr>().is_ok())
    .map(String::from)
}

/// `grep -ciE pattern log` natively in the host; lines kept as evidence.
fn scan_file(
    path: &str,
    settings: &Settings,
    findings: &mut BTreeMap<&'static str, Finding>,
    lines_by_category: &mut BTreeMap<&'static str, Vec<String>>,
) -> Result<String, Error> {
    let mut summary = Vec::new();
    for (category, pattern) in CATEGORIES {
        let options = GrepOptions {
            case_insensitive: true,
            max_matches: 10_000,
            last_lines: settings.last_lines,
        };
        let result = fs::grep(path, pattern, options)?;
        let finding = findings.entry(category).or_default();
        for m in &result.matches {
            finding.add(path, &m.line);
        }
        // Beyond the returned lines, the count still counts.
        let unreturned = result.count.saturating_sub(result.matches.len() as u64);
        if unreturned > 0 {
            finding.count += unreturned;
            *finding.places.entry(path.to_string()).or_default() += unreturned;
        }
        let kept = lines_by_category.entry(category).or_default();
        kept.extend(
            result
                .matches
                .iter()
                .take(settings.evidence_lines as usize)
                .map(|m| format!("{path}:{}: {}", m.line_number, m.line)),
        );
        if result.count > 0 {
            summary.push(format!("{category} {}", result.count));
        }
    }
    Ok(summary.join(", "))
}

/// A scan step is a warning when it found more than ordinary logins.
fn scan_status(detail: &str) -> StepStatus {
    let suspicious = detail
        .split(", ")
        .any(|part| !part.is_empty() && !part.starts_with("successful-login"));
    if suspicious {
        StepStatus::Warning
    } else {
        StepStatus::Ok
    }
}

/// `docker logs --since <window> <container>`: scanned here, kept whole (bounded) as evidence.
fn scan_container(
    name: &str,
    settings: &Settings,
    patterns: &[(&'static str, regex_lite::Regex)],
    findings: &mut BTreeMap<&'static str, Finding>,
) -> Result<String, Error> {
    let options = LogOptions {
        tail: None,
        since_secs: Some(settings.window_secs),
        timestamps: true,
    };
    let lines = docker::logs(name, options)?;
    let place = format!("container {name}");
    let mut hits = 0;
    for line in &lines {
        for (category, pattern) in patterns {
            if pattern.is_match(&line.text) {
                findings
                    .entry(category)
                    .or_default()
                    .add(&place, &line.text);
                hits += 1;
            }
        }
    }
    let text: String = lines.iter().map(|l| format!("{}\n", l.text)).collect();
    const MAX_EXCERPT: usize = 256 << 10;
    let start = text.len().saturating_sub(MAX_EXCERPT);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    attach(
        &format!("container-{name}.log"),
        "text/plain",
        text[start..].as_bytes(),
    );
    Ok(format!("{} lines, {hits} matches", lines.len()))
}

fn attach(name: &str, content_type: &str, data: &[u8]) {
    if let Err(e) = report::attach(name, content_type, data) {
        warn!("attach {name}: {}: {}", e.kind(), e.detail());
    }
}

/// What containment came to: done (or failed) as `line`, or held back by the approver.
struct Containment {
    line: String,
    /// The approver said no, or nobody answered: the container runs on and a human must act.
    held: bool,
}

impl Contain {
    fn verb(self) -> &'static str {
        match self {
            Contain::None => "leave",
            Contain::Pause => "pause",
            Contain::Stop => "stop",
            Contain::Disconnect => "disconnect",
        }
    }
}

/// The question an approver sees: the container, what would be done, and the evidence.
fn question(settings: &Settings, name: &str, evidence: &[String]) -> approval::Question {
    let verb = settings.contain.verb();
    let action = match settings.network.as_deref() {
        Some(network) if settings.contain == Contain::Disconnect => {
            format!("disconnect {name} from {network}")
        }
        _ => format!("{verb} {name}"),
    };
    let mut body = vec![format!("The security run is about to {action}.")];
    if evidence.is_empty() {
        body.push("The scanned logs had no suspicious lines.".into());
    }
    body.extend(evidence.iter().cloned());
    approval::Question::new(format!("Security: {action}?"))
        .body(body.join("\n"))
        .action(action)
        .timeout_secs(settings.approve_timeout_secs)
}

fn contain(incident: &Incident, settings: &Settings, evidence: &[String]) -> Option<Containment> {
    let name = settings.container.as_deref()?;
    if settings.contain == Contain::None {
        return None;
    }
    let asked = match approval::gate(
        incident,
        settings.approve_with.as_deref(),
        &question(settings, name, evidence),
    ) {
        approval::Gate::Act(asked) => asked,
        approval::Gate::Hold { why } => {
            let line = format!("did not {} {name}: {why}", settings.contain.verb());
            report::step("contain", StepStatus::Skipped, &line);
            return Some(Containment { line, held: true });
        }
    };
    let dry_run = incident.dry_run;
    let (verb, result) = match settings.contain {
        Contain::None => return None,
        Contain::Pause => ("pause", docker::pause(name)),
        Contain::Stop => ("stop", docker::stop(name, Some(10))),
        Contain::Disconnect => {
            let network = settings.network.as_deref().unwrap_or_default();
            (
                "disconnect",
                docker::network_disconnect(name, network, true),
            )
        }
    };
    let done = match (&result, dry_run) {
        (Ok(()), true) => format!("would {verb} {name}"),
        (Ok(()), false) => match settings.contain {
            Contain::Pause => format!("paused {name}"),
            Contain::Stop => format!("stopped {name}"),
            _ => format!(
                "disconnected {name} from {}",
                settings.network.as_deref().unwrap_or_default()
            ),
        },
        (Err(e), _) => format!("could not {verb} {name} ({}: {})", e.kind(), e.detail()),
    };
    let done = match asked {
        Some(asked) => format!("{done} ({asked})"),
        None => done,
    };
    let status = if result.is_ok() {
        StepStatus::Ok
    } else {
        StepStatus::Failed
    };
    report::step("contain", status, &done);
    Some(Containment {
        line: done,
        held: false,
    })
}

fn run(incident: Incident) -> Result<Outcome, Error> {
    let settings = Settings::from(&incident)?;
    let mut findings: BTreeMap<&'static str, Finding> = BTreeMap::new();
    let mut evidence: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();

    // 1. Assess: grep the logs; read the containers' recent logs.
    for path in &settings.logs {
        let step = format!("scan {path}");
        report::step(&step, StepStatus::Started, "");
        match scan_file(path, &settings, &mut findings, &mut evidence) {
            Ok(detail) if detail.is_empty() => {
                report::step(&step, StepStatus::Ok, "nothing suspicious")
            }
            Ok(detail) => report::step(&step, scan_status(&detail), &detail),
            Err(e) => report::step(
                &step,
                StepStatus::Skipped,
                &format!("{}: {}", e.kind(), e.detail()),
            ),
        }
    }
    let patterns: Vec<(&'static str, regex_lite::Regex)> = CATEGORIES
        .iter()
        .map(|(name, p)| {
            (
                *name,
                regex_lite::Regex::new(&format!("(?i){p}")).expect("valid pattern"),
            )
        })
        .collect();
    for name in &settings.containers {
        let step = format!("scan container {name}");
        report::step(&step, StepStatus::Started, "");
        match scan_container(name, &settings, &patterns, &mut findings) {
            Ok(detail) if detail.ends_with(" 0 matches") => {
                report::step(&step, StepStatus::Ok, &detail)
            }
            Ok(detail) => report::step(&step, StepStatus::Warning, &detail),
            Err(e) => report::step(
                &step,
                StepStatus::Skipped,
                &format!("{}: {}", e.kind(), e.detail()),
            ),
        }
    }

    // Brute force: sources over the threshold; a success from one of them is the worst sign.
    let failed = findings.remove("failed-login").unwrap_or_default();
    let brute_force: Vec<(String, u64)> = failed
        .top_sources(usize::MAX)
        .into_iter()
        .filter(|(_, n)| *n >= settings.threshold)
        .collect();
    let logins = findings.remove("successful-login").unwrap_or_default();
    let after_failures: Vec<String> = logins
        .sources
        .keys()
        .filter(|ip| failed.sources.contains_key(*ip))
        .cloned()
        .collect();
    let suspicious = failed.count + findings.values().map(|f| f.count).sum::<u64>() > 0;

    // 2. Preserve evidence: the matching lines per category, and the structured findings.
    for (category, lines) in &evidence {
        if !lines.is_empty() {
            attach(
                &format!("evidence-{category}.log"),
                "text/plain",
                lines.join("\n").as_bytes(),
            );
        }
    }
    let mut categories = serde_json::Map::new();
    for (name, finding) in [("failed-login", &failed), ("successful-login", &logins)]
        .into_iter()
        .chain(findings.iter().map(|(k, v)| (*k, v)))
    {
        categories.insert(
            name.to_string(),
            json!({
                "count": finding.count,
                "first_seen": finding.first_seen,
                "last_seen": finding.last_seen,
                "top_sources": finding.top_sources(5),
                "places": finding.places,
            }),
        );
    }

    // The findings, for the approver (when one is asked) and for the security channel.
    let mut body = vec!["Findings:".to_string()];
    for (name, value) in &categories {
        let count = value["count"].as_u64().unwrap_or(0);
        if count == 0 {
            continue;
        }
        let top: Vec<String> = value["top_sources"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| format!("{} ×{}", s[0].as_str().unwrap_or("?"), s[1]))
            .collect();
        body.push(format!(
            "  {name}: {count} (first {}, last {}){}",
            value["first_seen"].as_str().unwrap_or("?"),
            value["last_seen"].as_str().unwrap_or("?"),
            if top.is_empty() {
                String::new()
            } else {
                format!("; top sources {}", top.join(", "))
            }
        ));
    }
    if !brute_force.is_empty() {
        let list: Vec<String> = brute_force
            .iter()
            .map(|(ip, n)| format!("{ip} ({n})"))
            .collect();
        body.push(format!("Brute force from: {}", list.join(", ")));
    }
    if !after_failures.is_empty() {
        body.push(format!(
            "Successful login after failures from: {}",
            after_failures.join(", ")
        ));
    }

    // 3. Contain, only when asked (and only as far as the grants and the approver allow).
    let containment = contain(&incident, &settings, &body[1..]);
    let held = containment.as_ref().is_some_and(|c| c.held);
    let contained = containment.map(|c| c.line);
    let findings_json = json!({
        "suspicious": suspicious,
        "categories": categories,
        "brute_force_sources": brute_force,
        "successful_login_after_failures": after_failures,
        "contained": contained,
    });
    attach(
        "findings.json",
        "application/json",
        serde_json::to_string_pretty(&findings_json)
            .unwrap_or_default()
            .as_bytes(),
    );

    // Containment that was asked for and held back leaves the incident to a human.
    if !suspicious && !held {
        return Ok(Outcome::no_action(
            "no suspicious activity in the scanned logs",
        ));
    }

    // 4. Notify security: findings, containment, and the checklist a machine must not do.
    body.push(format!(
        "Contained: {}",
        contained.as_deref().unwrap_or("nothing (contain=none)")
    ));
    body.push("A human must:".into());
    for step in MANUAL_STEPS {
        body.push(format!("  [ ] {step}"));
        report::step(
            &format!("manual: {step}"),
            StepStatus::Skipped,
            "a machine must not do this",
        );
    }
    let critical = !brute_force.is_empty() || !after_failures.is_empty();
    let total: u64 = categories
        .values()
        .filter_map(|v| v["count"].as_u64())
        .sum();
    let mut title = if after_failures.is_empty() {
        format!("Security: {total} suspicious log lines")
    } else {
        format!(
            "Security: login succeeded after failures from {}",
            after_failures.join(", ")
        )
    };
    if let Some(line) = contained.as_deref().filter(|_| held) {
        title = format!("{title}; {line}");
    }
    let mut message = Message::new(&title)
        .body(body.join("\n"))
        .severity(if critical {
            Severity::Critical
        } else {
            Severity::Warning
        })
        .field("run", &incident.run_id)
        .field("failed logins", failed.count.to_string());
    if let Some((ip, n)) = failed.top_sources(1).first() {
        message = message.field("top source", format!("{ip} ({n})"));
    }
    let mut actions: Vec<String> = contained.into_iter().collect();
    let channel = &settings.channel;
    actions.push(incident.notify_action(channel, &message));
    Ok(Outcome::escalated(title).actions(actions))
}

runbook_sdk::export_playbook!(describe, run);
