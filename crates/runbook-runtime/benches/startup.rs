//! Start-up cost of a playbook: compiling the component against loading it from the compile
//! cache, and a whole warm run, measured in one process so the ratios hold on a noisy machine.

use std::time::Instant;

use runbook_core::records::Trigger;
use runbook_runtime::catalog::BUILTINS;
use runbook_runtime::config::Config;
use runbook_runtime::notify::ConsoleStream;
use runbook_runtime::run::{Host, RunRequest};

const ROUNDS: usize = 20;

fn mean(samples: &[f64]) -> f64 {
    samples.iter().sum::<f64>() / samples.len() as f64
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    for (name, wasm) in BUILTINS {
        let mut compile = Vec::new();
        let mut cached = Vec::new();
        let mut prepare_warm = Vec::new();
        for _ in 0..ROUNDS {
            let cache = tempfile::tempdir()?;
            let mut host = Host::new(Config::default(), Some(cache.path().to_path_buf()))?;
            host.console = ConsoleStream::Stderr;
            let cold = host.prepare(name).await?;
            assert_eq!(cold.load.cache, "miss");
            compile.push(cold.load.compile_ms);
            let started = Instant::now();
            let warm = host.prepare(name).await?;
            prepare_warm.push(started.elapsed().as_secs_f64() * 1e3);
            assert_eq!(warm.load.cache, "hit");
            cached.push(warm.load.load_ms);
        }
        println!(
            "{name} ({} KiB): compile {:.2} ms · cached load {:.3} ms · compile/cached {:.0}x · \
             warm prepare (load + link + describe) {:.3} ms",
            wasm.len() >> 10,
            mean(&compile),
            mean(&cached),
            mean(&compile) / mean(&cached),
            mean(&prepare_warm),
        );
    }

    // A whole disk-full run with a warm cache, split into host overhead and capability calls.
    let cache = tempfile::tempdir()?;
    let mut host = Host::new(Config::default(), Some(cache.path().to_path_buf()))?;
    host.console = ConsoleStream::Stderr;
    let prepared = host.prepare("disk-full").await?;
    let mut total = Vec::new();
    let mut calls = Vec::new();
    for _ in 0..ROUNDS {
        let request = RunRequest {
            severity: None,
            params: vec![
                ("paths".into(), "/var/log".into()),
                ("channel".into(), "ops".into()),
            ],
            alert: None,
            trigger: Trigger::Cli,
            by: None,
            dry_run: true,
            dedup_key: None,
        };
        let record = host.run(&prepared, request, None).await?;
        total.push(record.timings.total_ms);
        calls.push(record.timings.capability_calls_ms);
    }
    println!(
        "disk-full run (dry, paths=/var/log): total {:.3} ms · in capability calls {:.3} ms · \
         host + guest overhead {:.3} ms ({:.0}% of the run)",
        mean(&total),
        mean(&calls),
        mean(&total) - mean(&calls),
        (mean(&total) - mean(&calls)) * 100.0 / mean(&total)
    );
    Ok(())
}
