//! fs-read `largest-many`: several paths in one call, each resolved and grant-checked on its own
//! exactly like `largest` (outside the grant, `..` and symlink escapes, the host's own state,
//! over-long and missing paths), answered in order; more than 32 paths refused as `invalid`.
//! Real `host run --json` processes of the hostile playbook against real directory trees.

use std::process::Command;

use runbook_tests::{Run, Sandbox, calls};
use serde_json::Value;

/// A sandbox granting the hostile playbook fs-read on its `root/` only.
fn sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("hostile");
    sandbox.write("root/a/x/big.bin", vec![1u8; 256 << 10]);
    sandbox.write("root/a/y/small.bin", vec![2u8; 8 << 10]);
    sandbox.write("root/b/only.bin", vec![3u8; 64 << 10]);
    let root = sandbox.path().join("root");
    sandbox.write(
        "host.toml",
        format!(
            "plugin-dirs = [\"plugins\"]\n[plugins.hostile.grants]\nfs-read = [{:?}]\n",
            root.display().to_string()
        ),
    );
    sandbox
}

fn run_case(sandbox: &Sandbox, case: &str, target: &str) -> Value {
    let run: Run = sandbox.host(&[
        "run",
        "hostile",
        "-p",
        &format!("case={case}"),
        "-p",
        &format!("target={target}"),
        "--json",
    ]);
    checked(run)
}

