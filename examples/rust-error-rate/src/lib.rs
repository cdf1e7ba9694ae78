//! The seeds' "High Error Rate" procedure: count the error lines of the last hour in a log,
//! name the top error kinds, and tell ops when the count is over a threshold. The host greps the
//! file natively; the playbook only looks at the matching lines' timestamps and words.
//! The JavaScript twin is examples/js-error-rate/app.js: same parameters, same outcome.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use runbook_sdk::prelude::*;
use runbook_sdk::report::StepStatus;

/// Matches the host's grep returns at most; the count covers every match.
const MAX_MATCHES: u32 = 10_000;
const SAMPLE_LINES: usize = 5;

fn describe() -> Description {
    Description::new(
        "error-rate",
        "High Error Rate: error lines in the last hour of a log, top error kinds, ops told over a threshold",
    )
    .required_param("path", "The log file; lines start with an RFC 3339 timestamp")
    .param("window-secs", "How far back to count", Some("3600"))
    .param("threshold", "Notify when more error lines than this", Some("50"))
    .param("pattern", "Regex of an error line (case-insensitive)", Some("error|fatal|panic|exception|traceback"))
    .param("top", "How many error kinds to name", Some("5"))
    .param("channel", "Notification channel", Some("ops"))
    .wants(Capability::FsRead)
    .wants(Capability::Notify)
}

fn number(incident: &Incident, name: &str, default: u64) -> Result<u64, Error> {
    Ok(incident.param_as(name)?.unwrap_or(default))
}

fn run(incident: Incident) -> Result<Outcome, Error> {
    let path = incident.param("path").unwrap_or_default().to_string();
    let window = number(&incident, "window-secs", 3600)?;
    let threshold = number(&incident, "threshold", 50)?;
    let top = number(&incident, "top", 5)? as usize;
    let pattern = incident.param("pattern").unwrap_or("error").to_string();
    let channel = incident.param("channel").unwrap_or("ops").to_string();

    report::step("grep", StepStatus::Started, &format!("{pattern} in {path}"));
    let options = fs::GrepOptions {
        case_insensitive: true,
        max_matches: MAX_MATCHES,
        last_lines: None,
    };
    let found = fs::grep(&path, &pattern, options)?;
    report::step(
        "grep",
        StepStatus::Ok,
        &format!("{} matches in {} lines", found.count, found.lines_scanned),
    );
    if found.count > found.matches.len() as u64 {
        warn!(
            "only the first {} matches were looked at",
            found.matches.len()
        );
    }

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (mut recent, mut undated) = (Vec::new(), 0);
    for m in &found.matches {
        match timestamp(&m.line) {
            Some(at) if now - at <= window as i64 => recent.push(m.line.as_str()),
            Some(_) => {}
            None => undated += 1,
        }
    }
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    for line in &recent {
        *kinds.entry(error_kind(line)).or_default() += 1;
    }
    let mut ranked: Vec<(String, u64)> = kinds.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(top);
    let kinds_text = ranked
        .iter()
        .map(|(kind, n)| format!("{kind} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ");

    let count = recent.len() as u64;
    let minutes = window / 60;
    let over = count > threshold;
    let status = if over {
        StepStatus::Warning
    } else {
        StepStatus::Ok
    };
    let detail = format!("{count} in the last {minutes} min, {undated} undated; top: {kinds_text}");
    report::step("window", status, &detail);

    let summary = format!(
        "{count} error lines in the last {minutes} min of {path} (threshold {threshold}){}",
        if kinds_text.is_empty() {
            String::new()
        } else {
            format!("; top: {kinds_text}")
        }
    );
    if !over {
        return Ok(Outcome::no_action(summary));
    }

    let mut body = vec![
        format!("Top error kinds: {kinds_text}"),
        "Latest:".to_string(),
    ];
    let latest = recent.iter().rev().take(SAMPLE_LINES).rev();
    body.extend(latest.map(|l| format!("  {l}")));
    let message = Message::new(format!(
        "High error rate: {count} errors in {minutes} min in {path}"
    ))
    .body(body.join("\n"))
    .severity(Severity::Warning)
    .field("run", &incident.run_id)
    .field("threshold", threshold.to_string());
    let action = incident.notify_action(&channel, &message);
    Ok(Outcome::escalated(summary).action(action))
}

/// The word naming the error: the first one ending in Error or Exception
/// (`ConnectionError:` → ConnectionError), else "other".
fn error_kind(line: &str) -> String {
    line.split_whitespace()
        .skip(1)
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '.'))
        .find(|w| (w.ends_with("Error") || w.ends_with("Exception")) && w.len() > 5)
        .unwrap_or("other")
        .to_string()
}

/// Seconds since the epoch of a line's leading RFC 3339 timestamp
/// (`2026-11-25T14:03:07.123Z`, `…+01:00`); `None` when it has none.
fn timestamp(line: &str) -> Option<i64> {
    let word = line.split_whitespace().next()?;
    let b = word.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let s = word.get(from..to)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let mut rest = &word[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && matches!(rest.as_bytes()[0], b'+' | b'-')
            && rest.as_bytes()[3] == b':' =>
        {
            let hours: i64 = rest[1..3].parse().ok()?;
            let minutes: i64 = rest[4..6].parse().ok()?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return None,
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

runbook_sdk::export_playbook!(describe, run);
