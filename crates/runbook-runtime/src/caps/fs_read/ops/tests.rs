//! Unit tests of the fs-read operations on real files in a temporary directory.

use super::super::protect::Protected;
use super::*;
use std::path::{Path, PathBuf};

fn roots_at(dir: &Path) -> Roots {
    let (roots, warnings) = Roots::open(&[dir.to_path_buf()], &[]);
    assert!(warnings.is_empty(), "{warnings:?}");
    roots
}

/// The operations with nothing protected but devices and the test's own /proc entries.
fn with_cx<T>(roots: &Roots, work: impl FnOnce(&Cx) -> T) -> T {
    let protected = Protected::default();
    let guard = protected.snapshot();
    let budget = Budget::new(std::time::Instant::now() + std::time::Duration::from_secs(60));
    work(&Cx {
        roots,
        guard: &guard,
        budget: &budget,
    })
}

fn read(roots: &Roots, path: &str, offset: u64, max: u32) -> Res<Vec<u8>> {
    with_cx(roots, |cx| super::read(cx, path, offset, max))
}
fn tail(roots: &Roots, path: &str, lines: u32) -> Res<Vec<String>> {
    with_cx(roots, |cx| super::tail(cx, path, lines))
}
fn stat(roots: &Roots, path: &str) -> Res<Entry> {
    with_cx(roots, |cx| super::stat(cx, path))
}
fn grep(roots: &Roots, path: &str, pattern: &str, o: &GrepOptions) -> Res<GrepResult> {
    with_cx(roots, |cx| super::grep(cx, path, pattern, o))
}
fn find(roots: &Roots, path: &str, o: &FindOptions) -> Res<Vec<Entry>> {
    with_cx(roots, |cx| super::find(cx, path, o).map(|(found, _)| found))
}

fn p(dir: &Path, rel: &str) -> String {
    dir.join(rel).display().to_string()
}

#[test]
fn paths_are_checked_before_anything_is_opened() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    std::fs::write(root.join("f"), "x").unwrap();
    let roots = roots_at(&root);
    let kind = |path: &str| stat(&roots, path).err().map(|e| e.kind());
    assert_eq!(kind(&p(&root, "f")), None);
    assert_eq!(kind(&format!("{}/f\0", root.display())), Some("invalid"));
    assert_eq!(kind("relative/f"), Some("invalid"));
    assert_eq!(
        kind(&format!("{}/../../etc/passwd", root.display())),
        Some("denied")
    );
    assert_eq!(kind("/etc/passwd"), Some("denied"));
    assert_eq!(kind(&p(&root, "missing")), Some("not-found"));
    // A sibling whose name starts with the root's is not inside it.
    assert_eq!(kind(&format!("{}-other/f", root.display())), Some("denied"));
}

#[test]
fn symlinks_out_of_the_root_are_refused_and_inside_ones_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    std::fs::write(root.join("inside.log"), "hello\n").unwrap();
    std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("passwd")).unwrap();
    std::os::unix::fs::symlink("inside.log", root.join("alias.log")).unwrap();
    let roots = roots_at(&root);
    for path in [p(&root, "etc/passwd"), p(&root, "passwd")] {
        let err = read(&roots, &path, 0, 100).unwrap_err();
        assert_eq!(err.kind(), "denied", "{path}: {err:?}");
    }
    assert_eq!(
        read(&roots, &p(&root, "alias.log"), 0, 100).unwrap(),
        b"hello\n"
    );
    // stat does not follow the final symlink.
    assert!(matches!(
        stat(&roots, &p(&root, "passwd")).unwrap().kind,
        EntryKind::Symlink
    ));
}

