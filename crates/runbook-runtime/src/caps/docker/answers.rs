//! The engine's answers mapped onto the WIT records, the way the docker CLI shows them.

use bollard::models::{ContainerInspectResponse, ContainerStatsResponse, SystemDataUsageResponse};

use crate::bindings::runbook::host::docker::{
    Container, ContainerDetails, ContainerStats, DfSection, SystemDf,
};

/// Docker's zero time means "never".
fn time(value: Option<String>) -> Option<String> {
    value.filter(|t| !t.is_empty() && !t.starts_with("0001-01-01"))
}

pub(super) fn container(resp: &ContainerInspectResponse) -> Container {
    let state = resp.state.clone().unwrap_or_default();
    let config = resp.config.clone().unwrap_or_default();
    let health = state
        .health
        .as_ref()
        .and_then(|h| h.status)
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty() && s != "none");
    let status_word = state.status.map(|s| s.to_string()).unwrap_or_default();
    let mut labels: Vec<(String, String)> = config.labels.unwrap_or_default().into_iter().collect();
    labels.sort();
    Container {
        id: resp.id.clone().unwrap_or_default(),
        name: resp
            .name
            .clone()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        image: config.image.unwrap_or_default(),
        status: match &health {
            Some(h) => format!("{status_word} ({h})"),
            None => status_word.clone(),
        },
        state: status_word,
        health,
        restart_count: resp.restart_count.unwrap_or(0).max(0) as u32,
        exit_code: state.exit_code,
        started_at: time(state.started_at),
        finished_at: time(state.finished_at),
        labels,
    }
}

pub(super) fn details(resp: ContainerInspectResponse) -> ContainerDetails {
    let summary = container(&resp);
    let state = resp.state.clone().unwrap_or_default();
    let config = resp.config.clone().unwrap_or_default();
    let mut command = config.entrypoint.unwrap_or_default();
    command.extend(config.cmd.unwrap_or_default());
    let mut networks: Vec<String> = resp
        .network_settings
        .and_then(|n| n.networks)
        .map(|n| n.into_keys().collect())
        .unwrap_or_default();
    networks.sort();
    ContainerDetails {
        container: summary,
        command,
        oom_killed: state.oom_killed.unwrap_or(false),
        error: state.error.unwrap_or_default(),
        restart_policy: resp
            .host_config
            .and_then(|h| h.restart_policy)
            .and_then(|p| p.name)
            .map(|n| n.to_string())
            .unwrap_or_default(),
        networks,
        health_log: state
            .health
            .and_then(|h| h.log)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.output.map(|o| o.trim().to_string()))
            .collect(),
    }
}

pub(super) fn stats(sample: &ContainerStatsResponse) -> ContainerStats {
    let cpu = sample.cpu_stats.clone().unwrap_or_default();
    let pre = sample.precpu_stats.clone().unwrap_or_default();
    let total = |c: &bollard::models::ContainerCpuStats| {
        c.cpu_usage
            .as_ref()
            .and_then(|u| u.total_usage)
            .unwrap_or(0)
    };
    let cpu_delta = total(&cpu).saturating_sub(total(&pre)) as f64;
    let system_delta = cpu
        .system_cpu_usage
        .unwrap_or(0)
        .saturating_sub(pre.system_cpu_usage.unwrap_or(0)) as f64;
    let cpus = cpu.online_cpus.unwrap_or(1).max(1) as f64;
    let memory = sample.memory_stats.clone().unwrap_or_default();
    // Like `docker stats`: page cache is not counted as used.
    let cache = memory
        .stats
        .as_ref()
        .and_then(|s| {
            s.get("inactive_file")
                .or_else(|| s.get("total_inactive_file"))
                .copied()
        })
        .unwrap_or(0);
    ContainerStats {
        cpu_percent: if system_delta > 0.0 {
            cpu_delta / system_delta * cpus * 100.0
        } else {
            0.0
        },
        memory_used: memory.usage.unwrap_or(0).saturating_sub(cache),
        memory_limit: memory.limit.unwrap_or(0),
        pids: sample
            .pids_stats
            .as_ref()
            .and_then(|p| p.current)
            .unwrap_or(0),
    }
}

/// The figures `docker system df` prints, computed the way the docker CLI computes them.
pub(super) fn system_df(df: &SystemDataUsageResponse) -> SystemDf {
    use bollard::models::{BuildCache, ContainerSummary, Volume};

    fn section<T>(items: &[T], active: impl Fn(&T) -> bool, size: impl Fn(&T) -> u64) -> DfSection {
        DfSection {
            count: items.len() as u32,
            active: items.iter().filter(|i| active(i)).count() as u32,
            size_bytes: items.iter().map(&size).sum(),
            reclaimable_bytes: items.iter().filter(|i| !active(i)).map(&size).sum(),
        }
    }
    let bytes = |n: Option<i64>| n.unwrap_or(0).max(0) as u64;

    // Images: the total is the layers' size; what running containers' images use is kept.
    let images = df.images.as_deref().unwrap_or_default();
    let layers = bytes(df.layers_size);
    let in_use: i64 = images
        .iter()
        .filter(|i| i.containers > 0 && i.size >= 0 && i.shared_size >= 0)
        .map(|i| i.size - i.shared_size)
        .sum();
    let images = DfSection {
        count: images.len() as u32,
        active: images.iter().filter(|i| i.containers > 0).count() as u32,
        size_bytes: layers,
        reclaimable_bytes: layers.saturating_sub(in_use.max(0) as u64),
    };

    let running = |c: &ContainerSummary| {
        matches!(
            c.state.map(|s| s.to_string()).as_deref(),
            Some("running" | "paused")
        )
    };
    let containers = section(
        df.containers.as_deref().unwrap_or_default(),
        running,
        |c: &ContainerSummary| bytes(c.size_rw),
    );
    let volumes = section(
        df.volumes.as_deref().unwrap_or_default(),
        |v: &Volume| v.usage_data.as_ref().is_some_and(|u| u.ref_count > 0),
        |v: &Volume| v.usage_data.as_ref().map_or(0, |u| u.size.max(0) as u64),
    );
    // Shared build-cache records are counted once, under the record that owns them.
    let unshared: Vec<BuildCache> = df
        .build_cache
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|b| !b.shared.unwrap_or(false))
        .cloned()
        .collect();
    let mut build_cache = section(
        &unshared,
        |b: &BuildCache| b.in_use.unwrap_or(false),
        |b: &BuildCache| bytes(b.size),
    );
    build_cache.count = df.build_cache.as_ref().map_or(0, |b| b.len() as u32);
    SystemDf {
        images,
        containers,
        volumes,
        build_cache,
    }
}
