//! The seeds' "Backup Verification Procedure (daily)": the newest backup matching a glob is
//! recent, not much smaller than the one before it, and starts like the archive its name says
//! (gzip, zstd or tar header read through fs-read); retention: how many backups are older than
//! M days. What fails is escalated; nothing is deleted or restored.

use std::time::{SystemTime, UNIX_EPOCH};

use runbook_sdk::fs::{Entry, FindOptions};
use runbook_sdk::human_bytes;
use runbook_sdk::prelude::*;
use runbook_sdk::report::StepStatus;

const HOUR: u64 = 3_600;
const DAY: u64 = 86_400;
/// Most backups looked at: far more than any retention keeps, a bound on the walk.
const MAX_BACKUPS: u32 = 1_000;
/// A tar header block; also enough for the gzip and zstd magic.
const HEADER_BYTES: u32 = 512;

fn describe() -> Description {
    Description::new(
        "backup-verify",
        "Backup Verification: the newest backup is recent, not much smaller than the previous one, a valid archive; old backups counted",
    )
    .param("dir", "Directory holding the backups (searched recursively)", Some("/var/backups"))
    .param("glob", "File-name pattern of the backups", Some("*.tar.gz"))
    .param("max-age-hours", "The newest backup must be younger than this", Some("26"))
    .param("min-size-percent", "The newest backup must be at least this % of the previous one", Some("50"))
    .param("retention-days", "Backups older than this are counted as past retention", Some("30"))
    .param("channel", "Notification channel for the summary", Some("ops"))
    .wants(Capability::FsRead)
    .wants(Capability::Notify)
}

struct Settings {
    dir: String,
    glob: String,
    max_age_hours: u64,
    min_size_percent: f64,
    retention_days: u64,
    channel: String,
}

impl Settings {
    fn from(incident: &Incident) -> Result<Self, Error> {
        let text = |name: &str, default: &str| {
            let value = incident
                .param(name)
                .map(str::trim)
                .filter(|v| !v.is_empty());
            value.unwrap_or(default).to_string()
        };
        let settings = Settings {
            dir: text("dir", "/var/backups"),
            glob: text("glob", "*.tar.gz"),
            max_age_hours: incident.param_as("max-age-hours")?.unwrap_or(26),
            min_size_percent: incident.param_as("min-size-percent")?.unwrap_or(50.0),
            retention_days: incident.param_as("retention-days")?.unwrap_or(30),
            channel: text("channel", "ops"),
        };
        if !(0.0..=100.0).contains(&settings.min_size_percent) {
            return Err(Error::Invalid("min-size-percent must be 0-100".into()));
        }
        if settings.max_age_hours == 0 {
            return Err(Error::Invalid("max-age-hours must be at least 1".into()));
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

impl Level {
    fn word(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "WARNING",
            Level::Critical => "CRITICAL",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Format {
    Gzip,
    Zstd,
    Tar,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Gzip => "gzip",
            Format::Zstd => "zstd",
            Format::Tar => "tar",
        }
    }

    /// What the file name promises: the outermost layer (`.tar.gz` is gzip).
    fn from_name(name: &str) -> Option<Format> {
        let name = name.to_ascii_lowercase();
        let ends = |suffixes: &[&str]| suffixes.iter().any(|s| name.ends_with(s));
        if ends(&[".gz", ".tgz"]) {
            Some(Format::Gzip)
        } else if ends(&[".zst", ".zstd", ".tzst"]) {
            Some(Format::Zstd)
        } else if ends(&[".tar"]) {
            Some(Format::Tar)
        } else {
            None
        }
    }

    /// What the first bytes are.
    fn sniff(header: &[u8]) -> Option<Format> {
        if header.starts_with(&[0x1f, 0x8b]) {
            Some(Format::Gzip)
        } else if header.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Format::Zstd)
        } else if header.len() >= 262 && &header[257..262] == b"ustar" {
            Some(Format::Tar)
        } else {
            None
        }
    }
}

/// Whether the header is a well-formed start of `format`, and if not, why.
fn check_header(format: Format, header: &[u8], size: u64) -> Result<(), String> {
    match format {
        // ID1 ID2 CM(8 = deflate) FLG MTIME(4) XFL OS, and an 8-byte trailer after the data.
        Format::Gzip if header.len() < 10 || size < 18 => {
            Err(format!("{size} bytes is shorter than an empty gzip stream"))
        }
        Format::Gzip if header[2] != 8 => Err(format!("gzip method {} is not deflate", header[2])),
        Format::Gzip if header[3] & 0xe0 != 0 => Err("gzip reserved flags are set".into()),
        // Magic(4) then a frame header of at least 2 bytes, and a block.
        Format::Zstd if size < 9 => Err(format!("{size} bytes is shorter than a zstd frame")),
        Format::Zstd if header[4] & 0x08 != 0 => Err("zstd reserved frame bit is set".into()),
        Format::Tar => check_tar(header, size),
        _ => Ok(()),
    }
}

/// A tar archive is 512-byte blocks; its first header carries a checksum of itself.
fn check_tar(header: &[u8], size: u64) -> Result<(), String> {
    if header.len() < 512 || !size.is_multiple_of(512) {
        return Err(format!(
            "{size} bytes is not a whole number of 512-byte tar blocks"
        ));
    }
    let field = std::str::from_utf8(&header[148..156]).unwrap_or("");
    let field = field.trim_matches(|c: char| c == '\0' || c == ' ');
    let stored = u32::from_str_radix(field, 8)
        .map_err(|_| format!("tar checksum field {field:?} is not octal"))?;
    // The checksum is the byte sum with the checksum field itself counted as spaces.
    let sum: u32 = (header[..512].iter().enumerate())
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                *b as u32
            }
        })
        .sum();
    if sum != stored {
        return Err(format!(
            "tar header checksum {stored} does not match its bytes ({sum})"
        ));
    }
    Ok(())
}

