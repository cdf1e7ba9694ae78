//! The bollard side of the docker capability: one connection per host (negotiated lazily, so
//! a host without Docker starts fine) and every request time-bounded; `answers.rs` maps what
//! the engine says onto the WIT records. No grant logic here: `mod.rs` decides, this performs.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{
    InspectContainerOptions, InspectNetworkOptions, ListContainersOptions, LogsOptions,
    PruneContainersOptions, PruneImagesOptions, RestartContainerOptions, StatsOptions,
    StopContainerOptions,
};
use futures::StreamExt;
use tokio::sync::OnceCell;

use super::answers::{details, stats, system_df};
use crate::bindings::CapError;
use crate::bindings::runbook::host::docker::{
    ContainerDetails, ContainerStats, LogLine, LogStream, PruneOptions, PruneReport, SystemDf,
};

/// Most log lines one call returns, whatever `tail` asks for.
pub const MAX_LOG_LINES: u32 = 10_000;
const MAX_LOG_BYTES: usize = 4 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on any single engine request that has no timeout of its own.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// A disk usage walk sizes every layer and volume: slow on a full disk, which is when it is asked.
const DISK_USAGE_TIMEOUT: Duration = Duration::from_secs(60);

pub struct DockerEngine {
    endpoint: String,
    docker: OnceCell<Docker>,
    /// `connect_ahead` was asked once already: it is not retried for every run.
    ahead: AtomicBool,
}

impl Default for DockerEngine {
    fn default() -> Self {
        Self::from_env()
    }
}

