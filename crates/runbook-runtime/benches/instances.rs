//! Host overhead per run of the trivial `noop` playbook (tests/hostile/noop): new store,
//! instantiate, call `run`, tear down, with the pooling allocator `host serve` uses against the
//! on-demand one, measured in one process so the ratio holds on a noisy machine. Then a burst of
//! 1,000 concurrent runs through a pool sized for the default config: every run must complete,
//! and the pool's metrics and the process's peak RSS must stay within the pool's memory cap.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use runbook_core::records::Trigger;
use runbook_runtime::config::Config;
use runbook_runtime::engine::{Allocation, PoolPlan};
use runbook_runtime::notify::ConsoleStream;
use runbook_runtime::run::{Host, Prepared, RunRequest};

const NOOP: &str = env!("RUNBOOK_NOOP_WASM");
const WARMUP: usize = 2_000;
const ROUNDS: usize = 20_000;
const BURST: usize = 1_000;

fn request() -> RunRequest {
    RunRequest {
        params: Vec::new(),
        alert: None,
        trigger: Trigger::Webhook,
        by: None,
        dry_run: false,
        dedup_key: None,
        severity: None,
    }
}

/// One run without a run store: (instantiate + call + teardown as the run record times them,
/// the whole `begin` + `execute`).
async fn one_run(host: &Host, prepared: &Prepared) -> (Duration, Duration) {
    let started = Instant::now();
    let pending = host.begin(prepared, request()).await.expect("begin");
    let record = host
        .execute(prepared, pending, None)
        .await
        .expect("execute");
    let whole = started.elapsed();
    assert_eq!(record.status, "no-action", "{:?}", record.reason);
    let t = &record.timings;
    let wasm = Duration::from_secs_f64((t.instantiate_ms + t.run_ms + t.teardown_ms) / 1e3);
    (wasm, whole)
}

struct Percentiles {
    p50: f64,
    p99: f64,
}

fn percentiles(mut samples: Vec<Duration>) -> Percentiles {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    Percentiles {
        p50: at(0.50),
        p99: at(0.99),
    }
}

async fn host(allocation: Allocation, cache: &Path) -> anyhow::Result<(Arc<Host>, Arc<Prepared>)> {
    let mut host = Host::with_allocation(Config::default(), Some(cache.to_path_buf()), allocation)?;
    host.console = ConsoleStream::Stderr;
    let prepared = host.prepare_file(Path::new(NOOP)).await?;
    Ok((Arc::new(host), Arc::new(prepared)))
}

/// Peak resident set of this process so far (VmHWM), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cache = tempfile::tempdir()?;
    let plan = PoolPlan::for_config(&Config::default());
    let (pooled, pooled_noop) = host(Allocation::Pooled(plan), cache.path()).await?;
    assert!(
        pooled.engine.pool().is_some(),
        "the pool could not be reserved on this machine"
    );
    let (on_demand, on_demand_noop) = host(Allocation::OnDemand, cache.path()).await?;

    // Interleaved in blocks so both see the same machine.
    let (mut pooled_samples, mut on_demand_samples) = (Vec::new(), Vec::new());
    for _ in 0..WARMUP {
        one_run(&pooled, &pooled_noop).await;
        one_run(&on_demand, &on_demand_noop).await;
    }
    for _ in 0..ROUNDS / 100 {
        for _ in 0..100 {
            pooled_samples.push(one_run(&pooled, &pooled_noop).await);
        }
        for _ in 0..100 {
            on_demand_samples.push(one_run(&on_demand, &on_demand_noop).await);
        }
    }
    println!("noop run, host overhead per run, {ROUNDS} runs each (µs):");
    println!(
        "  {:<46} {:>16} {:>16} {:>14}",
        "", "pooling + CoW", "on demand", "pooled/on-dem."
    );
    for (what, pick) in [
        (
            "instantiate + call + teardown (p50 / p99)",
            (|s: &(Duration, Duration)| s.0) as fn(&(Duration, Duration)) -> Duration,
        ),
        ("whole run: + state, run record (p50 / p99)", |s| s.1),
    ] {
        let p = percentiles(pooled_samples.iter().map(pick).collect());
        let o = percentiles(on_demand_samples.iter().map(pick).collect());
        println!(
            "  {what:<46} {:>7.1} / {:>6.1} {:>7.1} / {:>6.1} {:>6.2}x / {:.2}x",
            p.p50,
            p.p99,
            o.p50,
            o.p99,
            p.p50 / o.p50,
            p.p99 / o.p99
        );
    }
    drop((on_demand, on_demand_noop));

    // A burst: 1,000 runs spawned at once, each waiting for a pool slot as the server's runs do.
    let rss_before = peak_rss();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..BURST {
        let (host, noop) = (pooled.clone(), pooled_noop.clone());
        tasks.spawn(async move { one_run(&host, &noop).await });
    }
    let mut peak_memories = 0;
    let mut completed = 0;
    let metrics = pooled.engine.engine().pooling_allocator_metrics();
    while let Some(result) = tasks.join_next().await {
        result?;
        completed += 1;
        if let Some(m) = &metrics {
            peak_memories = peak_memories.max(m.memories());
        }
    }
    let elapsed = started.elapsed();
    let growth = peak_rss().saturating_sub(rss_before);
    let cap = plan.memory_cap_bytes();
    println!(
        "burst of {BURST} concurrent noop runs: all {completed} completed in {:.1} ms; pool of {} \
         slots × {} MiB = {} MiB cap; at most {peak_memories} memories live; peak RSS grew {:.1} MiB",
        elapsed.as_secs_f64() * 1e3,
        plan.slots,
        plan.memory_bytes >> 20,
        cap >> 20,
        growth as f64 / f64::from(1 << 20),
    );
    assert_eq!(completed, BURST);
    assert!(
        peak_memories <= plan.slots as usize * 4,
        "more memories live than the pool has slots for"
    );
    assert!(
        growth <= cap,
        "peak RSS grew {growth} bytes, over the pool's memory cap of {cap}"
    );
    Ok(())
}
