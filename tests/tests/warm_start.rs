//! A warm `host run` trusts the compile cache's memos and records, never their raw text: an
//! unchanged compiled entry is not re-hashed (its memo vouches for its BLAKE3), and describe()
//! is not called again (its answer is recorded next to the entry); an entry rewritten in place
//! behind the memo's back, or a description edited or moved from another component, is refused,
//! said so, and rebuilt. Real `host run` processes, real cache files.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use runbook_tests::{Sandbox, guests};
use serde_json::Value;

fn run_plugin(sandbox: &Sandbox, path: &Path) -> (Value, String) {
    let run = sandbox.host(&["run", "--plugin", path.to_str().unwrap(), "--json"]);
    (run.json(), run.stderr)
}

fn copy_guest(sandbox: &Sandbox, name: &str) -> PathBuf {
    let path = sandbox.path().join(format!("{name}.wasm"));
    std::fs::copy(guests::path(name), &path).unwrap();
    path
}

fn load(run: &Value, field: &str) -> String {
    run["timings"]["load"][field]
        .as_str()
        .unwrap_or_else(|| panic!("timings.load.{field} in {run:#}"))
        .to_string()
}

/// The cache memoises a file's hash only once it has not changed for two seconds.
fn wait_until_settled(path: &Path) {
    use std::os::unix::fs::MetadataExt;
    let ctime = std::fs::metadata(path).unwrap().ctime() as u64;
    let settled = SystemTime::UNIX_EPOCH + Duration::from_secs(ctime + 3);
    while SystemTime::now() < settled {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// noop ran as itself: no parameter asked of it, its one answer.
fn assert_noop_ran(run: &Value, what: &str) {
    assert_eq!(run["status"], "no-action", "{what}: {run:#}");
    assert_eq!(run["summary"], "nothing to do", "{what}: {run:#}");
}

#[test]
fn an_unchanged_entry_is_not_rehashed_and_one_rewritten_in_place_is_refused() {
    let sandbox = Sandbox::new();
    let noop = copy_guest(&sandbox, "noop");
    let (first, _) = run_plugin(&sandbox, &noop);
    assert_eq!(load(&first, "cache"), "miss", "{first:#}");
    assert_eq!(load(&first, "describe"), "called", "{first:#}");
    let entry = PathBuf::from(load(&first, "cache_file"));

    wait_until_settled(&entry);
    let (hashed, _) = run_plugin(&sandbox, &noop);
    assert_eq!(load(&hashed, "cache"), "hit", "{hashed:#}");
    assert_eq!(load(&hashed, "entry_hash"), "computed", "{hashed:#}");
    assert_eq!(load(&hashed, "describe"), "recorded", "{hashed:#}");
    let (memo, stderr) = run_plugin(&sandbox, &noop);
    assert_eq!(load(&memo, "entry_hash"), "memo", "{memo:#}");
    assert!(!stderr.contains("warning"), "{stderr}");
    assert_noop_ran(&memo, "memoised entry");

    // One byte of its code changed in place: same inode, same size, mtime put back. Only the
    // ctime, which no one but the kernel sets, tells; the memo no longer applies.
    let meta = std::fs::metadata(&entry).unwrap();
    let mut code = std::fs::read(&entry).unwrap();
    let middle = code.len() / 2;
    code[middle] ^= 0xff;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&entry)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &code))
        .unwrap();
    filetime::set_file_mtime(
        &entry,
        filetime::FileTime::from_last_modification_time(&meta),
    )
    .unwrap();
    let after = std::fs::metadata(&entry).unwrap();
    {
        use std::os::unix::fs::MetadataExt;
        assert_eq!((after.ino(), after.len()), (meta.ino(), meta.len()));
    }
    let (rewritten, stderr) = run_plugin(&sandbox, &noop);
    assert!(
        stderr.contains(&format!(
            "warning: compile cache entry {} not used: it does not match its record",
            entry.display()
        )),
        "{stderr}"
    );
    assert_eq!(load(&rewritten, "cache"), "miss", "{rewritten:#}");
    assert_noop_ran(&rewritten, "rewritten entry");
}

#[test]
fn an_edited_or_transplanted_description_is_refused_and_describe_is_called() {
    let sandbox = Sandbox::new();
    let noop = copy_guest(&sandbox, "noop");
    let hostile = copy_guest(&sandbox, "hostile");
    let (first, _) = run_plugin(&sandbox, &noop);
    let entry = load(&first, "cache_file");
    let recorded = PathBuf::from(format!("{entry}.describe"));
    sandbox.host(&["inspect", hostile.to_str().unwrap()]);
    let (second, stderr) = run_plugin(&sandbox, &noop);
    assert_eq!(load(&second, "describe"), "recorded", "{second:#}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let genuine = std::fs::read(&recorded).expect("noop's recorded description");
    let hostile_recorded = std::fs::read_dir(sandbox.cache_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_str().unwrap().ends_with(".describe") && *p != recorded)
        .expect("hostile's recorded description");

    // noop's record, its JSON given a required parameter; then hostile's record (which requires
    // `case`) over noop's. Either, believed, would refuse noop's run for a missing parameter.
    let text = String::from_utf8(genuine).unwrap();
    let edited = text.replace(
        r#""params":[]"#,
        r#""params":[{"name":"forged","description":"","default":null,"required":true}]"#,
    );
    assert_ne!(edited, text, "noop's record: {text}");
    let transplanted = std::fs::read(&hostile_recorded).unwrap();
    for (what, bytes) in [
        ("edited", edited.into_bytes()),
        ("transplanted", transplanted),
    ] {
        std::fs::write(&recorded, bytes).unwrap();
        let (run, stderr) = run_plugin(&sandbox, &noop);
        assert!(
            stderr.contains(&format!(
                "warning: compile cache description of {entry} not used: it does not match its \
                 MAC; calling describe()"
            )),
            "{what}: {stderr}"
        );
        assert_eq!(load(&run, "describe"), "called", "{what}: {run:#}");
        assert_noop_ran(&run, what);
    }
    // Rewritten by that describe(): trusted again, silently.
    let (again, stderr) = run_plugin(&sandbox, &noop);
    assert_eq!(load(&again, "describe"), "recorded", "{again:#}");
    assert!(!stderr.contains("warning"), "{stderr}");
}