#[test]
fn tail_returns_the_last_lines_across_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let text: String = (1..=20_000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(root.join("big.log"), &text).unwrap();
    std::fs::write(root.join("short.log"), "a\nb\nc").unwrap();
    let roots = roots_at(&root);
    let last = tail(&roots, &p(&root, "big.log"), 3).unwrap();
    assert_eq!(last, ["line 19998", "line 19999", "line 20000"]);
    assert_eq!(
        tail(&roots, &p(&root, "big.log"), 9000)
            .unwrap()
            .first()
            .unwrap(),
        "line 11001"
    );
    assert_eq!(
        tail(&roots, &p(&root, "short.log"), 10).unwrap(),
        ["a", "b", "c"]
    );
    assert_eq!(tail(&roots, &p(&root, "short.log"), 2).unwrap(), ["b", "c"]);
}

#[test]
fn grep_counts_every_match_and_keeps_a_bounded_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let text: String = (1..=1000)
        .map(|i| {
            if i % 10 == 0 {
                format!("{i} ERROR boom\n")
            } else {
                format!("{i} ok\n")
            }
        })
        .collect();
    std::fs::write(root.join("app.log"), text).unwrap();
    let roots = roots_at(&root);
    let path = p(&root, "app.log");
    let opts = |ci, max, last| GrepOptions {
        case_insensitive: ci,
        max_matches: max,
        last_lines: last,
    };
    let all = grep(&roots, &path, "error", &opts(true, 3, None)).unwrap();
    assert_eq!(
        (all.count, all.lines_scanned, all.matches.len()),
        (100, 1000, 3)
    );
    assert_eq!(all.matches[0].line_number, 10);
    assert_eq!(all.matches[0].line, "10 ERROR boom");
    assert_eq!(
        grep(&roots, &path, "error", &opts(false, 0, None))
            .unwrap()
            .count,
        0
    );
    let recent = grep(&roots, &path, "ERROR", &opts(false, 0, Some(100))).unwrap();
    assert_eq!((recent.count, recent.lines_scanned), (10, 100));
    let bad = grep(&roots, &path, "(unclosed", &opts(false, 0, None)).unwrap_err();
    assert_eq!(bad.kind(), "invalid");
}

#[test]
fn find_filters_by_glob_age_and_depth() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    for f in ["x.tar.gz", "a/y.tar.gz", "a/b/z.tar.gz", "a/notes.txt"] {
        std::fs::write(root.join(f), "data").unwrap();
    }
    let roots = roots_at(&root);
    let names = |opts: FindOptions| -> Vec<PathBuf> {
        find(&roots, &root.display().to_string(), &opts)
            .unwrap()
            .into_iter()
            .map(|e| {
                PathBuf::from(e.path)
                    .strip_prefix(&root)
                    .unwrap()
                    .to_path_buf()
            })
            .collect()
    };
    let base = FindOptions {
        name_glob: Some("*.tar.gz".into()),
        min_age_secs: None,
        max_depth: None,
        limit: None,
        files_only: None,
    };
    assert_eq!(
        names(base.clone()),
        [
            PathBuf::from("a/b/z.tar.gz"),
            "a/y.tar.gz".into(),
            "x.tar.gz".into()
        ]
    );
    assert_eq!(
        names(FindOptions {
            max_depth: Some(1),
            ..base.clone()
        }),
        [PathBuf::from("x.tar.gz")]
    );
    assert!(
        names(FindOptions {
            min_age_secs: Some(3600),
            ..base
        })
        .is_empty()
    );
}

#[test]
fn only_regular_files_are_read_and_metadata_roots_refuse_content() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    std::fs::write(root.join("f"), "hello\n").unwrap();
    let fifo = root.join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let roots = roots_at(&root);
    let err = read(&roots, &p(&root, "fifo"), 0, 10).unwrap_err();
    assert_eq!(err.kind(), "invalid", "{err:?}");
    assert!(err.detail().contains("not a regular file"), "{err:?}");
    assert_eq!(
        read(&roots, &p(&root, "."), 0, 10).unwrap_err().kind(),
        "invalid"
    );

    let (meta_only, _) = Roots::open(&[], std::slice::from_ref(&root));
    let err = read(&meta_only, &p(&root, "f"), 0, 10).unwrap_err();
    assert_eq!(err.kind(), "denied");
    assert!(
        err.detail().contains("metadata-only grant fs-meta"),
        "{err:?}"
    );
    assert_eq!(stat(&meta_only, &p(&root, "f")).unwrap().size, 6);
}

