//! Docker calls with crafted strings (tests/tests/docker_escapes.rs): container references that
//! try to walk the engine's URL space, network arguments aimed at other endpoints, oversized
//! globs and label filters. A refused call is returned as the run's error; a call that went
//! through says what it got back, so the test can tell whose container it touched.

use runbook_sdk::docker::{ListFilter, LogOptions};
use runbook_sdk::prelude::*;

/// Cases: `docker-op-<op>` (stop, restart, start, pause, stats, inspect, logs) on `target`;
/// `docker-disconnect` of `target` from the network in `url` (the playbook's second-target
/// parameter); `docker-list` with the name glob `target` and the label selector `url`.
pub fn run(case: &str, incident: &Incident) -> Option<Result<Outcome, Error>> {
    let param = |name: &str| expand(incident.param(name).unwrap_or_default());
    let target = param("target");
    Some(match case {
        "docker-disconnect" => docker::network_disconnect(&target, &param("url"), true)
            .map(|()| Outcome::no_action(format!("disconnected {target}"))),
        "docker-list" => docker::list_containers(&ListFilter {
            all: true,
            name: Some(target).filter(|t| !t.is_empty()),
            labels: Some(param("url"))
                .filter(|l| !l.is_empty())
                .into_iter()
                .collect(),
        })
        .map(|found| {
            let names: Vec<String> = found.into_iter().map(|c| c.name).collect();
            Outcome::no_action(format!("listed [{}]", names.join(",")))
        }),
        _ => op(case.strip_prefix("docker-op-")?, &target),
    })
}

/// `big:X` is X repeated to 1 MiB (too big to pass through a webhook's parameters).
fn expand(value: &str) -> String {
    match value.strip_prefix("big:") {
        Some(unit) if !unit.is_empty() => unit.repeat((1 << 20) / unit.len()),
        _ => value.to_string(),
    }
}

fn op(op: &str, target: &str) -> Result<Outcome, Error> {
    let summary = match op {
        "stop" => docker::stop(target, Some(1)).map(|()| format!("stopped {target}"))?,
        "restart" => docker::restart(target, Some(1)).map(|()| format!("restarted {target}"))?,
        "start" => docker::start(target).map(|()| format!("started {target}"))?,
        "pause" => docker::pause(target).map(|()| format!("paused {target}"))?,
        "stats" => docker::stats(target).map(|s| format!("stats pids {}", s.pids))?,
        "inspect" => {
            let d = docker::inspect(target)?;
            format!("inspected {} id {}", d.container.name, d.container.id)
        }
        "logs" => {
            let options = LogOptions {
                tail: Some(20),
                since_secs: None,
                timestamps: false,
            };
            let lines: Vec<String> = docker::logs(target, options)?
                .into_iter()
                .map(|l| l.text)
                .collect();
            format!("logs [{}]", lines.join("|"))
        }
        other => return Err(Error::Invalid(format!("unknown op {other:?}"))),
    };
    Ok(Outcome::no_action(summary))
}