impl DockerEngine {
    /// `DOCKER_HOST`, else the default local socket.
    pub fn from_env() -> Self {
        let endpoint = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
        Self {
            endpoint,
            docker: OnceCell::new(),
            ahead: AtomicBool::new(false),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Connects and negotiates the API version on first use; failures are not cached so an
    /// engine that comes back is picked up. A caller waits at most `CONNECT_TIMEOUT` in all,
    /// also when it finds another connect (`connect_ahead`) under way.
    async fn client(&self) -> Result<&Docker, CapError> {
        let connect = self.docker.get_or_try_init(|| async {
            let docker = Docker::connect_with_local_defaults().map_err(|e| self.unanswered(e))?;
            docker
                .negotiate_version()
                .await
                .map_err(|e| self.unanswered(e))
        });
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(connected) => connected,
            Err(_) => Err(CapError::Unavailable(format!(
                "the Docker engine at {} did not answer within {}s",
                self.endpoint,
                CONNECT_TIMEOUT.as_secs()
            ))),
        }
    }

    fn unanswered(&self, e: BollardError) -> CapError {
        CapError::Unavailable(format!(
            "no Docker engine answers at {}: {e}",
            self.endpoint
        ))
    }

    /// Starts connecting in the background, so the version handshake (a `/version` round trip
    /// the engine takes ~10 ms to answer) overlaps the run's other work instead of delaying its
    /// first docker call. Once per engine (a server with no Docker engine does not try again
    /// for every run); a failure is forgotten like any failed connect: the call tries again and
    /// reports it.
    pub fn connect_ahead(self: &Arc<Self>) {
        if self.docker.initialized() || self.ahead.swap(true, Ordering::Relaxed) {
            return;
        }
        let engine = self.clone();
        tokio::spawn(async move {
            let _ = engine.client().await;
        });
    }

    /// Runs one request with a deadline, mapping the engine's errors onto the WIT kinds.
    async fn call<T, F>(
        &self,
        what: &str,
        timeout: Duration,
        f: impl FnOnce(Docker) -> F,
    ) -> Result<T, CapError>
    where
        F: Future<Output = Result<T, BollardError>>,
    {
        let docker = self.client().await?.clone();
        match tokio::time::timeout(timeout, f(docker)).await {
            Ok(result) => result.map_err(|e| self.map_error(what, e)),
            Err(_) => Err(CapError::Timeout(format!(
                "{what}: the Docker engine did not answer within {}s",
                timeout.as_secs()
            ))),
        }
    }

    fn map_error(&self, what: &str, error: BollardError) -> CapError {
        match error {
            BollardError::DockerResponseServerError {
                status_code,
                message,
            } => match status_code {
                404 => CapError::NotFound(format!("{what}: {message}")),
                400 => CapError::Invalid(format!("{what}: {message}")),
                _ => CapError::Failed(format!("{what}: {message} (HTTP {status_code})")),
            },
            BollardError::RequestTimeoutError => {
                CapError::Timeout(format!("{what}: the Docker engine did not answer"))
            }
            BollardError::IOError { .. }
            | BollardError::HyperResponseError { .. }
            | BollardError::SocketNotFoundError(_) => CapError::Unavailable(format!(
                "{what}: Docker engine at {}: {error}",
                self.endpoint
            )),
            other => CapError::Failed(format!("{what}: {other}")),
        }
    }

    pub async fn inspect_raw(&self, name: &str) -> Result<ContainerInspectResponse, CapError> {
        let owned = name.to_string();
        self.call(&format!("inspect {name}"), CALL_TIMEOUT, |d| async move {
            d.inspect_container(&owned, None::<InspectContainerOptions>)
                .await
        })
        .await
    }

    pub async fn inspect(&self, name: &str) -> Result<ContainerDetails, CapError> {
        Ok(details(self.inspect_raw(name).await?))
    }

    /// Ids and names of containers (running or not) carrying all the given label selectors.
    pub async fn list(
        &self,
        all: bool,
        labels: &[String],
    ) -> Result<Vec<(String, String)>, CapError> {
        let mut filters = HashMap::new();
        if !labels.is_empty() {
            filters.insert("label".to_string(), labels.to_vec());
        }
        let options = ListContainersOptions {
            all,
            filters: Some(filters),
            ..Default::default()
        };
        let summaries = self
            .call("list containers", CALL_TIMEOUT, |d| async move {
                d.list_containers(Some(options)).await
            })
            .await?;
        Ok(summaries
            .into_iter()
            .filter_map(|s| {
                let name = s.names?.into_iter().next()?;
                Some((s.id?, name.trim_start_matches('/').to_string()))
            })
            .collect())
    }

    /// Full id and name of a network (by name, id or id prefix).
    pub async fn inspect_network(&self, reference: &str) -> Result<(String, String), CapError> {
        let owned = reference.to_string();
        let network = self
            .call(
                &format!("inspect network {reference}"),
                CALL_TIMEOUT,
                |d| async move {
                    d.inspect_network(&owned, None::<InspectNetworkOptions>)
                        .await
                },
            )
            .await?;
        Ok((
            network.id.unwrap_or_default(),
            network.name.unwrap_or_default(),
        ))
    }

    pub async fn logs(
        &self,
        name: &str,
        tail: Option<u32>,
        since_secs: Option<u64>,
        timestamps: bool,
    ) -> Result<Vec<LogLine>, CapError> {
        let since = since_secs
            .map(|s| unix_now().saturating_sub(s) as i32)
            .unwrap_or(0);
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            since,
            timestamps,
            tail: tail.unwrap_or(MAX_LOG_LINES).min(MAX_LOG_LINES).to_string(),
            ..Default::default()
        };
        let owned = name.to_string();
        self.call(&format!("logs {name}"), CALL_TIMEOUT, |d| async move {
            let mut stream = d.logs(&owned, Some(options));
            let mut lines = Vec::new();
            let mut bytes = 0;
            while let Some(chunk) = stream.next().await {
                let (stream, message) = match chunk? {
                    LogOutput::StdErr { message } => (LogStream::Stderr, message),
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        (LogStream::Stdout, message)
                    }
                    LogOutput::StdIn { .. } => continue,
                };
                bytes += message.len();
                for text in String::from_utf8_lossy(&message).lines() {
                    lines.push(LogLine {
                        stream,
                        text: text.to_string(),
                    });
                }
                if bytes > MAX_LOG_BYTES {
                    break;
                }
            }
            Ok(lines)
        })
        .await
    }

    pub async fn start(&self, name: &str) -> Result<(), CapError> {
        let owned = name.to_string();
        self.call(&format!("start {name}"), CALL_TIMEOUT, |d| async move {
            d.start_container(
                &owned,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
        })
        .await
        .or_else(already_done)
    }

    pub async fn stop(&self, name: &str, timeout_secs: Option<u32>) -> Result<(), CapError> {
        let owned = name.to_string();
        let options = StopContainerOptions {
            t: timeout_secs.map(|t| t as i32),
            ..Default::default()
        };
        self.call(
            &format!("stop {name}"),
            grace(timeout_secs),
            |d| async move { d.stop_container(&owned, Some(options)).await },
        )
        .await
        .or_else(already_done)
    }

    pub async fn restart(&self, name: &str, timeout_secs: Option<u32>) -> Result<(), CapError> {
        let owned = name.to_string();
        let options = RestartContainerOptions {
            t: timeout_secs.map(|t| t as i32),
            ..Default::default()
        };
        self.call(
            &format!("restart {name}"),
            grace(timeout_secs),
            |d| async move { d.restart_container(&owned, Some(options)).await },
        )
        .await
    }

    pub async fn pause(&self, name: &str) -> Result<(), CapError> {
        let owned = name.to_string();
        self.call(&format!("pause {name}"), CALL_TIMEOUT, |d| async move {
            d.pause_container(&owned).await
        })
        .await
    }

    pub async fn unpause(&self, name: &str) -> Result<(), CapError> {
        let owned = name.to_string();
        self.call(&format!("unpause {name}"), CALL_TIMEOUT, |d| async move {
            d.unpause_container(&owned).await
        })
        .await
    }

    pub async fn stats(&self, name: &str) -> Result<ContainerStats, CapError> {
        let owned = name.to_string();
        let sample = self
            .call(&format!("stats {name}"), CALL_TIMEOUT, |d| async move {
                let options = StatsOptions {
                    stream: false,
                    one_shot: false,
                };
                let mut stream = d.stats(&owned, Some(options));
                match stream.next().await {
                    Some(sample) => sample.map(Some),
                    None => Ok(None),
                }
            })
            .await?;
        let sample = sample.ok_or_else(|| CapError::Failed(format!("stats {name}: no sample")))?;
        Ok(stats(&sample))
    }

    pub async fn disk_usage(&self) -> Result<SystemDf, CapError> {
        let df = self
            .call("system df", DISK_USAGE_TIMEOUT, |d| async move {
                waiting_out_busy(|| d.df(None)).await
            })
            .await?;
        Ok(system_df(&df))
    }

    pub async fn prune(&self, options: &PruneOptions) -> Result<PruneReport, CapError> {
        let mut report = PruneReport {
            containers_deleted: 0,
            images_deleted: 0,
            volumes_deleted: 0,
            bytes_reclaimed: 0,
        };
        let long = Duration::from_secs(120);
        if options.containers {
            let r = self
                .call("prune containers", long, |d| async move {
                    waiting_out_busy(|| d.prune_containers(None::<PruneContainersOptions>)).await
                })
                .await?;
            report.containers_deleted = r.containers_deleted.map_or(0, |v| v.len() as u32);
            report.bytes_reclaimed += r.space_reclaimed.unwrap_or(0).max(0) as u64;
        }
        if options.images {
            // Dangling only unless all-images: an image a stopped service needs is not junk.
            let dangling = if options.all_images { "false" } else { "true" };
            let filters = HashMap::from([("dangling".to_string(), vec![dangling.to_string()])]);
            let r = self
                .call("prune images", long, |d| async move {
                    waiting_out_busy(|| {
                        d.prune_images(Some(PruneImagesOptions {
                            filters: Some(filters.clone()),
                        }))
                    })
                    .await
                })
                .await?;
            report.images_deleted = r.images_deleted.map_or(0, |v| v.len() as u32);
            report.bytes_reclaimed += r.space_reclaimed.unwrap_or(0).max(0) as u64;
        }
        if options.build_cache {
            let r = self
                .call("prune build cache", long, |d| async move {
                    waiting_out_busy(|| {
                        d.prune_build(None::<bollard::query_parameters::PruneBuildOptions>)
                    })
                    .await
                })
                .await?;
            report.bytes_reclaimed += r.space_reclaimed.unwrap_or(0).max(0) as u64;
        }
        if options.volumes {
            let r = self
                .call("prune volumes", long, |d| async move {
                    waiting_out_busy(|| {
                        d.prune_volumes(None::<bollard::query_parameters::PruneVolumesOptions>)
                    })
                    .await
                })
                .await?;
            report.volumes_deleted = r.volumes_deleted.map_or(0, |v| v.len() as u32);
            report.bytes_reclaimed += r.space_reclaimed.unwrap_or(0).max(0) as u64;
        }
        Ok(report)
    }

    /// By full ids only: `mod.rs` resolved and checked both.
    pub async fn network_disconnect(
        &self,
        container_id: &str,
        network_id: &str,
        force: bool,
    ) -> Result<(), CapError> {
        let request = bollard::models::NetworkDisconnectRequest {
            container: Some(container_id.to_string()),
            force: Some(force),
        };
        let network = network_id.to_string();
        self.call(
            &format!("disconnect {container_id} from {network}"),
            CALL_TIMEOUT,
            |d| async move { d.disconnect_network(&network, request).await },
        )
        .await
    }
}

