//! The seed runbook's "Disk Space Full" procedure: `df -h`, `du -sh /* | sort -rh | head`,
//! old backups as cleanup candidates, `docker system df`, then a summary to the ops channel.
//! It only looks: nothing is deleted (cleanup candidates are listed for a human).

use std::time::{SystemTime, UNIX_EPOCH};

use runbook_sdk::fs::{FindOptions, FsUsage};
use runbook_sdk::human_bytes;
use runbook_sdk::prelude::*;
use runbook_sdk::report::StepStatus;

const DAY: u64 = 86_400;

fn describe() -> Description {
    Description::new(
        "disk-full",
        "Disk Space Full: mount usage against thresholds, largest directories, old backups, Docker disk usage",
    )
    .param("mounts", "Comma-separated mount points to check", Some("/"))
    .param("warn-percent", "Usage (%) from which a mount is a warning", Some("80"))
    .param("critical-percent", "Usage (%) from which a mount is critical", Some("90"))
    .param(
        "paths",
        "Comma-separated directories whose largest entries are listed (missing ones are skipped)",
        Some("/var/log,/var/lib/docker,/var/cache,/tmp,/home"),
    )
    .param("top", "How many of the largest entries to list per path", Some("10"))
    .param("backups", "Directory searched for old backups", Some("/var/backups"))
    .param("backup-glob", "File-name pattern of backups", Some("*.tar.gz"))
    .param("backup-days", "Backups older than this many days are cleanup candidates", Some("7"))
    .param("channel", "Notification channel for the summary", Some("ops"))
    .wants(Capability::FsRead)
    .wants(Capability::Docker)
    .wants(Capability::Notify)
}

struct Settings {
    mounts: Vec<String>,
    warn: f64,
    critical: f64,
    paths: Vec<String>,
    top: u32,
    backups: String,
    backup_glob: String,
    backup_days: u64,
    channel: String,
}