fn why(e: &Error) -> String {
    format!("{}: {}", e.kind(), e.detail())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn age_text(secs: u64) -> String {
    if secs >= 2 * DAY {
        format!("{} days", secs / DAY)
    } else {
        format!("{:.1} hours", secs as f64 / HOUR as f64)
    }
}

struct Checks {
    lines: Vec<(Level, String)>,
}

impl Checks {
    /// One check, also as a step of the run's timeline.
    fn add(&mut self, step: &str, level: Level, line: String) {
        let status = match level {
            Level::Ok => StepStatus::Ok,
            Level::Warning => StepStatus::Warning,
            Level::Critical => StepStatus::Failed,
        };
        report::step(step, status, &line);
        self.lines.push((level, line));
    }
}

fn run(incident: Incident) -> Result<Outcome, Error> {
    let settings = Settings::from(&incident)?;
    let now = now_secs();
    let mut checks = Checks { lines: Vec::new() };
    let mut report = String::new();

    // 1. ls -t <dir>/<glob>: a refused or missing directory fails the run with its reason.
    report::step(
        "find backups",
        StepStatus::Started,
        &format!("{} {}", settings.dir, settings.glob),
    );
    let options = FindOptions {
        name_glob: Some(settings.glob.clone()),
        min_age_secs: None,
        max_depth: None,
        limit: Some(MAX_BACKUPS),
        files_only: Some(true),
    };
    let found = fs::find_entries(&settings.dir, &options).inspect_err(|e| {
        report::step("find backups", StepStatus::Failed, &why(e));
    })?;
    let mut backups: Vec<Entry> = found.entries;
    // Newest first; equal times by name so the order does not depend on the walk.
    backups.sort_by(|a, b| {
        b.modified
            .cmp(&a.modified)
            .then_with(|| b.path.cmp(&a.path))
    });
    let cut = if found.truncated {
        " (walk cut short: a lower bound)"
    } else {
        ""
    };
    report::step(
        "find backups",
        StepStatus::Ok,
        &format!("{} found{cut}", backups.len()),
    );
    report.push_str(&format!(
        "Backups matching {} under {}: {}{cut}\n",
        settings.glob,
        settings.dir,
        backups.len()
    ));
    for entry in backups.iter().take(10) {
        report.push_str(&format!(
            "  {:>10}  {}  ({} old)\n",
            human_bytes(entry.size),
            entry.path,
            age_text(now.saturating_sub(entry.modified))
        ));
    }
    if backups.len() > 10 {
        report.push_str(&format!("  … and {} older\n", backups.len() - 10));
    }

    if found.truncated {
        // The newest backup may be among those the walk did not reach.
        let line = format!(
            "the walk under {} was cut short: narrow dir or glob",
            settings.dir
        );
        checks.add("find backups", Level::Warning, line);
    }
    if let Some(newest) = backups.first() {
        check_newest(newest, backups.get(1), &settings, now, &mut checks);
    } else {
        let line = format!(
            "no backup matching {} under {}",
            settings.glob, settings.dir
        );
        checks.add("newest backup", Level::Critical, line);
    }

    // Retention: backups the rotation should have removed by now.
    let old: Vec<&Entry> = (backups.iter())
        .filter(|e| now.saturating_sub(e.modified) > settings.retention_days * DAY)
        .collect();
    let old_bytes: u64 = old.iter().map(|e| e.size).sum();
    let (level, line) = match old.len() {
        0 => (
            Level::Ok,
            format!(
                "retention: none older than {} days",
                settings.retention_days
            ),
        ),
        n => (
            Level::Warning,
            format!(
                "retention: {n} backups older than {} days ({}), the oldest {} old",
                settings.retention_days,
                human_bytes(old_bytes),
                age_text(now.saturating_sub(old.last().map_or(now, |e| e.modified)))
            ),
        ),
    };
    checks.add("retention", level, line);

    let worst =
        (checks.lines.iter().map(|(l, _)| *l)).fold(Level::Ok, |a, b| if b > a { b } else { a });
    let failures: Vec<&str> = (checks.lines.iter())
        .filter(|(l, _)| *l > Level::Ok)
        .map(|(_, s)| s.as_str())
        .collect();
    report.push_str("\nChecks:\n");
    for (level, line) in &checks.lines {
        report.push_str(&format!("  {:<8} {line}\n", level.word()));
    }
    if worst > Level::Ok {
        report.push_str(
            "\nNext steps (runbook): check the backup job's last run and logs, run it by hand, \
             then test a restore in staging.\n",
        );
    }
    if let Err(e) = report::attach("backup-report.txt", "text/plain", report.as_bytes()) {
        warn!("attach backup-report.txt: {}", why(&e));
    }

    let title = match worst {
        Level::Ok => format!("Backups verified: {}", settings.dir),
        _ => format!(
            "Backup problems under {}: {}",
            settings.dir,
            failures.join("; ")
        ),
    };
    let severity = match worst {
        Level::Ok => Severity::Info,
        Level::Warning => Severity::Warning,
        Level::Critical => Severity::Critical,
    };
    let mut message = Message::new(&title)
        .body(report.trim_end())
        .severity(severity)
        .field("run", &incident.run_id)
        .field("backups", backups.len().to_string());
    if let Some(newest) = backups.first() {
        message = message.field("newest", newest.path.clone());
    }
    let action = incident.notify_action(&settings.channel, &message);
    let outcome = match worst {
        Level::Ok => Outcome::no_action(title),
        _ => Outcome::escalated(title),
    };
    Ok(outcome.action(action))
}

/// Age, size against the previous backup, and the archive header of the newest backup.
fn check_newest(
    newest: &Entry,
    previous: Option<&Entry>,
    settings: &Settings,
    now: u64,
    checks: &mut Checks,
) {
    let age = now.saturating_sub(newest.modified);
    let name = &newest.path;
    let (level, line) = if age > settings.max_age_hours * HOUR {
        let limit = settings.max_age_hours;
        (
            Level::Critical,
            format!(
                "newest {name} is {} old, older than {limit} hours",
                age_text(age)
            ),
        )
    } else {
        (Level::Ok, format!("newest {name} is {} old", age_text(age)))
    };
    checks.add("newest backup", level, line);

    let size = human_bytes(newest.size);
    let (level, line) = match previous {
        _ if newest.size == 0 => (Level::Critical, format!("newest {name} is empty")),
        Some(prev)
            if (newest.size as f64) < prev.size as f64 * settings.min_size_percent / 100.0 =>
        {
            let percent = newest.size as f64 * 100.0 / prev.size as f64;
            (
                Level::Critical,
                format!(
                    "newest {name} is {size}, {percent:.0}% of the previous {} ({}): below {}%",
                    prev.path,
                    human_bytes(prev.size),
                    settings.min_size_percent
                ),
            )
        }
        Some(prev) => (
            Level::Ok,
            format!("size {size}, previous {}", human_bytes(prev.size)),
        ),
        None => (
            Level::Ok,
            format!("size {size}, no previous backup to compare"),
        ),
    };
    checks.add("size", level, line);

    let (level, line) = match fs::read(name, 0, HEADER_BYTES) {
        Ok(header) => {
            let expected = Format::from_name(name);
            let actual = Format::sniff(&header);
            match (expected, actual) {
                (Some(want), Some(got)) if want != got => (
                    Level::Critical,
                    format!(
                        "header of {name} is {}, its name says {}",
                        got.name(),
                        want.name()
                    ),
                ),
                (Some(want), None) => (
                    Level::Critical,
                    format!(
                        "header of {name} is not {} (starts {})",
                        want.name(),
                        hex(&header)
                    ),
                ),
                (None, None) => (
                    Level::Warning,
                    format!(
                        "header of {name}: neither gzip, zstd nor tar (starts {})",
                        hex(&header)
                    ),
                ),
                (_, Some(got)) => match check_header(got, &header, newest.size) {
                    Ok(()) => (Level::Ok, format!("header: valid {}", got.name())),
                    Err(bad) => (Level::Critical, format!("header of {name}: {bad}")),
                },
            }
        }
        Err(e) => (
            Level::Critical,
            format!("header of {name}: not read ({})", why(&e)),
        ),
    };
    checks.add("archive header", level, line);
}

/// The first bytes in hex, for a report line.
fn hex(bytes: &[u8]) -> String {
    let shown: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    if shown.is_empty() {
        "empty".into()
    } else {
        shown.join(" ")
    }
}

runbook_sdk::export_playbook!(describe, run);

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_header() -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..5].copy_from_slice(b"a.txt");
        h[257..263].copy_from_slice(b"ustar\0");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| *b as u32).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }

    #[test]
    fn formats_by_name_and_magic() {
        assert_eq!(Format::from_name("/b/db-1.tar.GZ"), Some(Format::Gzip));
        assert_eq!(Format::from_name("x.tzst"), Some(Format::Zstd));
        assert_eq!(Format::from_name("x.tar"), Some(Format::Tar));
        assert_eq!(Format::from_name("x.sql"), None);
        assert_eq!(Format::sniff(&[0x1f, 0x8b, 8, 0]), Some(Format::Gzip));
        assert_eq!(
            Format::sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Some(Format::Zstd)
        );
        assert_eq!(Format::sniff(&tar_header()), Some(Format::Tar));
        assert_eq!(Format::sniff(b"PK\x03\x04"), None);
    }

    #[test]
    fn tar_checksum_is_verified() {
        let good = tar_header();
        assert_eq!(check_tar(&good, 1024), Ok(()));
        assert!(check_tar(&good, 1000).unwrap_err().contains("512-byte"));
        let mut bad = good.clone();
        bad[0] = b'b';
        assert!(check_tar(&bad, 1024).unwrap_err().contains("checksum"));
    }
}
