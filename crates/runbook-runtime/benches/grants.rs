//! What the grant checks cost per capability call: the same operation timed with the checks a
//! playbook's call goes through and without them, interleaved in one process so the ratio holds
//! on a noisy machine. Printed as checked/unchecked (1.00x = free).
//!
//! - fs-read `read` of a 4 KiB file: root lookup + `..`/NUL checks + cap-std resolution and
//!   open beneath the root + the protected-state checks (path, handle), against `std::fs` open + read of the same path.
//! - http GET to a local peer by name (`localhost`): origin grant + literal check + resolving
//!   through the guarded resolver, against a plain reqwest client.
//! - docker inspect of a container: the name-glob rule, and a label rule (one extra inspect to
//!   learn the labels), against the bare inspect. Skipped without a Docker engine.

use std::hint::black_box;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runbook_core::policy::{DockerRule, DockerVerb, Grants};
use runbook_runtime::caps::docker::{DockerEngine, rule_covers};
use runbook_runtime::caps::fs_read::{FsRead, Protected, ops};
use runbook_runtime::caps::http::egress::EgressPolicy;
use runbook_runtime::caps::http::{HttpClient, origin_granted};

/// Mean time of `f` over `rounds`, in microseconds, after a short warm-up.
async fn time<F, Fut>(rounds: u32, mut f: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    for _ in 0..rounds / 10 {
        f().await;
    }
    let started = Instant::now();
    for _ in 0..rounds {
        f().await;
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)
}

/// Alternates the two measurements a few times and keeps the best mean of each: the noise on
/// a shared machine only ever adds time.
async fn compare<A, AF, B, BF>(name: &str, rounds: u32, mut checked: A, mut bare: B)
where
    A: FnMut() -> AF,
    AF: Future<Output = ()>,
    B: FnMut() -> BF,
    BF: Future<Output = ()>,
{
    let (mut with, mut without) = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        with = with.min(time(rounds, &mut checked).await);
        without = without.min(time(rounds, &mut bare).await);
    }
    println!(
        "{name:<46} checked {with:>9.2} µs · unchecked {without:>9.2} µs · ratio {:.2}x · \
         checks {:+.2} µs per call",
        with / without,
        with - without
    );
}

/// Answers every request with a small 200, on 127.0.0.1.
fn peer() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 2048];
            let _ = stream.read(&mut buf);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    port
}

fn docker_cli(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // fs-read
    let dir = tempfile::tempdir()?;
    let root = dir.path().canonicalize()?;
    let file = root.join("logs/app.log");
    std::fs::create_dir_all(file.parent().unwrap())?;
    std::fs::write(&file, vec![b'x'; 4096])?;
    let grants = Grants {
        fs_read: vec!["/etc".into(), "/var/log".into(), root.clone()],
        ..Grants::default()
    };
    let deadline = Instant::now() + Duration::from_secs(3600);
    let (fs, _) = FsRead::new(
        &grants,
        Arc::new(Protected::default()),
        runbook_runtime::state::RunClock::new(
            deadline.saturating_duration_since(std::time::Instant::now()),
        ),
    );
    let path = file.display().to_string();
    compare(
        "fs-read read 4 KiB (3 roots granted)",
        20_000,
        || async {
            black_box(fs.with_cx(|cx| ops::read(cx, &path, 0, 4096)).unwrap());
        },
        || async {
            let mut buf = Vec::new();
            std::fs::File::open(&path)
                .unwrap()
                .take(4096)
                .read_to_end(&mut buf)
                .unwrap();
            black_box(buf);
        },
    )
    .await;

    // http
    let port = peer();
    let url = format!("http://localhost:{port}/health");
    let grants = Grants {
        http: vec![
            "https://status.example.com".into(),
            "http://127.0.0.1:*".into(),
            format!("http://localhost:{port}"),
        ],
        ..Grants::default()
    };
    let guarded = HttpClient::new()?;
    let policy = Arc::new(EgressPolicy::from_grants(&grants));
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()?;
    compare(
        "http GET by name to a local peer",
        2_000,
        || async {
            let parsed = url::Url::parse(&url).unwrap();
            EgressPolicy::check_url(&url, &parsed).unwrap();
            assert!(origin_granted(&grants, &parsed));
            let send = guarded.client().get(parsed).send();
            let response = policy.clone().scope(send).await.unwrap();
            black_box(response.bytes().await.unwrap());
        },
        || async {
            let response = plain.get(&url).send().await.unwrap();
            black_box(response.bytes().await.unwrap());
        },
    )
    .await;

    // docker
    let name = format!("rb6-bench-{}", std::process::id());
    let started = docker_cli(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "team=ops",
        "runbook-test/busybox:1",
        "sleep",
        "300",
    ]);
    if started.is_none() {
        println!(
            "docker: skipped (no engine, or no runbook-test/busybox:1 image: scripts/test-env.sh)"
        );
        return Ok(());
    }
    let docker = DockerEngine::from_env();
    let by_name = DockerRule {
        containers: vec!["web-*".into(), "rb6-bench-*".into()],
        verbs: vec![DockerVerb::Read, DockerVerb::Restart],
        ..DockerRule::default()
    };
    let by_label = DockerRule {
        labels: vec!["team=ops".into()],
        verbs: vec![DockerVerb::Read],
        ..DockerRule::default()
    };
    let result = async {
        compare(
            "docker inspect, name-glob rule",
            300,
            || async {
                assert!(rule_covers(&by_name, &name, None));
                black_box(docker.inspect_raw(&name).await.unwrap());
            },
            || async {
                black_box(docker.inspect_raw(&name).await.unwrap());
            },
        )
        .await;
        compare(
            "docker inspect, label rule (one more inspect)",
            300,
            || async {
                let found = docker.inspect_raw(&name).await.unwrap();
                let labels: Vec<(String, String)> = found
                    .config
                    .and_then(|c| c.labels)
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                assert!(rule_covers(&by_label, &name, Some(&labels)));
                black_box(docker.inspect_raw(&name).await.unwrap());
            },
            || async {
                black_box(docker.inspect_raw(&name).await.unwrap());
            },
        )
        .await;
    };
    tokio::time::timeout(Duration::from_secs(300), result).await?;
    docker_cli(&["rm", "-f", &name]);
    Ok(())
}