impl Settings {
    fn from(incident: &Incident) -> Result<Self, Error> {
        let settings = Settings {
            mounts: incident.param_list("mounts"),
            warn: incident.param_as("warn-percent")?.unwrap_or(80.0),
            critical: incident.param_as("critical-percent")?.unwrap_or(90.0),
            paths: incident.param_list("paths"),
            top: incident.param_as("top")?.unwrap_or(10),
            backups: incident
                .param("backups")
                .unwrap_or_default()
                .trim()
                .to_string(),
            backup_glob: incident
                .param("backup-glob")
                .unwrap_or("*.tar.gz")
                .to_string(),
            backup_days: incident.param_as("backup-days")?.unwrap_or(7),
            channel: incident.param("channel").unwrap_or("ops").to_string(),
        };
        if settings.mounts.is_empty() {
            return Err(Error::Invalid("parameter mounts is empty".into()));
        }
        if !(0.0..=100.0).contains(&settings.warn) || !(0.0..=100.0).contains(&settings.critical) {
            return Err(Error::Invalid(
                "thresholds must be percentages (0-100)".into(),
            ));
        }
        if settings.warn > settings.critical {
            return Err(Error::Invalid(format!(
                "warn-percent ({}) is above critical-percent ({})",
                settings.warn, settings.critical
            )));
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

fn run(incident: Incident) -> Result<Outcome, Error> {
    let settings = Settings::from(&incident)?;
    let mut report = String::new();

    // 1. df -h
    report::step(
        "mount usage",
        StepStatus::Started,
        &settings.mounts.join(", "),
    );
    let mut usages: Vec<(FsUsage, Level)> = Vec::new();
    let mut first_error = None;
    report.push_str("Mount usage:\n");
    for mount in &settings.mounts {
        match fs::usage(mount) {
            Ok(usage) => {
                let level = classify(usage.used_percent, &settings);
                report.push_str(&format!(
                    "  {:<20} {:>5.1}%  {} used of {}, {} available  {}\n",
                    mount,
                    usage.used_percent,
                    human_bytes(usage.used_bytes),
                    human_bytes(usage.total_bytes),
                    human_bytes(usage.available_bytes),
                    level_word(level)
                ));
                usages.push((usage, level));
            }
            Err(e) => {
                warn!("usage of {mount}: {}: {}", e.kind(), e.detail());
                report.push_str(&format!("  {mount:<20} {}: {}\n", e.kind(), e.detail()));
                first_error.get_or_insert(e);
            }
        }
    }
    if usages.is_empty() {
        report::step("mount usage", StepStatus::Failed, "no mount could be read");
        return Err(first_error.expect("mounts is not empty"));
    }
    let worst = usages
        .iter()
        .map(|(_, l)| *l)
        .fold(Level::Ok, |a, b| if b > a { b } else { a });
    let (worst_usage, _) = usages
        .iter()
        .max_by(|a, b| a.0.used_percent.total_cmp(&b.0.used_percent))
        .expect("usages is not empty");
    let headline = format!(
        "{} at {:.1}% (warn {}%, critical {}%)",
        worst_usage.path, worst_usage.used_percent, settings.warn, settings.critical
    );
    let step_status = match worst {
        Level::Ok => StepStatus::Ok,
        Level::Warning => StepStatus::Warning,
        Level::Critical => StepStatus::Failed,
    };
    report::step("mount usage", step_status, &headline);

    // 2. du -sh <path>/* | sort -rh | head
    report::step(
        "largest entries",
        StepStatus::Started,
        &settings.paths.join(", "),
    );
    let mut scanned = 0;
    // One call for all paths: the host walks them at the same time.
    let walked = match fs::largest_each(&settings.paths, 1, settings.top) {
        Ok(walked) => walked,
        // The whole call refused: every path says why.
        Err(e) => settings.paths.iter().map(|_| Err(e.clone())).collect(),
    };
    for (path, walked) in settings.paths.iter().zip(walked) {
        match walked {
            Ok(result) => {
                scanned += 1;
                let cut = if result.truncated {
                    " (walk cut short; sizes are lower bounds)"
                } else {
                    ""
                };
                report.push_str(&format!(
                    "\nLargest under {path} ({} in total){cut}:\n",
                    human_bytes(result.total_bytes)
                ));
                for entry in result.entries.iter().filter(|e| e.bytes > 0) {
                    report.push_str(&format!(
                        "  {:>10}  {}\n",
                        human_bytes(entry.bytes),
                        entry.path
                    ));
                }
            }
            Err(Error::NotFound(_)) => debug!("{path} does not exist; skipped"),
            Err(e) => {
                warn!("largest under {path}: {}: {}", e.kind(), e.detail());
                report.push_str(&format!(
                    "\nLargest under {path}: {}: {}\n",
                    e.kind(),
                    e.detail()
                ));
            }
        }
    }
    report::step(
        "largest entries",
        StepStatus::Ok,
        &format!("{scanned} of {} paths scanned", settings.paths.len()),
    );

    // 3. find backups/ -name "*.tar.gz" -mtime +7
    let mut candidates_bytes = 0;
    let mut candidates = 0;
    if !settings.backups.is_empty() {
        report::step("old backups", StepStatus::Started, &settings.backups);
        let options = FindOptions {
            name_glob: Some(settings.backup_glob.clone()),
            min_age_secs: Some(settings.backup_days * DAY),
            max_depth: None,
            limit: Some(200),
            files_only: Some(true),
        };
        match fs::find(&settings.backups, &options) {
            Ok(found) => {
                let now = now_secs();
                candidates = found.len();
                candidates_bytes = found.iter().map(|e| e.size).sum();
                report.push_str(&format!(
                    "\nBackups older than {} days under {} ({}): {}\n",
                    settings.backup_days,
                    settings.backups,
                    settings.backup_glob,
                    if found.is_empty() {
                        "none".to_string()
                    } else {
                        format!(
                            "{} candidates, {}",
                            found.len(),
                            human_bytes(candidates_bytes)
                        )
                    }
                ));
                for entry in &found {
                    report.push_str(&format!(
                        "  {:>10}  {}  ({} days old)\n",
                        human_bytes(entry.size),
                        entry.path,
                        now.saturating_sub(entry.modified) / DAY
                    ));
                }
                report::step(
                    "old backups",
                    StepStatus::Ok,
                    &format!("{candidates} candidates"),
                );
            }
            Err(e) => {
                report.push_str(&format!(
                    "\nBackups under {}: {}: {}\n",
                    settings.backups,
                    e.kind(),
                    e.detail()
                ));
                report::step(
                    "old backups",
                    StepStatus::Skipped,
                    &format!("{}: {}", e.kind(), e.detail()),
                );
            }
        }
    }

    // 4. docker system df, then (above the warning threshold) the runbook's quick fix.
    report::step("docker disk usage", StepStatus::Started, "");
    let mut actions = Vec::new();
    match docker::disk_usage() {
        Ok(df) => {
            report.push_str("\nDocker disk usage:\n");
            for (name, section) in [
                ("images", &df.images),
                ("containers", &df.containers),
                ("volumes", &df.volumes),
                ("build cache", &df.build_cache),
            ] {
                report.push_str(&format!(
                    "  {name:<12} {:>4} ({} active)  {:>10}  reclaimable {}\n",
                    section.count,
                    section.active,
                    human_bytes(section.size_bytes),
                    human_bytes(section.reclaimable_bytes)
                ));
            }
            report::step("docker disk usage", StepStatus::Ok, "");
            if worst > Level::Ok {
                prune_docker(&incident, &mut report, &mut actions);
            }
        }
        Err(e) => {
            report.push_str(&format!("\ndocker: {} ({})\n", e.kind(), e.detail()));
            report::step(
                "docker disk usage",
                StepStatus::Skipped,
                &format!("docker: {}", e.kind()),
            );
        }
    }

    if worst > Level::Ok {
        report.push_str(
            "\nNext steps (runbook): `docker system prune`, remove the old backups above, \
             truncate or rotate large logs, then plan more disk or shorter retention.\n",
        );
    }

    let severity = match worst {
        Level::Ok => Severity::Info,
        Level::Warning => Severity::Warning,
        Level::Critical => Severity::Critical,
    };
    let title = match worst {
        Level::Ok => format!("Disk usage fine: {headline}"),
        Level::Warning => format!("Disk usage high: {headline}"),
        Level::Critical => format!("Disk almost full: {headline}"),
    };
    let mut message = Message::new(&title)
        .body(report.trim_end())
        .severity(severity)
        .field("run", &incident.run_id);
    for (usage, _) in &usages {
        message = message.field(usage.path.clone(), format!("{:.1}%", usage.used_percent));
    }
    if candidates > 0 {
        message = message.field(
            "old backups",
            format!("{candidates} ({})", human_bytes(candidates_bytes)),
        );
    }

    let _ = report::attach("disk-report.txt", "text/plain", report.as_bytes());
    actions.push(incident.notify_action(&settings.channel, &message));

    // Pruning frees Docker's share; whether the mount is back under the threshold is a
    // question for the next run (or a human), so a prune alone never claims "resolved".
    let outcome = match worst {
        Level::Ok => Outcome::no_action(title),
        _ => Outcome::escalated(title),
    };
    Ok(outcome.actions(actions))
}

/// `docker system prune` without `-a --volumes`: stopped containers and dangling images only.
/// Needs the operator's `prune` grant; without it the report says so.
fn prune_docker(incident: &Incident, report: &mut String, actions: &mut Vec<String>) {
    let options = docker::PruneOptions {
        containers: true,
        images: true,
        all_images: false,
        build_cache: false,
        volumes: false,
    };
    match docker::prune(options) {
        Ok(_) if incident.dry_run => {
            actions.push("would prune stopped containers and dangling images".into());
        }
        Ok(pruned) => {
            report.push_str(&format!(
                "\nPruned {} stopped containers and {} dangling images: {} reclaimed\n",
                pruned.containers_deleted,
                pruned.images_deleted,
                human_bytes(pruned.bytes_reclaimed)
            ));
            actions.push(format!(
                "pruned docker: {} containers, {} images, {} reclaimed",
                pruned.containers_deleted,
                pruned.images_deleted,
                human_bytes(pruned.bytes_reclaimed)
            ));
        }
        Err(Error::Denied(_)) => {
            report.push_str("\ndocker prune: not granted (grant docker verb `prune` to let this playbook clean up)\n");
        }
        Err(e) => {
            report.push_str(&format!(
                "\ndocker prune failed: {}: {}\n",
                e.kind(),
                e.detail()
            ));
        }
    }
}

fn classify(percent: f64, settings: &Settings) -> Level {
    if percent >= settings.critical {
        Level::Critical
    } else if percent >= settings.warn {
        Level::Warning
    } else {
        Level::Ok
    }
}

fn level_word(level: Level) -> &'static str {
    match level {
        Level::Ok => "ok",
        Level::Warning => "WARNING",
        Level::Critical => "CRITICAL",
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

runbook_sdk::export_playbook!(describe, run);
