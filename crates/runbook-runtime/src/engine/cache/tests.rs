use super::*;

#[test]
fn an_entry_is_trusted_only_for_the_component_it_was_recorded_for() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::open(&dir.path().join("c")).unwrap();
    let (a, b) = ([1u8; 32], [2u8; 32]);
    let entry_a = cache.entry_path(&a, 7);
    let entry_b = cache.entry_path(&b, 7);
    cache.store(&entry_a, &a, 7, b"code of a").unwrap();
    cache.store(&entry_b, &b, 7, b"code of b").unwrap();
    assert!(
        matches!(cache.lookup(&entry_a, &a, 7), Lookup::Trusted(c) if c.map().unwrap()[..] == b"code of a"[..])
    );
    assert!(matches!(
        cache.lookup(&entry_a, &a, 8),
        Lookup::Untrusted(_)
    ));
    // b's entry and record copied over a's: the record names b's source.
    std::fs::copy(&entry_b, &entry_a).unwrap();
    assert!(matches!(
        cache.lookup(&entry_a, &a, 7),
        Lookup::Untrusted(_)
    ));
    std::fs::copy(record_path(&entry_b), record_path(&entry_a)).unwrap();
    assert!(matches!(
        cache.lookup(&entry_a, &a, 7),
        Lookup::Untrusted(_)
    ));
    std::fs::remove_file(record_path(&entry_a)).unwrap();
    assert!(
        matches!(cache.lookup(&entry_a, &a, 7), Lookup::Untrusted(m) if m.contains("no record"))
    );
    assert!(matches!(
        cache.lookup(&cache.entry_path(&[3; 32], 7), &[3; 32], 7),
        Lookup::Absent
    ));
    // A second open of the same dir uses the same key.
    let again = CompileCache::open(&dir.path().join("c")).unwrap();
    assert!(matches!(again.lookup(&entry_b, &b, 7), Lookup::Trusted(_)));
}

#[test]
fn a_memo_holds_only_for_the_same_file_at_the_same_path() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::open(&dir.path().join("c")).unwrap();
    let (a, b) = (dir.path().join("a.wasm"), dir.path().join("b.wasm"));
    std::fs::write(&a, b"component a").unwrap();
    std::fs::write(&b, b"component b").unwrap();
    let mut file_a = FileIdentity::of(&std::fs::metadata(&a).unwrap());
    // Just written: not memoised (it may change again within the timestamp granule).
    cache.memo_store(&a, &file_a, &[1; 32]).unwrap();
    assert!(matches!(
        cache.memo_lookup(&a, &file_a),
        MemoLookup::Unknown
    ));
    file_a.mtime.0 -= 10;
    file_a.ctime.0 -= 10;
    cache.memo_store(&a, &file_a, &[1; 32]).unwrap();
    assert!(matches!(cache.memo_lookup(&a, &file_a), MemoLookup::Known(s) if s == [1; 32]));
    // Another inode, or a newer ctime: hashed again.
    let mut file_b = FileIdentity::of(&std::fs::metadata(&b).unwrap());
    assert!(matches!(
        cache.memo_lookup(&a, &file_b),
        MemoLookup::Unknown
    ));
    let mut touched = file_a.clone();
    touched.ctime.1 += 1;
    assert!(matches!(
        cache.memo_lookup(&a, &touched),
        MemoLookup::Unknown
    ));
    // a's memo under b's name does not verify: the MAC covers the path.
    file_b.mtime.0 -= 10;
    file_b.ctime.0 -= 10;
    cache.memo_store(&b, &file_b, &[2; 32]).unwrap();
    std::fs::copy(cache.memo_path(&a), cache.memo_path(&b)).unwrap();
    assert!(matches!(
        cache.memo_lookup(&b, &file_a),
        MemoLookup::Untrusted(_)
    ));
}

fn digest_of(cache: &CompileCache, entry: &Path, sha: &[u8; 32]) -> Result<&'static str, String> {
    match cache.lookup(entry, sha, 7) {
        Lookup::Trusted(entry) => Ok(entry.digest),
        Lookup::Absent => Err("absent".into()),
        Lookup::Untrusted(why) => Err(why),
    }
}