#[test]
fn oversized_inputs_are_invalid_and_echoed_short() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    std::fs::write(root.join("f"), "x\n").unwrap();
    let roots = roots_at(&root);
    let long = format!("{}/{}", root.display(), "a".repeat(1 << 20));
    let err = stat(&roots, &long).unwrap_err();
    assert_eq!(err.kind(), "invalid");
    assert!(err.detail().len() < 400, "{}", err.detail().len());
    assert!(err.detail().contains(&format!("({} bytes)", long.len())));
    let opts = GrepOptions {
        case_insensitive: false,
        max_matches: 1,
        last_lines: None,
    };
    let err = grep(&roots, &p(&root, "f"), &"a".repeat(5000), &opts).unwrap_err();
    assert_eq!(err.kind(), "invalid");
}

#[test]
fn a_deep_tree_is_walked_without_recursion_and_reported_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let mut dir = root.clone();
    for _ in 0..(MAX_WALK_DEPTH + 10) {
        dir.push("d");
    }
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("deep.txt"), "x").unwrap();
    std::fs::write(root.join("top.txt"), "x").unwrap();
    let roots = roots_at(&root);
    let opts = FindOptions {
        name_glob: Some("*.txt".into()),
        min_age_secs: None,
        max_depth: None,
        limit: None,
        files_only: None,
    };
    let (found, note) = with_cx(&roots, |cx| {
        super::find(cx, &root.display().to_string(), &opts)
    })
    .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(note.truncated.unwrap().contains("deeper than"));
    let (largest, _) = with_cx(&roots, |cx| {
        super::largest(cx, &root.display().to_string(), 1, 10)
    })
    .unwrap();
    assert!(largest.truncated);
}

#[test]
fn work_stops_when_its_budget_is_cancelled() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    std::fs::write(root.join("big"), vec![b'x'; 1 << 20]).unwrap();
    let roots = roots_at(&root);
    let protected = Protected::default();
    let guard = protected.snapshot();
    let budget = Budget::new(std::time::Instant::now() + std::time::Duration::from_secs(60));
    budget.cancel();
    let cx = Cx {
        roots: &roots,
        guard: &guard,
        budget: &budget,
    };
    let err = super::read(&cx, &p(&root, "big"), 0, 1 << 20).unwrap_err();
    assert_eq!(err.kind(), "timeout", "{err:?}");
    let opts = GrepOptions {
        case_insensitive: false,
        max_matches: 1,
        last_lines: None,
    };
    assert_eq!(
        super::grep(&cx, &p(&root, "big"), "y", &opts)
            .unwrap_err()
            .kind(),
        "timeout"
    );
}

#[test]
fn a_content_root_inside_a_metadata_root_allows_reading_only_there() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    std::fs::create_dir(root.join("logs")).unwrap();
    std::fs::write(root.join("logs/app.log"), "a\n").unwrap();
    std::fs::write(root.join("other.txt"), "b\n").unwrap();
    std::os::unix::fs::symlink(".", root.join("logs/self")).unwrap();
    let (roots, warnings) = Roots::open(&[root.join("logs")], std::slice::from_ref(&root));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        read(&roots, &p(&root, "logs/app.log"), 0, 10).unwrap(),
        b"a\n"
    );
    assert_eq!(
        tail(&roots, &p(&root, "logs/self/app.log"), 1).unwrap(),
        ["a"]
    );
    assert_eq!(
        read(&roots, &p(&root, "other.txt"), 0, 10)
            .unwrap_err()
            .kind(),
        "denied"
    );
    assert_eq!(stat(&roots, &p(&root, "other.txt")).unwrap().size, 2);
}
