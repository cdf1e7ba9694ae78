//! fs-read grep counts what GNU `grep -c` counts: the security playbook's patterns over a
//! generated log (mixed case, CRLF lines, a 100 KiB line, no final newline), through real
//! `host run` processes, compared with GNU grep run here on the same file.

use std::fmt::Write as _;
use std::process::Command;

use runbook_tests::Sandbox;

/// The security playbook's categories (plugins/security), as `grep -E` also reads them.
const PATTERNS: &[&str] = &[
    r"failed password for|authentication failure|failed login|login failed",
    r"accepted (password|publickey|keyboard-interactive) for|login succeeded|login successful",
    r"unauthorized|forbidden|permission denied|(^|\s)40[13](\s|$)",
    r"rate.?limit|too many requests|(^|\s)429(\s|$)",
    r"sudo(\[[0-9]+\])?:.*command=",
];

const FRAGMENTS: &[&str] = &[
    "sshd[812]: Failed password for root from 10.0.0.7 port 22",
    "sshd[812]: FAILED PASSWORD FOR invalid user admin",
    "pam_unix(sshd:auth): authentication failure; rhost=10.1.1.1",
    "sshd[9]: Accepted publickey for deploy from 10.0.0.2",
    "sshd[9]: accepted keyboard-interactive for ops",
    "web: GET /admin 403 forbidden",
    "web: GET /api 401 ",
    "web: GET /img/401.png 200",
    "web: status 429",
    "web: Rate-Limit exceeded for 1.2.3.4",
    "web: ratelimit hit",
    "web: Too Many Requests",
    "sudo[77]:    alice : TTY=pts/0 ; PWD=/home ; USER=root ; COMMAND=/bin/sh",
    "sudo: bob : command not allowed",
    "kernel: Permission Denied on /dev/sda",
    "app: login succeeded for carol",
    "app: всё хорошо, ничего не найдено",
    "cron[1]: (root) CMD (run-parts /etc/cron.hourly)",
];

fn generated_log() -> String {
    let mut log = String::new();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..60_000 {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let fragment = FRAGMENTS[(seed >> 33) as usize % FRAGMENTS.len()];
        let ending = if i % 97 == 0 { "\r\n" } else { "\n" };
        write!(
            log,
            "Nov 25 23:{:02}:{:02} host {fragment}{ending}",
            i % 60,
            i % 59
        )
        .unwrap();
        if i == 30_000 {
            // Past the 64 KiB the old line loop looked at.
            log.push_str(&"x".repeat(100 << 10));
            log.push_str(" permission denied\n");
        }
    }
    log.push_str("tail line without newline: 403");
    log
}

fn gnu_grep_count(pattern: &str, file: &std::path::Path) -> u64 {
    let out = Command::new("grep")
        .args(["-ciE", pattern])
        .arg(file)
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("running GNU grep");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn grep_counts_match_gnu_grep_c_with_the_security_patterns() {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("hostile");
    let log = sandbox.write("root/auth.log", generated_log());
    let root = sandbox.path().join("root");
    sandbox.write(
        "host.toml",
        format!(
            "plugin-dirs = [\"plugins\"]\n[plugins.hostile.grants]\nfs-read = [\"{}\"]\n",
            root.display()
        ),
    );
    let lines = generated_log().bytes().filter(|&b| b == b'\n').count() as u64 + 1;
    for pattern in PATTERNS {
        let expected = gnu_grep_count(pattern, &log);
        assert!(expected > 0, "{pattern}: the log should hold matches");
        let target = format!("target={}|{pattern}", log.display());
        let run = sandbox.host(&[
            "run",
            "hostile",
            "-p",
            "case=fsperf-grep",
            "-p",
            &target,
            "--json",
        ]);
        let json = run.json();
        let summary = json["summary"].as_str().unwrap_or_default();
        assert_eq!(
            summary.split(' ').next(),
            Some(expected.to_string().as_str()),
            "{pattern}: host counted `{summary}`, GNU grep -c {expected}; {json:#}"
        );
        assert_eq!(
            summary.split(' ').nth(1),
            Some(lines.to_string().as_str()),
            "{pattern}: lines scanned; {json:#}"
        );
    }
}

/// The searcher buffers a whole line: one past its 16 MiB limit is refused as `invalid`,
/// naming the limit, instead of growing the host's memory with the file.
#[test]
fn a_line_longer_than_the_searchers_limit_is_refused_not_buffered() {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("hostile");
    let log = sandbox.write("root/one-line.log", "y".repeat(17 << 20));
    sandbox.write(
        "host.toml",
        format!(
            "plugin-dirs = [\"plugins\"]\n[plugins.hostile.grants]\nfs-read = [\"{}\"]\n",
            sandbox.path().join("root").display()
        ),
    );
    let target = format!("target={}|x", log.display());
    let run = sandbox.host(&[
        "run",
        "hostile",
        "-p",
        "case=fsperf-grep",
        "-p",
        &target,
        "--json",
    ]);
    let json = run.json();
    let reason = json["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("invalid") && reason.contains("a line longer than"),
        "{json:#}"
    );
}