#[test]
fn an_entry_memo_spares_the_hash_only_for_the_same_unchanged_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = CompileCache::open(&dir.path().join("c")).unwrap();
    let (a, b) = ([1u8; 32], [2u8; 32]);
    let (entry_a, entry_b) = (cache.entry_path(&a, 7), cache.entry_path(&b, 7));
    cache.store(&entry_a, &a, 7, b"code of a").unwrap();
    cache.store(&entry_b, &b, 7, b"code of b").unwrap();
    // Just written: hashed every time, never memoised (see SETTLE).
    assert_eq!(digest_of(&cache, &entry_a, &a), Ok("computed"));
    assert_eq!(digest_of(&cache, &entry_a, &a), Ok("computed"));
    assert!(!entry_memo_path(&entry_a).exists());

    cache.settle = Duration::ZERO;
    assert_eq!(digest_of(&cache, &entry_a, &a), Ok("computed"));
    assert_eq!(digest_of(&cache, &entry_a, &a), Ok("memo"));
    // The memo vouches for the bytes' hash only: the record still binds them to one
    // component and one engine.
    assert!(digest_of(&cache, &entry_a, &b).is_err());
    assert!(matches!(
        cache.lookup(&entry_a, &a, 8),
        Lookup::Untrusted(_)
    ));

    // b's code renamed over a's entry (another inode): a's memo does not apply.
    let swap = dir.path().join("swap");
    std::fs::copy(&entry_b, &swap).unwrap();
    std::fs::rename(&swap, &entry_a).unwrap();
    assert!(
        digest_of(&cache, &entry_a, &a)
            .unwrap_err()
            .contains("does not match")
    );
    // Rewritten in place (another size): hashed again, and refused.
    cache.store(&entry_a, &a, 7, b"code of a").unwrap();
    assert_eq!(digest_of(&cache, &entry_a, &a), Ok("computed"));
    assert_eq!(digest_of(&cache, &entry_a, &a), Ok("memo"));
    std::fs::write(&entry_a, b"other code of a").unwrap();
    assert!(
        digest_of(&cache, &entry_a, &a)
            .unwrap_err()
            .contains("does not match")
    );

    // a's memo over b's: its MAC names a's entry, so b is hashed (and says why).
    cache.store(&entry_a, &a, 7, b"code of a").unwrap();
    assert_eq!(digest_of(&cache, &entry_a, &a), Ok("computed"));
    std::fs::copy(entry_memo_path(&entry_a), entry_memo_path(&entry_b)).unwrap();
    match cache.lookup(&entry_b, &b, 7) {
        Lookup::Trusted(entry) => {
            assert_eq!(entry.digest, "computed");
            assert!(entry.memo_refused.is_some_and(|why| why.contains("MAC")));
        }
        _ => panic!("b's own entry is trusted"),
    }
    // A memo edited to claim b's hash for a's file does not verify either.
    let memo = std::fs::read_to_string(entry_memo_path(&entry_a)).unwrap();
    let a_digest = hex::encode(digest(b"code of a"));
    let forged = memo.replace(&a_digest, &hex::encode(digest(b"code of b")));
    assert_ne!(memo, forged);
    std::fs::write(entry_memo_path(&entry_a), forged).unwrap();
    assert!(matches!(
        cache.lookup(&entry_a, &a, 7),
        Lookup::Trusted(VerifiedEntry {
            digest: "computed",
            memo_refused: Some(_),
            ..
        })
    ));
}

#[test]
fn an_entry_memo_holds_however_the_cache_dir_is_spelled() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("x")).unwrap();
    let mut plain = CompileCache::open(&dir.path().join("c")).unwrap();
    let mut roundabout = CompileCache::open(&dir.path().join("x/../c")).unwrap();
    plain.settle = Duration::ZERO;
    roundabout.settle = Duration::ZERO;
    let a = [1u8; 32];
    let entry = plain.entry_path(&a, 7);
    plain.store(&entry, &a, 7, b"code of a").unwrap();
    assert_eq!(digest_of(&plain, &entry, &a), Ok("computed"));
    match roundabout.lookup(&roundabout.entry_path(&a, 7), &a, 7) {
        Lookup::Trusted(entry) => {
            assert_eq!(entry.digest, "memo");
            assert!(entry.memo_refused.is_none());
        }
        _ => panic!("the entry is trusted through either spelling"),
    }
    assert_eq!(entry, roundabout.entry_path(&a, 7));
}

#[test]
fn a_description_is_read_back_only_for_the_entry_it_was_recorded_for() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::open(&dir.path().join("c")).unwrap();
    let (entry_a, entry_b) = (cache.entry_path(&[1; 32], 7), cache.entry_path(&[2; 32], 7));
    assert_eq!(cache.description_lookup(&entry_a), Ok(None));
    cache
        .description_store(&entry_a, br#"{"name":"a"}"#)
        .unwrap();
    cache
        .description_store(&entry_b, br#"{"name":"b"}"#)
        .unwrap();
    assert_eq!(
        cache.description_lookup(&entry_a),
        Ok(Some(br#"{"name":"a"}"#.to_vec()))
    );
    // Edited, or moved to another component's entry: refused.
    let recorded = std::fs::read(description_path(&entry_a)).unwrap();
    let edited = String::from_utf8(recorded)
        .unwrap()
        .replace("\"a\"", "\"x\"");
    std::fs::write(description_path(&entry_a), edited).unwrap();
    assert!(cache.description_lookup(&entry_a).is_err());
    std::fs::copy(description_path(&entry_b), description_path(&entry_a)).unwrap();
    assert!(cache.description_lookup(&entry_a).is_err());
    std::fs::write(description_path(&entry_a), b"short").unwrap();
    assert!(cache.description_lookup(&entry_a).is_err());
}

#[test]
fn a_dir_others_can_write_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = CompileCache::open(&open).err().unwrap().to_string();
    assert!(
        err.contains("mode 0777") && err.contains("chmod 700"),
        "{err}"
    );
}
