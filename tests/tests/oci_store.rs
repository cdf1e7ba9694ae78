//! Pulled artifacts on disk, end to end with the real `host` against the plain registry of
//! scripts/test-env.sh (127.0.0.1:5015): a stored copy whose files are not what was stored is
//! refused naming the file and the way out (`host pull`), never read as "absent" or
//! "unsigned"; a signature verified once is not verified again, for that digest and key only;
//! and `host serve` runs the digests host.lock pins after a SIGHUP, not before.

use std::path::Path;
use std::time::Duration;

use runbook_tests::server::Server;
use runbook_tests::{Sandbox, guests};

#[path = "oci/common.rs"]
mod common;
use common::*;

/// A signed playbook `stored` on the plain registry, which host.toml requires to be signed by
/// release.pub; its pinned reference and manifest digest.
fn signed_playbook(sandbox: &Sandbox) -> (String, String) {
    ok(&host(sandbox, &["keygen", "release"], &[]), "keygen");
    let reference = format!("oci://{PLAIN}/{}:1", repo("stored"));
    let file = sandbox.write("stored.wasm", unique_copy(&guests::path("noop")));
    let digest = push(sandbox, &reference, &file, &["--insecure"], &[]);
    let sign = ["sign", &reference, "--key", "release.key", "--insecure"];
    ok(&host(sandbox, &sign, &[]), "sign");
    let pinned = format!("{}@{digest}", reference.rsplit_once(':').unwrap().0);
    sandbox.write(
        "host.toml",
        format!(
            "[trust]\nkeys = [\"release.pub\"]\n\n[registries.\"{PLAIN}\"]\ninsecure = true\n\n\
             [plugins.stored]\nsource = \"{pinned}\"\n"
        ),
    );
    (pinned, digest)
}

/// A run of `stored` refused because `file` is damaged: the error names the file and the pull
/// that replaces it, and does not pass the damage off as a missing signature.
fn refused_naming(sandbox: &Sandbox, file: &Path, digest: &str, case: &str) {
    let (code, _, stderr) = run_json(sandbox, &["stored"], &[]);
    assert_ne!(code, 0, "{case}: a damaged artifact ran");
    assert!(
        stderr.contains(&file.display().to_string())
            && stderr.contains("damaged")
            && stderr.contains(&format!("host pull oci://{PLAIN}/"))
            && stderr.contains(digest),
        "{case}: {stderr}"
    );
    assert!(!stderr.contains("unsigned"), "{case}: {stderr}");
}

fn restore(file: &Path, genuine: &[u8]) {
    let _ = std::fs::remove_file(file);
    std::fs::write(file, genuine).unwrap();
}

