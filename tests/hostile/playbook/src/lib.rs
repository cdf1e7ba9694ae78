//! A playbook that misbehaves on purpose, one way per `case` parameter. The sandbox tests run
//! every case next to a well-behaved run and check the host contains it. A case that gets
//! past the sandbox returns `resolved` with a summary starting "ESCAPED", which the tests treat
//! as a failure; a refused capability call is returned as the run's error, so the run's reason
//! carries the host's own words.

mod console;
mod crash_recovery;
mod docker_escapes;
mod fleet;
mod fs_escapes;
mod fs_many;
mod fsperf;
mod output;
mod schedules;
mod streams;

use std::hint::black_box;

use runbook_sdk::http::Request;
use runbook_sdk::prelude::*;

fn describe() -> Description {
    // Wants every capability: the operator grants less, and the calls outside the grants must
    // come back `denied` while the run goes on.
    Description::new("hostile", "Misbehaves on purpose (sandbox tests)")
        .required_param("case", "What to try: loop, memory, recursion, logs, notify-flood, artifacts, fs-read, http, http-flood, hang, sleep, ambient, docker-restart, notify, panic, sockets, mutate")
        .param("target", "Path, URL, container, channel or address the case aims at", None)
        .param("url", "A second target for `mutate`: the URL it POSTs to", None)
        .param("header", "http-header: the header name to set", None)
        .param("name", "artifact-label: the artifact name", None)
        .param("content-type", "artifact-label: the content type", None)
        .wants(Capability::FsRead)
        .wants(Capability::Http)
        .wants(Capability::Docker)
        .wants(Capability::Notify)
}

fn run(incident: Incident) -> Result<Outcome, Error> {
    let target = incident.param("target").unwrap_or_default().to_string();
    let case = incident.param("case").unwrap_or_default();
    if let Some(result) = schedules::run(case, &incident) {
        return result;
    }
    if let Some(result) = streams::run(case, &incident) {
        return result;
    }
    if let Some(result) = console::run(case, &incident) {
        return result;
    }
    if let Some(result) = fleet::run(case, &incident) {
        return result;
    }
    if let Some(result) = fs_many::run(case, &incident) {
        return result;
    }
    if let Some(result) = fsperf::run(case, &incident) {
        return result;
    }
    if let Some(result) = output::run(case, &incident) {
        return result;
    }
    if let Some(result) = docker_escapes::run(case, &incident) {
        return result;
    }
    if let Some(result) = crash_recovery::run(case, &incident) {
        return result;
    }
    if let Some(result) = fs_escapes::run(case, &incident) {
        return result;
    }
    match case {
        "loop" => spin(),
        "memory" => hoard(),
        "recursion" => Ok(escaped(format!("recursion returned {}", recurse(0)))),
        "logs" => {
            for i in 0..10_000_000u64 {
                info!("line {i} of a flood of log lines");
            }
            Ok(escaped("logged ten million lines"))
        }
        "notify-flood" => {
            for i in 0..100_000 {
                notify::send(&target, &Message::new(format!("flood {i}")))?;
            }
            Ok(escaped("sent a hundred thousand notifications"))
        }
        "artifacts" => {
            let chunk = vec![b'x'; 1 << 20];
            for i in 0..1000 {
                report::attach(&format!("chunk-{i}"), "text/plain", &chunk)?;
            }
            Ok(escaped("attached a GiB of artifacts"))
        }
        "fs-read" => {
            let bytes = fs::read(&target, 0, 4096)?;
            // Whether this read was allowed is the grants' call; the tests check the kind.
            Ok(Outcome::no_action(format!(
                "read {} bytes of {target}",
                bytes.len()
            )))
        }
        "http" => {
            let response = http::send(&Request {
                method: "GET".into(),
                url: target.clone(),
                headers: Vec::new(),
                body: None,
                timeout_ms: Some(2000),
            })?;
            Ok(Outcome::no_action(format!(
                "HTTP {} from {target}",
                response.status
            )))
        }
        "http-flood" => {
            for _ in 0..100_000 {
                http::probe(&target, Some(2000))?;
            }
            Ok(escaped("probed a hundred thousand times"))
        }
        "hang" => {
            // Parked inside a capability call, where epoch ticks cannot reach it.
            http::probe(&target, Some(600_000))?;
            Ok(escaped("a probe of a silent peer came back"))
        }
        "sleep" => {
            // Parked inside WASI (clocks/poll), also out of the epoch's reach.
            std::thread::sleep(std::time::Duration::from_secs(600));
            Ok(escaped("slept ten minutes"))
        }
        "ambient" => {
            // What std offers a native program: files, environment, arguments.
            let file = std::fs::read("/etc/passwd").map(|b| b.len());
            let vars = std::env::vars().count();
            let args = std::env::args().count();
            if file.is_ok() || vars > 0 || args > 0 {
                return Ok(escaped(format!(
                    "ambient authority: file {file:?}, {vars} env vars, {args} args"
                )));
            }
            Err(Error::Failed(format!(
                "no ambient authority: /etc/passwd {}",
                file.unwrap_err()
            )))
        }
        "mutate" => {
            // Every kind of mutating call once; on a dry run each must be a "would" record.
            docker::restart(&target, Some(1))?;
            docker::stop(&target, Some(1))?;
            let url = incident.param("url").unwrap_or_default();
            let response = http::send(&Request {
                method: "POST".into(),
                url: url.into(),
                headers: vec![("authorization".into(), "Bearer s3cret-header".into())],
                body: Some(b"restart please".to_vec()),
                timeout_ms: Some(2000),
            })?;
            notify::send("ops", &Message::new("mutated"))?;
            Ok(Outcome::mitigated(format!(
                "mutated (POST answered {})",
                response.status
            )))
        }
        "docker-restart" => {
            docker::restart(&target, Some(1))?;
            Ok(escaped(format!("restarted {target}")))
        }
        "notify" => {
            notify::send(&target, &Message::new("hostile"))?;
            Ok(escaped(format!("notified {target}")))
        }
        "panic" => panic!("hostile playbook panics on purpose"),
        "sockets" => {
            // wasi:sockets straight from std: the host's WASI context allows no address.
            match std::net::TcpStream::connect(&target) {
                Ok(_) => Ok(escaped(format!("connected to {target} over wasi:sockets"))),
                Err(e) => Err(Error::Failed(format!(
                    "wasi:sockets connect to {target}: {e}"
                ))),
            }
        }
        other => Err(Error::Invalid(format!("unknown case {other:?}"))),
    }
}

fn escaped(summary: impl Into<String>) -> Outcome {
    Outcome::resolved(format!("ESCAPED: {}", summary.into()))
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Grows linear memory a MiB at a time, touching every page, until something stops it.
fn hoard() -> Result<Outcome, Error> {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    for _ in 0..4096 {
        kept.push(black_box(vec![1u8; 1 << 20]));
    }
    Ok(escaped(format!("held {} MiB", kept.len())))
}

/// Not a tail call, and only scalars (kept in wasm locals, not on Rust's shadow stack in
/// linear memory): it is the engine's wasm call stack that must run out.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let below = recurse(black_box(depth + 1));
    black_box(depth).wrapping_add(below)
}

runbook_sdk::export_playbook!(describe, run);