/// Docker answers 304 when a container is already in the wanted state: that is success.
fn already_done(error: CapError) -> Result<(), CapError> {
    match &error {
        CapError::Failed(detail) if detail.ends_with("(HTTP 304)") => Ok(()),
        _ => Err(error),
    }
}

/// Stop/restart wait for the container's own grace period first.
fn grace(timeout_secs: Option<u32>) -> Duration {
    CALL_TIMEOUT + Duration::from_secs(u64::from(timeout_secs.unwrap_or(10)))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Older engines (Debian's 20.10 among them) walk disk usage, and prune, for one caller at a
/// time and answer any other at once with an error instead of waiting. Two playbooks (or an
/// operator's `docker system df`) asking together is normal on a bad day, so such an answer is
/// waited out and the request made again; the caller's deadline bounds the waiting.
async fn waiting_out_busy<T, Answer>(mut ask: impl FnMut() -> Answer) -> Result<T, BollardError>
where
    Answer: Future<Output = Result<T, BollardError>>,
{
    let mut pauses = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(20))
        .with_max_delay(Duration::from_millis(500))
        .with_jitter()
        .without_max_times()
        .build();
    loop {
        match ask().await {
            Err(busy) if engine_busy(&busy) => {
                let pause = pauses.next().unwrap_or(Duration::from_millis(500));
                tokio::time::sleep(pause).await;
            }
            answer => return answer,
        }
    }
}

/// The engine's "another caller is doing this now" answers: moby's `system df` (500) and its
/// container, image and volume prunes (409).
fn engine_busy(error: &BollardError) -> bool {
    match error {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => {
            (*status_code == 500 && message.contains("disk usage operation is already running"))
                || (*status_code == 409 && message.contains("prune operation is already running"))
        }
        _ => false,
    }
}
