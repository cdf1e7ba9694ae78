//! Playbooks by digest, end to end with the real `host` binary against real registries
//! (Debian's docker-registry, started by scripts/test-env.sh): 127.0.0.1:5015 plain HTTP,
//! 127.0.0.1:5016 HTTPS from a test CA with basic auth. Each test pushes to repositories of its
//! own (named after the process and test), so runs never see each other's tags.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use runbook_tests::polyglot::{self as guests_of, Lang};
use runbook_tests::{Sandbox, guests};

#[path = "oci/common.rs"]
mod common;
use common::*;

#[test]
fn pushed_playbooks_are_pulled_by_tag_and_digest_and_runs_record_the_digest() {
    let sandbox = Sandbox::new();
    let noop = guests::path("noop");
    let rust_ref = format!("oci://{PLAIN}/{}:1.0", repo("noop"));
    let rust_digest = push(&sandbox, &rust_ref, &noop, &["--insecure"], &[]);

    // Pulled by tag and by digest: the same bytes as pushed, checked, into the local store.
    let by_tag = ok(
        &host(
            &sandbox,
            &["pull", &rust_ref, "--insecure", "-o", "by-tag.wasm"],
            &[],
        ),
        "pull by tag",
    );
    assert!(by_tag.contains(&rust_digest), "{by_tag}");
    let pinned = format!("{}@{rust_digest}", rust_ref.rsplit_once(':').unwrap().0);
    ok(
        &host(
            &sandbox,
            &["pull", &pinned, "--insecure", "-o", "by-digest.wasm"],
            &[],
        ),
        "pull by digest",
    );
    let pushed = std::fs::read(&noop).unwrap();
    assert_eq!(
        std::fs::read(sandbox.path().join("by-tag.wasm")).unwrap(),
        pushed
    );
    assert_eq!(
        std::fs::read(sandbox.path().join("by-digest.wasm")).unwrap(),
        pushed
    );
    // A digest the registry does not have, and plain HTTP to a registry off this machine.
    let missing = format!(
        "{}@sha256:{}",
        rust_ref.rsplit_once(':').unwrap().0,
        "0".repeat(64)
    );
    let run = host(&sandbox, &["pull", &missing, "--insecure"], &[]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("not found"), "{}", run.stderr);
    let run = host(
        &sandbox,
        &["pull", "oci://registry.example.com/x/y:1", "--insecure"],
        &[],
    );
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("only for a registry on this machine"),
        "{}",
        run.stderr
    );
    let run = host(&sandbox, &["pull", "playbooks/x:1"], &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("not an artifact reference"),
        "{}",
        run.stderr
    );

    // A Python playbook too, named in host.toml by digest.
    let python = match guests_of::example("python-web-down", Lang::Python) {
        Ok(path) => Some(path),
        Err(why) => {
            guests_of::skipped("oci python", Lang::Python, &why);
            None
        }
    };
    let py_source = python.as_ref().map(|file| {
        let reference = format!("oci://{PLAIN}/{}:2.0", repo("web-down"));
        let digest = push(&sandbox, &reference, file, &["--insecure"], &[]);
        (
            format!("{}@{digest}", reference.rsplit_once(':').unwrap().0),
            digest,
        )
    });
    let mut toml = format!(
        "[registries.\"{PLAIN}\"]\ninsecure = true\n\n[plugins.rusty]\nsource = \"{rust_ref}\"\n"
    );
    if let Some((source, _)) = &py_source {
        toml.push_str(&format!("\n[plugins.webdown]\nsource = \"{source}\"\n"));
    }
    sandbox.write("host.toml", &toml);

    let (code, run, stderr) = run_json(&sandbox, &["rusty"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(run["playbook"], "rusty");
    let origin = run["origin"].as_str().unwrap();
    assert_eq!(origin, format!("{rust_ref}@{rust_digest}"), "{run:#}");
    assert_eq!(
        lock_digest(&sandbox, "rusty"),
        rust_digest,
        "the tag was locked on first use"
    );

    // The stored run, `host runs show` and the post-mortem name source and digest.
    let id = run["run_id"].as_str().unwrap();
    let shown = ok(&host(&sandbox, &["runs", "show", id], &[]), "runs show");
    assert!(
        shown.contains(&rust_digest) && shown.contains(&rust_ref),
        "{shown}"
    );
    let report = ok(&host(&sandbox, &["runs", "report", id], &[]), "runs report");
    assert!(report.contains(&rust_digest), "{report}");
    let listed = ok(&host(&sandbox, &["list", "--json"], &[]), "list");
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "rusty")
        .unwrap();
    assert_eq!(row["digest"], rust_digest.as_str(), "{row:#}");
    assert_eq!(row["source"], rust_ref.as_str(), "{row:#}");

    if let Some((source, digest)) = &py_source {
        let (code, run, stderr) =
            run_json(&sandbox, &["webdown", "-p", "url=http://127.0.0.1:9/"], &[]);
        // Denied its probe (no grants): failed, but it ran, from the digest named.
        assert_eq!(code, 1, "{stderr}");
        assert_eq!(run["origin"], source.as_str(), "{run:#}");
        assert!(source.ends_with(digest.as_str()));
    }
}

