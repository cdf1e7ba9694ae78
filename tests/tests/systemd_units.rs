//! The service units in examples/systemd/ as systemd itself judges them: `systemd-analyze
//! verify` without a single warning (unknown keys and bad values are only warnings there), the
//! man pages they name installed from `host man`, and an exposure score from `systemd-analyze
//! security` that keeps the hardening from being dropped quietly.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use runbook_tests::{Sandbox, host_bin};

const UNITS: &[&str] = &[
    "runbook-host.service",
    "runbook-agent.service",
    "runbook-agent-tls.service",
];

/// `systemd-analyze security`'s overall exposure, 0–100 (it prints a tenth of it); the units
/// score 16. Above 20 something that mattered was taken out.
const MAX_EXPOSURE: u32 = 20;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/systemd")
}

/// The units copied into the sandbox with ExecStart on the built host (verify checks that the
/// binary exists), and host's man pages where `man` looks (verify checks Documentation=).
fn install(sandbox: &Sandbox) -> PathBuf {
    let man1 = sandbox.path().join("man/man1");
    let written = sandbox.host(&["man", "--dir", man1.to_str().unwrap()]);
    assert_eq!(written.code, 0, "{}", written.stderr);
    let units = sandbox.path().join("units");
    std::fs::create_dir_all(&units).unwrap();
    for unit in UNITS {
        let text = std::fs::read_to_string(examples().join(unit)).unwrap();
        assert!(text.contains("/usr/local/bin/runbook-host "), "{unit}");
        let text = text.replace(
            "/usr/local/bin/runbook-host ",
            &format!("{} ", host_bin().display()),
        );
        std::fs::write(units.join(unit), text).unwrap();
    }
    units
}

fn analyze(sandbox: &Sandbox, units: &Path, args: &[&str]) -> Output {
    Command::new("systemd-analyze")
        .args(args)
        .current_dir(units)
        .env("MANPATH", sandbox.path().join("man"))
        .output()
        .expect("systemd-analyze (Debian's systemd package)")
}

#[test]
fn units_verify_without_a_warning() {
    let sandbox = Sandbox::new();
    let units = install(&sandbox);
    let mut args = vec!["verify"];
    args.extend(UNITS);
    let verified = analyze(&sandbox, &units, &args);
    let said = String::from_utf8_lossy(&verified.stderr);
    assert!(
        verified.status.success() && said.trim().is_empty(),
        "systemd-analyze verify:\n{said}"
    );

    // The same check catches a misspelt key (a warning only, exit 0), so a pass above means
    // something.
    let unit = units.join("runbook-host.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    std::fs::write(
        &unit,
        text.replace("ProtectSystem=strict", "ProtectSytem=strict"),
    )
    .unwrap();
    let misspelt = analyze(&sandbox, &units, &["verify", "runbook-host.service"]);
    assert!(
        String::from_utf8_lossy(&misspelt.stderr).contains("Unknown key 'ProtectSytem'"),
        "{misspelt:?}"
    );
}

#[test]
fn units_keep_their_hardening() {
    let sandbox = Sandbox::new();
    let units = install(&sandbox);
    for unit in UNITS {
        let text = std::fs::read_to_string(units.join(unit)).unwrap();
        for line in [
            "DynamicUser=yes",
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "SupplementaryGroups=docker",
            "LoadCredential=",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(line)),
                "{unit} lacks {line}"
            );
        }
        // `host serve` reloads on SIGHUP; the agent does not (an ExecReload= would promise it).
        assert_eq!(
            text.contains("\nExecReload=/bin/kill -HUP $MAINPID"),
            *unit == "runbook-host.service",
            "{unit}"
        );
        let threshold = format!("--threshold={MAX_EXPOSURE}");
        let scored = analyze(
            &sandbox,
            &units,
            &["security", "--offline=yes", &threshold, unit],
        );
        let report = String::from_utf8_lossy(&scored.stdout);
        assert!(
            scored.status.success(),
            "{unit} is more exposed than {MAX_EXPOSURE}/100:\n{report}"
        );
    }
    let serve = std::fs::read_to_string(units.join("runbook-host.service")).unwrap();
    assert!(serve.contains("StateDirectory=runbook-host"));
    let agent = std::fs::read_to_string(units.join("runbook-agent.service")).unwrap();
    assert!(agent.contains("--token-file ${CREDENTIALS_DIRECTORY}/agent.token"));
}

/// Every flag a unit passes exists in that subcommand's `--help` (a renamed flag would leave
/// the service failing at start, which `systemd-analyze verify` cannot see).
#[test]
fn units_pass_only_flags_the_host_knows() {
    for unit in UNITS {
        let text = std::fs::read_to_string(examples().join(unit)).unwrap();
        let exec = text
            .split("ExecStart=")
            .nth(1)
            .unwrap()
            .split("\n\n")
            .next()
            .unwrap()
            .replace("\\\n", " ");
        let mut words = exec.split_whitespace().skip(1);
        let subcommand = words.next().unwrap();
        let help = Command::new(host_bin())
            .args([subcommand, "--help"])
            .output()
            .unwrap();
        assert!(help.status.success(), "{unit}: host {subcommand} --help");
        let help = String::from_utf8_lossy(&help.stdout);
        for flag in words.filter(|w| w.starts_with("--")) {
            let flag = flag.split('=').next().unwrap();
            assert!(
                help.contains(&format!("{flag} ")),
                "{unit}: host {subcommand} has no {flag}"
            );
        }
    }
}