/// `run_case` in a `host run` allowed `open_files` file descriptors.
fn run_case_limited(sandbox: &Sandbox, case: &str, target: &str, open_files: u32) -> Value {
    let output = Command::new("sh")
        .args([
            "-c",
            &format!(r#"ulimit -n {open_files} && exec "$0" run hostile -p "case=$1" -p "target=$2" --json"#),
        ])
        .arg(runbook_tests::host_bin())
        .args([case, target])
        .current_dir(sandbox.path())
        .env("RUNBOOK_CACHE_DIR", sandbox.cache_dir())
        .env("RUNBOOK_STORE", sandbox.store_path())
        .env_remove("RUNBOOK_CONFIG")
        .output()
        .expect("running host");
    checked(Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

fn checked(run: Run) -> Value {
    assert!(
        run.code == 0 || run.code == 1,
        "exit {}: {}",
        run.code,
        run.stderr
    );
    run.json()
}

/// The case's answer, one line per path.
fn answer(run: &Value) -> Vec<String> {
    let text = run["artifacts"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == "answer.txt"))
        .and_then(|a| a["text"].as_str())
        .unwrap_or_else(|| panic!("no answer: {run:#}"));
    text.lines().map(str::to_string).collect()
}

#[test]
fn each_path_is_resolved_and_checked_on_its_own_and_answered_in_order() {
    let sandbox = sandbox();
    let root = sandbox.path().join("root");
    std::os::unix::fs::symlink("/etc", root.join("etc-link")).unwrap();
    // The host's compile cache, reached through a symlink inside the grant.
    std::os::unix::fs::symlink(sandbox.cache_dir(), root.join("cache-link")).unwrap();
    let long = format!("{}/{}", root.display(), "n".repeat(5000));
    let paths = [
        root.join("a").display().to_string(),
        "/etc".to_string(),
        format!("{}/../../../etc", root.join("a").display()),
        root.join("etc-link").display().to_string(),
        root.join("cache-link").display().to_string(),
        long,
        root.join("missing").display().to_string(),
        root.join("b").display().to_string(),
    ];
    let run = run_case(&sandbox, "fs-many", &paths.join("\n"));
    assert_eq!(run["status"], "no-action", "{run:#}");
    let lines = answer(&run);
    assert_eq!(lines.len(), paths.len(), "{lines:#?}");

    let a = root.join("a").display().to_string();
    assert!(
        lines[0].starts_with("ok ") && lines[0].ends_with(&format!("{a}/x {a}/y")),
        "largest first, under the path: {}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("denied:") && lines[1].contains("outside the granted fs-read roots"),
        "outside the grant: {}",
        lines[1]
    );
    assert!(lines[2].starts_with("denied:"), "`..` escape: {}", lines[2]);
    assert!(
        lines[3].starts_with("denied:"),
        "symlink escape: {}",
        lines[3]
    );
    assert!(
        lines[4].starts_with("denied:"),
        "symlink to the host's cache: {}",
        lines[4]
    );
    assert!(
        lines[5].starts_with("invalid:") && lines[5].contains("longer than"),
        "over-long path: {}",
        lines[5]
    );
    assert!(lines[6].starts_with("not-found:"), "missing: {}", lines[6]);
    let b = root.join("b").display().to_string();
    assert!(
        lines[7].starts_with("ok ") && lines[7].ends_with(&format!("{b}/only.bin")),
        "a good path after refused ones still answers: {}",
        lines[7]
    );

    // One timeline entry for the call, with every path and, numbered, why the refused ones were.
    let many = calls(&run, "fs-read", "largest-many");
    assert_eq!(many.len(), 1, "{run:#}");
    assert_eq!(many[0]["result"], "ok");
    assert_eq!(
        many[0]["args"]["paths"].as_array().unwrap().len(),
        paths.len()
    );
    let detail = many[0]["detail"].as_str().unwrap();
    assert!(detail.starts_with("2 of 8 paths"), "{detail}");
    for refused in [
        "path 2: denied",
        "path 4: denied",
        "path 6: invalid",
        "path 7: not-found",
    ] {
        assert!(detail.contains(refused), "{refused}: {detail}");
    }
}

#[test]
fn more_than_32_paths_are_refused_as_invalid_and_32_are_walked() {
    let sandbox = sandbox();
    let a = sandbox.path().join("root/a").display().to_string();

    let run = run_case(&sandbox, "fs-many-repeat", &format!("33|{a}"));
    assert_eq!(run["status"], "failed", "{run:#}");
    let reason = run["reason"].as_str().unwrap();
    assert!(
        reason.contains("invalid") && reason.contains("at most 32"),
        "{reason}"
    );
    let many = calls(&run, "fs-read", "largest-many");
    assert_eq!(many[0]["result"], "invalid");
    assert_eq!(
        many[0]["args"]["paths"], "33 paths",
        "not recorded one by one"
    );

    let run = run_case(&sandbox, "fs-many-repeat", &format!("32|{a}"));
    assert_eq!(run["status"], "no-action", "{run:#}");
    let lines = answer(&run);
    assert_eq!(lines.len(), 32);
    assert!(
        lines.iter().all(|l| l == &lines[0] && l.starts_with("ok ")),
        "{lines:#?}"
    );
}

/// `(scanned, truncated)` of an `ok` answer line.
fn walked(line: &str) -> (u64, bool) {
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields[0], "ok", "{line}");
    (fields[2].parse().unwrap(), fields[3] == "truncated=true")
}

/// 32 paths of 16,400 entries each: alone a path is walked whole; together they stop at the
/// one entry budget of the call (500,000), not 32 times that.
#[test]
fn the_paths_of_one_call_share_one_entry_budget() {
    let sandbox = sandbox();
    let tree = sandbox.path().join("root/wide");
    for d in 0..40 {
        let dir = tree.join(format!("d{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..409 {
            std::fs::File::create(dir.join(f.to_string())).unwrap();
        }
    }
    let tree = tree.display().to_string();

    let run = run_case(&sandbox, "fs-many-repeat", &format!("1|{tree}"));
    let (scanned, truncated) = walked(&answer(&run)[0]);
    assert_eq!((scanned, truncated), (40 * 410, false));

    let run = run_case(&sandbox, "fs-many-repeat", &format!("32|{tree}"));
    let lines = answer(&run);
    let total: u64 = lines.iter().map(|l| walked(l).0).sum();
    assert!(
        lines.iter().any(|l| walked(l).1),
        "none truncated: {lines:#?}"
    );
    // Each walk that meets the spent budget counts the entry it stopped at.
    assert!(
        (500_000..=500_000 + 32 * 41).contains(&total),
        "{total} entries scanned over 32 paths"
    );
    let detail = calls(&run, "fs-read", "largest-many")[0]["detail"]
        .as_str()
        .unwrap();
    assert!(detail.contains("entry or time budget reached"), "{detail}");
}

/// 32 paths of 300 directories each, in a `host run` allowed 400 open files: the call holds at
/// most 256 directories open for the pool over all its paths (the others are walked in line),
/// so nothing is cut short for want of file descriptors.
#[test]
fn one_call_holds_a_bounded_number_of_directories_open_whatever_its_paths() {
    let sandbox = sandbox();
    let tree = sandbox.path().join("root/many-dirs");
    for d in 0..300 {
        sandbox.write(&format!("root/many-dirs/d{d}/f"), "x");
    }
    let tree = tree.display().to_string();
    let run = run_case_limited(&sandbox, "fs-many-repeat", &format!("32|{tree}"), 400);
    let lines = answer(&run);
    assert_eq!(lines.len(), 32);
    for line in &lines {
        assert_eq!(walked(line), (600, false), "{line}");
    }
}
