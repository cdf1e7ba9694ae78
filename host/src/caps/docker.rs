//! The `docker` capability. The engine-backed implementation is the next issue's work; until
//! then every call is recorded and answers `unavailable`, so playbooks can already branch on it.

use serde_json::json;

use crate::bindings::CapError;
use crate::bindings::runbook::host::docker::{
    self, Container, ContainerDetails, ContainerStats, ListFilter, LogLine, LogOptions,
    PruneOptions, PruneReport, SystemDf,
};
use crate::state::RunState;

type CallResult<T> = wasmtime::Result<Result<T, CapError>>;

impl docker::Host for RunState {
    async fn list_containers(&mut self, filter: ListFilter) -> CallResult<Vec<Container>> {
        self.not_implemented(
            "docker",
            "list-containers",
            json!({ "all": filter.all, "name": filter.name, "labels": filter.labels }),
        )
    }
    async fn inspect(&mut self, container: String) -> CallResult<ContainerDetails> {
        self.not_implemented("docker", "inspect", json!({ "container": container }))
    }
    async fn logs(&mut self, container: String, options: LogOptions) -> CallResult<Vec<LogLine>> {
        self.not_implemented("docker", "logs", json!({ "container": container, "tail": options.tail, "since-secs": options.since_secs }))
    }
    async fn start(&mut self, container: String) -> CallResult<()> {
        self.not_implemented("docker", "start", json!({ "container": container }))
    }
    async fn stop(&mut self, container: String, timeout_secs: Option<u32>) -> CallResult<()> {
        self.not_implemented(
            "docker",
            "stop",
            json!({ "container": container, "timeout-secs": timeout_secs }),
        )
    }
    async fn restart(&mut self, container: String, timeout_secs: Option<u32>) -> CallResult<()> {
        self.not_implemented(
            "docker",
            "restart",
            json!({ "container": container, "timeout-secs": timeout_secs }),
        )
    }
    async fn pause(&mut self, container: String) -> CallResult<()> {
        self.not_implemented("docker", "pause", json!({ "container": container }))
    }
    async fn unpause(&mut self, container: String) -> CallResult<()> {
        self.not_implemented("docker", "unpause", json!({ "container": container }))
    }
    async fn stats(&mut self, container: String) -> CallResult<ContainerStats> {
        self.not_implemented("docker", "stats", json!({ "container": container }))
    }
    async fn disk_usage(&mut self) -> CallResult<SystemDf> {
        self.not_implemented("docker", "disk-usage", json!({}))
    }
    async fn prune(&mut self, options: PruneOptions) -> CallResult<PruneReport> {
        self.not_implemented("docker", "prune", json!({
            "containers": options.containers, "images": options.images, "all-images": options.all_images,
            "build-cache": options.build_cache, "volumes": options.volumes,
        }))
    }
    async fn network_disconnect(
        &mut self,
        container: String,
        network: String,
        force: bool,
    ) -> CallResult<()> {
        self.not_implemented(
            "docker",
            "network-disconnect",
            json!({ "container": container, "network": network, "force": force }),
        )
    }
}