#[test]
fn a_moved_tag_keeps_the_locked_digest_until_lock_update() {
    let sandbox = Sandbox::new();
    let reference = format!("oci://{PLAIN}/{}:stable", repo("moving"));
    let first = push(
        &sandbox,
        &reference,
        &guests::path("noop"),
        &["--insecure"],
        &[],
    );
    sandbox.write(
        "host.toml",
        format!("[registries.\"{PLAIN}\"]\ninsecure = true\n\n[plugins.moving]\nsource = \"{reference}\"\n"),
    );
    ok(&host(&sandbox, &["lock"], &[]), "lock");
    assert_eq!(lock_digest(&sandbox, "moving"), first);

    let second = push(
        &sandbox,
        &reference,
        &guests::path("contract-v0-3"),
        &["--insecure"],
        &[],
    );
    assert_ne!(first, second);
    let inspect = |sandbox: &Sandbox| -> serde_json::Value {
        serde_json::from_str(&ok(
            &host(sandbox, &["inspect", "moving", "--json"], &[]),
            "inspect",
        ))
        .unwrap()
    };
    let shown = inspect(&sandbox);
    assert!(
        shown["origin"].as_str().unwrap().ends_with(&first),
        "{shown:#}"
    );
    assert_eq!(
        shown["name"], "noop",
        "the locked bytes, not the tag's new ones"
    );

    let out = ok(&host(&sandbox, &["lock", "--update"], &[]), "lock --update");
    assert!(
        out.contains(&format!("~ moving {}", reference.clone() + "@" + &second)),
        "{out}"
    );
    assert_eq!(lock_digest(&sandbox, "moving"), second);
    let shown = inspect(&sandbox);
    assert!(
        shown["origin"].as_str().unwrap().ends_with(&second),
        "{shown:#}"
    );
    assert_eq!(shown["name"], "contract-v0-3");
}

