//! `host run backup-verify` on real backup files the test writes: fresh, stale, truncated,
//! corrupt, empty, with gzip, zstd and tar headers, and old ones past retention.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use filetime::FileTime;
use runbook_tests::{Sandbox, calls};

const KIB: usize = 1 << 10;
const HOUR: u64 = 3_600;
const DAY: u64 = 86_400;

/// A gzip member header (deflate, no flags) followed by `len` bytes of "data".
fn gzip(len: usize) -> Vec<u8> {
    let mut bytes = vec![0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03];
    bytes.resize(len.max(18), 0x5a);
    bytes
}

/// A zstd frame header: magic, then a descriptor with Single_Segment and Checksum set.
fn zstd(len: usize) -> Vec<u8> {
    let mut bytes = vec![0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x10];
    bytes.resize(len, 0x11);
    bytes
}

/// A ustar archive: one header block with its checksum, then zero blocks up to `len`.
fn tar(len: usize) -> Vec<u8> {
    let mut header = vec![0u8; 512];
    header[..9].copy_from_slice(b"dump.sql\0");
    header[100..108].copy_from_slice(b"0000644\0");
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|b| *b as u32).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    header.resize(len, 0);
    header
}

/// Writes `dir/name` and sets its modification time `age` ago.
fn backup(sandbox: &Sandbox, dir: &str, name: &str, bytes: Vec<u8>, age: Duration) -> PathBuf {
    let path = sandbox.write(&format!("{dir}/{name}"), bytes);
    let when = SystemTime::now() - age;
    filetime::set_file_mtime(&path, FileTime::from_system_time(when)).unwrap();
    path
}

