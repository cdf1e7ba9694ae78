//! What the OCI test binaries share: the registries scripts/test-env.sh starts (127.0.0.1:5015
//! plain HTTP, 127.0.0.1:5016 HTTPS from a test CA with basic auth) and the `host` calls
//! around them. Each binary uses part of it.
#![allow(dead_code)]

use std::path::Path;

use runbook_tests::Sandbox;

pub const PLAIN: &str = "127.0.0.1:5015";
pub const TLS: &str = "127.0.0.1:5016";
pub const REGISTRY_DIR: &str = "/tmp/runbook-registry";

pub fn repo(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("t{}-{nanos}/{test}", std::process::id())
}

pub fn tls_password() -> String {
    std::fs::read_to_string(format!("{REGISTRY_DIR}/tls/password"))
        .expect("the TLS registry's password (scripts/test-env.sh starts it)")
        .trim()
        .to_string()
}

pub fn tls_env() -> Vec<(&'static str, String)> {
    vec![
        ("RUNBOOK_REGISTRY_USERNAME", "runbook".to_string()),
        ("RUNBOOK_REGISTRY_PASSWORD", tls_password()),
    ]
}

pub fn ca() -> String {
    format!("{REGISTRY_DIR}/certs/ca.pem")
}

pub fn host(
    sandbox: &Sandbox,
    args: &[&str],
    env: &[(&'static str, String)],
) -> runbook_tests::Run {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // An empty DOCKER_CONFIG: this machine's own `docker login` never leaks into a test.
    let docker_config = sandbox.path().join("docker-config");
    std::fs::create_dir_all(&docker_config).unwrap();
    let mut all = vec![("DOCKER_CONFIG", docker_config.to_str().unwrap())];
    all.extend(env);
    sandbox.host_env(args, &all)
}

pub fn ok(run: &runbook_tests::Run, what: &str) -> String {
    assert_eq!(run.code, 0, "{what}: {}\n{}", run.stdout, run.stderr);
    run.stdout.clone()
}

/// `host push` prints the pinned reference; its digest.
pub fn push(
    sandbox: &Sandbox,
    reference: &str,
    file: &Path,
    flags: &[&str],
    env: &[(&'static str, String)],
) -> String {
    let mut args = vec!["push", reference, file.to_str().unwrap()];
    args.extend(flags);
    let out = ok(&host(sandbox, &args, env), "push");
    let pinned = out.trim();
    assert!(
        pinned.starts_with(&format!("oci://{}", reference.trim_start_matches("oci://"))),
        "{pinned}"
    );
    let digest = pinned.rsplit_once('@').unwrap().1.to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    digest
}

pub fn run_json(
    sandbox: &Sandbox,
    args: &[&str],
    env: &[(&'static str, String)],
) -> (i32, serde_json::Value, String) {
    let mut all = vec!["run"];
    all.extend(args);
    all.push("--json");
    let run = host(sandbox, &all, env);
    let json = serde_json::from_str(&run.stdout).unwrap_or(serde_json::Value::Null);
    (run.code, json, run.stderr)
}

pub fn lock_digest(sandbox: &Sandbox, name: &str) -> String {
    let lock = std::fs::read_to_string(sandbox.path().join("host.lock")).expect("host.lock");
    let table: serde_json::Value = serde_json::to_value(
        lock.lines()
            .skip_while(|l| !l.starts_with(&format!("[plugins.{name}]")))
            .skip(1)
            .take_while(|l| !l.starts_with('['))
            .filter_map(|l| l.split_once(" = "))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect::<std::collections::BTreeMap<_, _>>(),
    )
    .unwrap();
    table["digest"]
        .as_str()
        .expect("a digest in host.lock")
        .to_string()
}

/// A component with a custom section of its own appended (still valid, other bytes, other
/// digest): no other push of the test suite shares its blob.
pub fn unique_copy(component: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(component).unwrap();
    let name = b"runbook-test";
    let payload = format!("{:?}-{}", std::time::SystemTime::now(), std::process::id());
    let size = 1 + name.len() + payload.len();
    assert!(size < 128, "one-byte LEB128 sizes");
    bytes.push(0);
    bytes.push(size as u8);
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload.as_bytes());
    bytes
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Whether the compile cache holds any compiled component.
pub fn compiled_any(cache: &Path) -> bool {
    fn walk(dir: &Path) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        entries.flatten().any(|e| {
            let path = e.path();
            if path.is_dir() {
                // Pulled artifacts live beside the cache; they are not compiled code.
                path.file_name() != Some("oci".as_ref()) && walk(&path)
            } else {
                path.extension().is_some_and(|x| x == "cwasm")
            }
        })
    }
    walk(cache)
}

/// Compiled components in a compile cache.
pub fn cwasm_count(cache: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() && e.file_name() != "oci" {
                cwasm_count(&path)
            } else {
                usize::from(path.extension().is_some_and(|x| x == "cwasm"))
            }
        })
        .sum()
}