/// The TLS registry with basic auth; `[trust]` requires a signature by release.pub.
#[test]
fn signatures_are_required_checked_and_refused_before_compiling() {
    let sandbox = Sandbox::new();
    let env = tls_env();
    let flags = ["--registry-ca", &ca()].map(String::from);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    for name in ["release", "stranger"] {
        ok(&host(&sandbox, &["keygen", name], &[]), "keygen");
    }
    assert_eq!(
        std::fs::metadata(sandbox.path().join("release.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // Wrong credentials, and no CA: clear errors.
    let reference = format!("oci://{TLS}/{}:1", repo("signed"));
    let noop = guests::path("noop");
    let bad = vec![
        ("RUNBOOK_REGISTRY_USERNAME", "runbook".to_string()),
        ("RUNBOOK_REGISTRY_PASSWORD", "wrong".to_string()),
    ];
    let mut args = vec!["push", reference.as_str(), noop.to_str().unwrap()];
    args.extend(&flags);
    let run = host(&sandbox, &args, &bad);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("RUNBOOK_REGISTRY_USERNAME"),
        "{}",
        run.stderr
    );
    let run = host(
        &sandbox,
        &["push", &reference, noop.to_str().unwrap()],
        &env,
    );
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.to_lowercase().contains("certificate"),
        "{}",
        run.stderr
    );

    let digest = push(&sandbox, &reference, &noop, &flags, &env);
    sandbox.write(
        "host.toml",
        format!(
            "[trust]\nkeys = [\"release.pub\"]\n\n[registries.\"{TLS}\"]\nca-file = \"{}\"\n\n\
             [plugins.signed]\nsource = \"{reference}\"\n",
            ca()
        ),
    );

    // Unsigned: refused, and nothing was compiled.
    let (code, _, stderr) = run_json(&sandbox, &["signed"], &env);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("unsigned") && stderr.contains("refused before compiling"),
        "{stderr}"
    );
    assert!(
        !compiled_any(&sandbox.cache_dir()),
        "an unsigned component was compiled"
    );

    // Signed by a key the host does not trust: refused.
    let mut args = vec!["sign", reference.as_str(), "--key", "stranger.key"];
    args.extend(&flags);
    let out = ok(&host(&sandbox, &args, &env), "sign (stranger)");
    assert!(out.contains(&digest), "{out}");
    let (code, _, stderr) = run_json(&sandbox, &["signed"], &env);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("not signed by a trusted key") && stderr.contains("release"),
        "{stderr}"
    );
    assert!(!compiled_any(&sandbox.cache_dir()));

    // Signed by the trusted key: runs, and says who signed it.
    let mut args = vec!["sign", reference.as_str(), "--key", "release.key"];
    args.extend(&flags);
    ok(&host(&sandbox, &args, &env), "sign (release)");
    let (code, run, stderr) = run_json(&sandbox, &["signed"], &env);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        run["origin"],
        format!("{reference}@{digest} signed by release")
    );

    // A plugin-dir file carries no signature: refused where signatures are required.
    sandbox.write("plugins/local.wasm", std::fs::read(&noop).unwrap());
    let run = host(&sandbox, &["run", "plugins/local.wasm"], &env);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("carries none"), "{}", run.stderr);

    // A layer the registry serves with other bytes than its digest: refused, never compiled.
    let tampered_ref = format!("oci://{TLS}/{}:1", repo("tampered"));
    // Bytes of this run only: the registry's blob files are shared by every push of them.
    let unique = sandbox.write("unique.wasm", unique_copy(&guests::path("contract-v0-3")));
    push(&sandbox, &tampered_ref, &unique, &flags, &env);
    let mut args = vec!["sign", tampered_ref.as_str(), "--key", "release.key"];
    args.extend(&flags);
    ok(&host(&sandbox, &args, &env), "sign (tampered)");
    let layer = sha256_hex(&std::fs::read(&unique).unwrap());
    let blob = PathBuf::from(format!(
        "{REGISTRY_DIR}/tls/data/docker/registry/v2/blobs/sha256/{}/{layer}/data",
        &layer[..2]
    ));
    let mut bytes = std::fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();
    sandbox.write_append(
        "host.toml",
        &format!("\n[plugins.tampered]\nsource = \"{tampered_ref}\"\n"),
    );
    let fresh = Sandbox::new();
    for file in ["host.toml", "release.pub"] {
        std::fs::copy(sandbox.path().join(file), fresh.path().join(file)).unwrap();
    }
    let (code, _, stderr) = run_json(&fresh, &["tampered"], &env);
    assert_ne!(code, 0);
    assert!(stderr.contains(&format!("not sha256:{layer}")), "{stderr}");
    assert!(stderr.contains("refused"), "{stderr}");
    assert!(!compiled_any(&fresh.cache_dir()));
}

const HOOK_TOKEN: &str = "oci-hook-t0ken";
const TOKEN_A: &str = "oci-node-a-token-0123456789";
const TOKEN_B: &str = "oci-node-b-token-0123456789";

/// A node with no copy of the playbook. `registry_reachable`: its host.toml allows plain HTTP to
/// the loopback registry; without it, the node cannot speak to that registry at all (it would
/// have to be HTTPS) and must get the artifact from its server.
fn fleet_node(registry_reachable: bool) -> Sandbox {
    let sandbox = Sandbox::new();
    let registries = if registry_reachable {
        format!("[registries.\"{PLAIN}\"]\ninsecure = true\n")
    } else {
        String::new()
    };
    sandbox.write(
        "host.toml",
        format!("{registries}\n[plugins.shipped]\ndeadline-secs = 60\n"),
    );
    sandbox
}