/// (file name, contents, age in hours)
type Backup = (&'static str, Vec<u8>, u64);

fn hours(h: u64) -> Duration {
    Duration::from_secs(h * HOUR)
}

/// A sandbox whose host.toml grants backup-verify the whole sandbox.
fn granted() -> Sandbox {
    let sandbox = Sandbox::new();
    let root = sandbox.path().canonicalize().unwrap();
    sandbox.write(
        "host.toml",
        format!(
            "[plugins.backup-verify.grants]\nfs-read = [{:?}]\nnotify = [\"ops\"]\n",
            root.display().to_string()
        ),
    );
    sandbox
}

fn verify(sandbox: &Sandbox, dir: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let dir = format!("dir={}", sandbox.path().join(dir).display());
    let mut args = vec!["run", "backup-verify", "--json", "-p", &dir];
    args.extend_from_slice(extra);
    let run = sandbox.host(&args);
    (run.code, run.json())
}

fn report(run: &serde_json::Value) -> String {
    let artifacts = run["artifacts"].as_array().unwrap();
    let report = artifacts.iter().find(|a| a["name"] == "backup-report.txt");
    let report = report.unwrap_or_else(|| panic!("no backup-report.txt: {run:#}"));
    report["text"].as_str().unwrap().to_string()
}

/// The check line starting with `level` that mentions `text`.
fn check(report: &str, level: &str, text: &str) {
    let found = report
        .lines()
        .map(str::trim)
        .any(|l| l.starts_with(level) && l.contains(text));
    assert!(found, "no {level} line with {text:?} in:\n{report}");
}

fn severity(run: &serde_json::Value) -> &str {
    let timeline = run["timeline"].as_array().unwrap();
    let note = timeline.iter().find(|e| e["event"] == "notification");
    note.unwrap_or_else(|| panic!("no notification: {run:#}"))["severity"]
        .as_str()
        .unwrap()
}

fn canonical(path: &Path) -> String {
    path.canonicalize().unwrap().display().to_string()
}

#[test]
fn fresh_complete_backups_pass_with_one_info_summary() {
    let sandbox = granted();
    backup(&sandbox, "b", "db-1.tar.gz", gzip(100 * KIB), hours(50));
    backup(&sandbox, "b", "db-2.tar.gz", gzip(100 * KIB), hours(26));
    let newest = backup(&sandbox, "b", "db-3.tar.gz", gzip(98 * KIB), hours(2));
    backup(
        &sandbox,
        "b",
        "notes.txt",
        b"not a backup".to_vec(),
        hours(0),
    );

    let (code, run) = verify(&sandbox, "b", &[]);
    assert_eq!(
        (code, run["status"].as_str()),
        (0, Some("no-action")),
        "{run:#}"
    );
    let report = report(&run);
    check(
        &report,
        "ok",
        &format!("newest {} is 2.0 hours old", canonical(&newest)),
    );
    check(&report, "ok", "size 98.0 KiB, previous 100.0 KiB");
    check(&report, "ok", "header: valid gzip");
    check(&report, "ok", "retention: none older than 30 days");
    assert!(
        report.contains("Backups matching *.tar.gz under"),
        "{report}"
    );
    assert!(!report.contains("notes.txt"), "{report}");
    assert_eq!(severity(&run), "info");
    // Only the newest backup's first 512 bytes were read.
    let reads = calls(&run, "fs-read", "read");
    assert_eq!(reads.len(), 1, "{run:#}");
    assert_eq!(reads[0]["args"]["max-bytes"], 512, "{:#}", reads[0]);
}

#[test]
fn stale_truncated_corrupt_and_empty_backups_are_critical() {
    let sandbox = granted();
    let cases: [(&str, Vec<Backup>, &str); 5] = [
        (
            "stale",
            vec![("a.tar.gz", gzip(KIB), 60), ("b.tar.gz", gzip(KIB), 30)],
            "is 30.0 hours old, older than 26 hours",
        ),
        (
            "truncated",
            vec![
                ("a.tar.gz", gzip(100 * KIB), 25),
                ("b.tar.gz", gzip(10 * KIB), 1),
            ],
            "is 10.0 KiB, 10% of the previous",
        ),
        (
            "corrupt",
            vec![
                ("a.tar.gz", gzip(KIB), 25),
                ("b.tar.gz", b"PK\x03\x04rest of a zip".repeat(60), 1),
            ],
            "is not gzip (starts 50 4b 03 04",
        ),
        (
            "mislabelled",
            vec![("b.tar.gz", zstd(KIB), 1)],
            "is zstd, its name says gzip",
        ),
        (
            "empty",
            vec![("a.tar.gz", gzip(KIB), 25), ("b.tar.gz", Vec::new(), 1)],
            "is empty",
        ),
    ];
    for (dir, files, expected) in cases {
        for (name, bytes, age) in files {
            backup(&sandbox, dir, name, bytes, hours(age));
        }
        let (code, run) = verify(&sandbox, dir, &[]);
        assert_eq!(
            (code, run["status"].as_str()),
            (3, Some("escalated")),
            "{dir}: {run:#}"
        );
        check(&report(&run), "CRITICAL", expected);
        assert_eq!(severity(&run), "critical", "{dir}");
        let summary = run["summary"].as_str().unwrap();
        assert!(
            summary.starts_with("Backup problems under") && summary.contains(expected),
            "{summary}"
        );
    }
}

#[test]
fn zstd_and_tar_headers_are_checked_by_their_own_rules() {
    let sandbox = granted();
    backup(&sandbox, "zst", "db.tar.zst", zstd(4 * KIB), hours(1));
    let (code, run) = verify(&sandbox, "zst", &["-p", "glob=*.tar.zst"]);
    assert_eq!(code, 0, "{run:#}");
    check(&report(&run), "ok", "header: valid zstd");

    backup(&sandbox, "tar", "db.tar", tar(10 * 512), hours(1));
    let (code, run) = verify(&sandbox, "tar", &["-p", "glob=*.tar"]);
    assert_eq!(code, 0, "{run:#}");
    check(&report(&run), "ok", "header: valid tar");

    let mut flipped = tar(10 * 512);
    flipped[0] = b'x';
    backup(&sandbox, "bad-tar", "db.tar", flipped, hours(1));
    let (code, run) = verify(&sandbox, "bad-tar", &["-p", "glob=*.tar"]);
    assert_eq!(code, 3, "{run:#}");
    check(&report(&run), "CRITICAL", "does not match its bytes");

    // Cut mid-block: a tar archive is whole 512-byte blocks.
    backup(&sandbox, "cut-tar", "db.tar", tar(3000), hours(1));
    let (code, run) = verify(&sandbox, "cut-tar", &["-p", "glob=*.tar"]);
    assert_eq!(code, 3, "{run:#}");
    check(
        &report(&run),
        "CRITICAL",
        "3000 bytes is not a whole number of 512-byte tar blocks",
    );
}

#[test]
fn retention_counts_backups_older_than_m_days_as_a_warning() {
    let sandbox = granted();
    for (name, age) in [
        ("d0.tar.gz", hours(1)),
        ("d10.tar.gz", hours(10 * 24)),
        ("d35.tar.gz", hours(35 * 24)),
        ("old/d40.tar.gz", hours(40 * 24)),
        ("d60.tar.gz", Duration::from_secs(60 * DAY)),
    ] {
        backup(&sandbox, "r", name, gzip(KIB), age);
    }
    let (code, run) = verify(&sandbox, "r", &["-p", "retention-days=30"]);
    assert_eq!(
        (code, run["status"].as_str()),
        (3, Some("escalated")),
        "{run:#}"
    );
    check(
        &report(&run),
        "WARNING",
        "retention: 3 backups older than 30 days (3.0 KiB), the oldest 60 days old",
    );
    check(&report(&run), "ok", "header: valid gzip");
    assert_eq!(severity(&run), "warning");
}

#[test]
fn missing_backups_ungranted_dirs_and_dry_runs() {
    let sandbox = granted();
    std::fs::create_dir_all(sandbox.path().join("none")).unwrap();
    let (code, run) = verify(&sandbox, "none", &["--dry-run"]);
    assert_eq!(code, 3, "{run:#}");
    check(
        &report(&run),
        "CRITICAL",
        "no backup matching *.tar.gz under",
    );
    let sends = calls(&run, "notify", "send");
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0]["result"], "would");
    assert_eq!(run["actions"][0], "would notify ops");

    // The built-in grant is /var/backups only: anywhere else is refused, with the reason.
    let ungranted = Sandbox::new();
    backup(&ungranted, "b", "db.tar.gz", gzip(KIB), hours(1));
    let (code, run) = verify(&ungranted, "b", &[]);
    assert_eq!(
        (code, run["status"].as_str()),
        (1, Some("failed")),
        "{run:#}"
    );
    let reason = run["reason"].as_str().unwrap();
    assert!(
        reason.contains("denied") && reason.contains("outside the granted fs-read roots"),
        "{reason}"
    );

    let (code, run) = verify(&sandbox, "none", &["-p", "min-size-percent=150"]);
    assert_eq!(code, 1, "{run:#}");
    assert!(
        run["reason"]
            .as_str()
            .unwrap()
            .contains("min-size-percent must be 0-100")
    );
}