#[test]
fn a_damaged_stored_artifact_is_refused_naming_the_file_and_a_pull_replaces_it() {
    let sandbox = Sandbox::new();
    let (pinned, digest) = signed_playbook(&sandbox);
    let (code, run, stderr) = run_json(&sandbox, &["stored"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(run["origin"], format!("{pinned} signed by release"));
    let entry = sandbox.cache_dir().join("oci").join(&digest[7..]);

    // signatures.json: garbage, cut short, over its cap (even padding around genuine
    // records), more records than are ever kept, gone, a link, a FIFO.
    let signatures = entry.join("signatures.json");
    let genuine = std::fs::read(&signatures).unwrap();
    let records: serde_json::Value = serde_json::from_slice(&genuine).unwrap();
    assert_eq!(records.as_array().unwrap().len(), 1, "{records}");
    let mut padded = vec![b' '; 2 << 20];
    padded.extend_from_slice(&genuine);
    let seventeen = serde_json::to_vec(&vec![records[0].clone(); 17]).unwrap();
    let damages: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("garbage", Some(b"{\"not\": \"a list\"}".to_vec())),
        ("truncated", Some(genuine[..genuine.len() / 2].to_vec())),
        ("oversized", Some(padded)),
        ("seventeen records", Some(seventeen)),
        ("missing", None),
    ];
    for (case, bytes) in damages {
        std::fs::remove_file(&signatures).unwrap();
        if let Some(bytes) = bytes {
            std::fs::write(&signatures, bytes).unwrap();
        }
        refused_naming(&sandbox, &signatures, &digest, case);
        if case == "garbage" {
            // Listed with the reason, not as a playbook without a signer.
            let listed = host(&sandbox, &["list", "--json"], &[]);
            let rows: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
            let row = rows
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == "stored")
                .unwrap();
            let error = row["error"].as_str().unwrap_or_default();
            assert!(error.contains("damaged"), "{row:#}");
            assert!(row.get("signer").is_none(), "{row:#}");
        }
        restore(&signatures, &genuine);
    }
    let elsewhere = sandbox.write("elsewhere.json", &genuine);
    std::fs::remove_file(&signatures).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &signatures).unwrap();
    refused_naming(&sandbox, &signatures, &digest, "a symlink");
    std::fs::remove_file(&signatures).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&signatures)
        .status()
        .unwrap();
    assert!(made.success());
    refused_naming(&sandbox, &signatures, &digest, "a FIFO");
    restore(&signatures, &genuine);

    // (`host list` above compiled the built-ins: counted from here.)
    let compiled = cwasm_count(&sandbox.cache_dir());

    // manifest.json: one byte more (another digest), and over the 64 KiB cap.
    let manifest = entry.join("manifest.json");
    let genuine_manifest = std::fs::read(&manifest).unwrap();
    let mut edited = genuine_manifest.clone();
    edited.push(b' ');
    std::fs::write(&manifest, &edited).unwrap();
    refused_naming(&sandbox, &manifest, &digest, "manifest edited");
    let mut padded = vec![b' '; 65 << 10];
    padded.extend_from_slice(&genuine_manifest);
    std::fs::write(&manifest, &padded).unwrap();
    refused_naming(&sandbox, &manifest, &digest, "manifest oversized");
    restore(&manifest, &genuine_manifest);

    // component.wasm: cut short, then the same size with one byte changed (caught by the
    // digest check before the compile cache is consulted).
    let component = entry.join("component.wasm");
    let genuine_component = std::fs::read(&component).unwrap();
    std::fs::write(&component, &genuine_component[..100]).unwrap();
    refused_naming(&sandbox, &component, &digest, "component truncated");
    let mut flipped = genuine_component.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xff;
    std::fs::write(&component, &flipped).unwrap();
    refused_naming(&sandbox, &component, &digest, "component changed");

    // The way out the error names: the pull replaces the damaged copy, and it runs again.
    let out = ok(
        &host(&sandbox, &["pull", &pinned, "--insecure"], &[]),
        "pull",
    );
    assert!(out.contains("replaced a damaged copy"), "{out}");
    assert_eq!(std::fs::read(&component).unwrap(), genuine_component);
    let (code, run, stderr) = run_json(&sandbox, &["stored"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(run["origin"], format!("{pinned} signed by release"));
    assert_eq!(
        cwasm_count(&sandbox.cache_dir()),
        compiled,
        "damaged bytes were compiled"
    );
}

/// The signature check of a warm run: verified once per (digest, key), remembered under the
/// compile cache's MAC, and the memory holds for that key only.
#[test]
fn a_verified_signature_is_remembered_for_its_digest_and_key_only() {
    let sandbox = Sandbox::new();
    let (pinned, digest) = signed_playbook(&sandbox);
    let (code, _, stderr) = run_json(&sandbox, &["stored"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let trust_facts = || {
        std::fs::read_dir(sandbox.cache_dir())
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "trust"))
            .count()
    };
    assert_eq!(trust_facts(), 1);

    // The stored signatures emptied (a well-formed list): the remembered verification
    // still vouches for this digest under release.pub.
    let signatures = sandbox
        .cache_dir()
        .join("oci")
        .join(&digest[7..])
        .join("signatures.json");
    std::fs::write(&signatures, b"[]").unwrap();
    let (code, run, stderr) = run_json(&sandbox, &["stored"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(run["origin"], format!("{pinned} signed by release"));

    // Another trusted key: what release.pub's verification proved does not count for it.
    ok(&host(&sandbox, &["keygen", "stranger"], &[]), "keygen");
    let toml = std::fs::read_to_string(sandbox.path().join("host.toml")).unwrap();
    sandbox.write("host.toml", toml.replace("release.pub", "stranger.pub"));
    let (code, _, stderr) = run_json(&sandbox, &["stored"], &[]);
    assert_ne!(code, 0, "ran on another key's remembered signature");
    assert!(
        stderr.contains("not signed by a trusted key") && stderr.contains("stranger"),
        "{stderr}"
    );
}

const HOOK: &str = "oci-store-hook-t0ken";

#[test]
fn host_serve_runs_the_new_pins_of_host_lock_after_a_sighup() {
    let sandbox = Sandbox::new();
    let reference = format!("oci://{PLAIN}/{}:stable", repo("repinned"));
    let first_file = sandbox.write("first.wasm", unique_copy(&guests::path("noop")));
    let first = push(&sandbox, &reference, &first_file, &["--insecure"], &[]);
    sandbox.write(
        "host.toml",
        format!(
            "[registries.\"{PLAIN}\"]\ninsecure = true\n\n[plugins.repinned]\n\
             source = \"{reference}\"\n\n[webhooks.run]\n\
             auth = {{ kind = \"bearer\", token = {{ env = \"HOOK_TOKEN\" }} }}\n"
        ),
    );
    ok(&host(&sandbox, &["lock"], &[]), "lock");
    let server = Server::start(&sandbox, &[("HOOK_TOKEN", HOOK)]);
    let origin_of_a_run = || {
        let id = server.submit_run("/hooks/run/repinned", HOOK, b"{}");
        let run = server.wait_for_run(&id, Duration::from_secs(60));
        run["origin"].as_str().unwrap_or_default().to_string()
    };
    assert_eq!(origin_of_a_run(), format!("{reference}@{first}"));

    let second_file = sandbox.write("second.wasm", unique_copy(&guests::path("noop")));
    let second = push(&sandbox, &reference, &second_file, &["--insecure"], &[]);
    assert_ne!(first, second);
    ok(&host(&sandbox, &["lock", "--update"], &[]), "lock --update");
    // Until the operator reloads, the server runs what it pinned.
    assert_eq!(origin_of_a_run(), format!("{reference}@{first}"));

    server.hangup();
    let log = server.wait_for_log(&sandbox, "host.toml reloaded", 1);
    assert!(log.contains("host.lock pins changed"), "{log}");
    assert_eq!(origin_of_a_run(), format!("{reference}@{second}"));

    // A lock that does not read changes nothing, and says so.
    std::fs::write(sandbox.path().join("host.lock"), "[plugins.repinned\n").unwrap();
    server.hangup();
    let log = server.wait_for_log(&sandbox, "not reloaded", 1);
    assert!(log.contains("host.lock"), "{log}");
    assert_eq!(origin_of_a_run(), format!("{reference}@{second}"));
}