/// The server names the digest of the playbook a node's run needs; nodes pull exactly that
/// digest (or get it from the server when they cannot reach the registry), and refuse bytes
/// the registry serves under it that are not those.
#[test]
fn fleet_nodes_run_exactly_the_digest_the_server_names() {
    use runbook_tests::agent::Agent;
    use runbook_tests::server::Server;
    use std::time::Duration;

    let server_box = Sandbox::new();
    let shipped_ref = format!("oci://{PLAIN}/{}:1", repo("shipped"));
    let shipped = server_box.write("shipped.wasm", unique_copy(&guests::path("noop")));
    let shipped_digest = push(&server_box, &shipped_ref, &shipped, &["--insecure"], &[]);
    let forged_ref = format!("oci://{PLAIN}/{}:1", repo("forged"));
    let forged = server_box.write("forged.wasm", unique_copy(&guests::path("noop")));
    let forged_digest = push(&server_box, &forged_ref, &forged, &["--insecure"], &[]);
    server_box.write(
        "host.toml",
        format!(
            r#"[registries."{PLAIN}"]
insecure = true

[plugins.shipped]
source = "{shipped_ref}"

[plugins.forged]
source = "{forged_ref}"

[fleet.nodes.node-a]
token = {{ env = "NODE_A_TOKEN" }}

[fleet.nodes.node-b]
token = {{ env = "NODE_B_TOKEN" }}

[webhooks.run]
auth = {{ kind = "bearer", token = {{ env = "HOOK_TOKEN" }} }}
"#
        ),
    );
    // The server pins and pulls both before the registry's copy of `forged` is tampered with.
    ok(&host(&server_box, &["lock"], &[]), "lock");
    for reference in [&shipped_ref, &forged_ref] {
        ok(
            &host(&server_box, &["pull", reference, "--insecure"], &[]),
            "pull",
        );
    }
    let layer = sha256_hex(&std::fs::read(&forged).unwrap());
    let blob = PathBuf::from(format!(
        "{REGISTRY_DIR}/plain/data/docker/registry/v2/blobs/sha256/{}/{layer}/data",
        &layer[..2]
    ));
    let mut bytes = std::fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();

    let server = Server::start(
        &server_box,
        &[
            ("HOOK_TOKEN", HOOK_TOKEN),
            ("NODE_A_TOKEN", TOKEN_A),
            ("NODE_B_TOKEN", TOKEN_B),
        ],
    );
    let node_a = fleet_node(true);
    let node_b = fleet_node(false);
    let _agent_a = Agent::start(&node_a, &server.url(""), "node-a", TOKEN_A);
    let _agent_b = Agent::start(&node_b, &server.url(""), "node-b", TOKEN_B);
    let submit = |playbook: &str, node: &str| {
        server.submit_run(
            &format!("/hooks/run/{playbook}?node={node}"),
            HOOK_TOKEN,
            b"{}",
        )
    };

    // Node A pulls the named digest from the registry and runs it under its own config.
    let run = server.wait_for_run(&submit("shipped", "node-a"), Duration::from_secs(60));
    assert_eq!(run["status"], "no-action", "{run:#}");
    assert_eq!(
        run["origin"],
        format!("{shipped_ref}@{shipped_digest}"),
        "{run:#}"
    );
    assert!(
        node_a
            .cache_dir()
            .join("oci")
            .join(&shipped_digest[7..])
            .is_dir()
    );

    // Node B cannot reach the registry: the server hands the artifact over, checked.
    let run = server.wait_for_run(&submit("shipped", "node-b"), Duration::from_secs(60));
    assert_eq!(run["status"], "no-action", "{run:#}");
    assert_eq!(
        run["origin"],
        format!("{shipped_ref}@{shipped_digest}"),
        "{run:#}"
    );
    assert!(
        node_b
            .cache_dir()
            .join("oci")
            .join(&shipped_digest[7..])
            .is_dir()
    );

    // The registry serves other bytes under `forged`'s layer digest: node A refuses them and
    // does not go around the registry to the server for it.
    let run = server.wait_for_run(&submit("forged", "node-a"), Duration::from_secs(60));
    assert_eq!(run["status"], "failed", "{run:#}");
    let reason = run["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("refused") && reason.contains(&format!("not sha256:{layer}")),
        "{run:#}"
    );
    assert!(
        !node_a
            .cache_dir()
            .join("oci")
            .join(&forged_digest[7..])
            .exists()
    );
    assert_eq!(
        cwasm_count(&node_a.cache_dir()),
        1,
        "only `shipped` was compiled on node A"
    );
}
