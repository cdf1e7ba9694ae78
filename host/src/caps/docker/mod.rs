//! The `docker` capability: the only place playbooks reach the Docker engine. Every call is
//! checked against the playbook's docker rules (container by name glob or label, verb by name),
//! time-bounded, skipped with a "would …" record on a dry run when it mutates, and recorded.

mod engine;

use std::time::Instant;

use globset::Glob;
use serde_json::{Value, json};

pub use engine::DockerEngine;

use crate::bindings::CapError;
use crate::bindings::runbook::host::docker::{
    self, Container, ContainerDetails, ContainerStats, ListFilter, LogLine, LogOptions,
    PruneOptions, PruneReport, SystemDf,
};
use crate::policy::{DockerRule, DockerVerb};
use crate::state::RunState;

type CallResult<T> = wasmtime::Result<Result<T, CapError>>;

/// A name/label match of one rule; `labels` are the container's own.
pub fn rule_covers(rule: &DockerRule, name: &str, labels: Option<&[(String, String)]>) -> bool {
    let by_name = rule.containers.iter().any(|g| {
        Glob::new(g)
            .map(|g| g.compile_matcher().is_match(name))
            .unwrap_or(false)
    });
    let by_label = labels.is_some_and(|labels| {
        rule.labels
            .iter()
            .any(|selector| match selector.split_once('=') {
                Some((k, v)) => labels.iter().any(|(lk, lv)| lk == k && lv == v),
                None => labels.iter().any(|(lk, _)| lk == selector),
            })
    });
    by_name || by_label
}

fn verb_name(verb: DockerVerb) -> String {
    serde_json::to_value(verb)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

impl RunState {
    fn rules_for(&self, verb: DockerVerb) -> Vec<&DockerRule> {
        self.grants
            .docker
            .iter()
            .filter(|r| r.verbs.iter().any(|v| v.covers(verb)))
            .collect()
    }

    /// May `verb` touch `container`? Name globs are tried on the name as given; otherwise the
    /// container is inspected once to match its real name (the playbook may pass an id) and
    /// labels. A container that does not exist is `not-found` only if the verb is granted at all.
    async fn authorize(&mut self, verb: DockerVerb, container: &str) -> Result<(), CapError> {
        let denied = || {
            CapError::Denied(format!(
                "docker {} on container {container:?} is not granted to this playbook",
                verb_name(verb)
            ))
        };
        let rules = self.rules_for(verb);
        if rules.is_empty() {
            return Err(denied());
        }
        if rules.iter().any(|r| rule_covers(r, container, None)) {
            return Ok(());
        }
        let found = engine::container(&self.docker.inspect_raw(container).await?);
        if rules
            .iter()
            .any(|r| rule_covers(r, &found.name, Some(&found.labels)))
        {
            Ok(())
        } else {
            Err(denied())
        }
    }

    fn authorize_global(&self, verb: DockerVerb) -> Result<(), CapError> {
        if self.rules_for(verb).is_empty() {
            return Err(CapError::Denied(format!(
                "docker {} is not granted to this playbook",
                verb_name(verb)
            )));
        }
        Ok(())
    }

    /// A read-only or mutating call on one container: authorize, then perform (or, on a dry
    /// run, check the container exists and record "would …").
    async fn container_call<T, F>(
        &mut self,
        verb: DockerVerb,
        container: &str,
        args: Value,
        mutating: Option<T>,
        perform: impl FnOnce(std::sync::Arc<DockerEngine>, String) -> F,
        summary: impl FnOnce(&T) -> String,
    ) -> CallResult<T>
    where
        F: Future<Output = Result<T, CapError>>,
    {
        self.begin_call()?;
        let started = Instant::now();
        // The WIT function names are the verbs' names.
        let function = verb_name(verb);
        let function = function.as_str();
        let mut result = self.authorize(verb, container).await;
        if let Some(value) = mutating
            && result.is_ok()
            && self.dry_run
        {
            match self.docker.inspect_raw(container).await {
                Ok(_) => {
                    let detail = format!("would {function} {container}");
                    let elapsed = started.elapsed();
                    self.timeline
                        .call("docker", function, args, "would", Some(detail), elapsed);
                    return Ok(Ok(value));
                }
                Err(e) => result = Err(e),
            }
        }
        let result = match result {
            Ok(()) => perform(self.docker.clone(), container.to_string()).await,
            Err(e) => Err(e),
        };
        self.record_call(
            "docker",
            function,
            args,
            &result,
            summary,
            started.elapsed(),
        );
        Ok(result)
    }
}

impl docker::Host for RunState {
    async fn list_containers(&mut self, filter: ListFilter) -> CallResult<Vec<Container>> {
        self.begin_call()?;
        let started = Instant::now();
        let args = json!({ "all": filter.all, "name": filter.name, "labels": filter.labels });
        let result =
            super::panic_to_failed("docker.list-containers", self.list_granted(&filter)).await;
        self.record_call(
            "docker",
            "list-containers",
            args,
            &result,
            |c| format!("{} containers", c.len()),
            started.elapsed(),
        );
        Ok(result)
    }

    async fn inspect(&mut self, container: String) -> CallResult<ContainerDetails> {
        let args = json!({ "container": container });
        self.container_call(
            DockerVerb::Inspect,
            &container,
            args,
            None,
            |d, c| async move { d.inspect(&c).await },
            |d| {
                let c = &d.container;
                format!(
                    "{}{}, restarts {}, exit {}",
                    c.state,
                    c.health
                        .as_deref()
                        .map(|h| format!(" ({h})"))
                        .unwrap_or_default(),
                    c.restart_count,
                    c.exit_code.map_or("-".into(), |e| e.to_string())
                )
            },
        )
        .await
    }

    async fn logs(&mut self, container: String, options: LogOptions) -> CallResult<Vec<LogLine>> {
        let args = json!({ "container": container, "tail": options.tail, "since-secs": options.since_secs });
        self.container_call(
            DockerVerb::Logs,
            &container,
            args,
            None,
            |d, c| async move {
                d.logs(&c, options.tail, options.since_secs, options.timestamps)
                    .await
            },
            |l| format!("{} lines", l.len()),
        )
        .await
    }

    async fn start(&mut self, container: String) -> CallResult<()> {
        let args = json!({ "container": container });
        self.container_call(
            DockerVerb::Start,
            &container,
            args,
            Some(()),
            |d, c| async move { d.start(&c).await },
            |_| String::new(),
        )
        .await
    }

    async fn stop(&mut self, container: String, timeout_secs: Option<u32>) -> CallResult<()> {
        let args = json!({ "container": container, "timeout-secs": timeout_secs });
        self.container_call(
            DockerVerb::Stop,
            &container,
            args,
            Some(()),
            |d, c| async move { d.stop(&c, timeout_secs).await },
            |_| String::new(),
        )
        .await
    }

    async fn restart(&mut self, container: String, timeout_secs: Option<u32>) -> CallResult<()> {
        let args = json!({ "container": container, "timeout-secs": timeout_secs });
        self.container_call(
            DockerVerb::Restart,
            &container,
            args,
            Some(()),
            |d, c| async move { d.restart(&c, timeout_secs).await },
            |_| String::new(),
        )
        .await
    }

    async fn pause(&mut self, container: String) -> CallResult<()> {
        let args = json!({ "container": container });
        self.container_call(
            DockerVerb::Pause,
            &container,
            args,
            Some(()),
            |d, c| async move { d.pause(&c).await },
            |_| String::new(),
        )
        .await
    }

    async fn unpause(&mut self, container: String) -> CallResult<()> {
        let args = json!({ "container": container });
        self.container_call(
            DockerVerb::Unpause,
            &container,
            args,
            Some(()),
            |d, c| async move { d.unpause(&c).await },
            |_| String::new(),
        )
        .await
    }

    async fn stats(&mut self, container: String) -> CallResult<ContainerStats> {
        let args = json!({ "container": container });
        self.container_call(
            DockerVerb::Stats,
            &container,
            args,
            None,
            |d, c| async move { d.stats(&c).await },
            |s| {
                format!(
                    "cpu {:.1}%, memory {} of {} bytes",
                    s.cpu_percent, s.memory_used, s.memory_limit
                )
            },
        )
        .await
    }

    async fn disk_usage(&mut self) -> CallResult<SystemDf> {
        self.begin_call()?;
        let started = Instant::now();
        let result = match self.authorize_global(DockerVerb::DiskUsage) {
            Ok(()) => self.docker.disk_usage().await,
            Err(e) => Err(e),
        };
        self.record_call(
            "docker",
            "disk-usage",
            json!({}),
            &result,
            df_summary,
            started.elapsed(),
        );
        Ok(result)
    }

    async fn prune(&mut self, options: PruneOptions) -> CallResult<PruneReport> {
        self.begin_call()?;
        let started = Instant::now();
        let args = json!({
            "containers": options.containers, "images": options.images,
            "all-images": options.all_images, "build-cache": options.build_cache,
            "volumes": options.volumes,
        });
        let mut allowed = self.authorize_global(DockerVerb::Prune);
        if options.volumes && allowed.is_ok() {
            allowed = self.authorize_global(DockerVerb::PruneVolumes);
        }
        if allowed.is_ok() && self.dry_run {
            self.timeline.call(
                "docker",
                "prune",
                args,
                "would",
                Some("would prune".into()),
                started.elapsed(),
            );
            return Ok(Ok(PruneReport {
                containers_deleted: 0,
                images_deleted: 0,
                volumes_deleted: 0,
                bytes_reclaimed: 0,
            }));
        }
        let result = match allowed {
            Ok(()) => self.docker.prune(&options).await,
            Err(e) => Err(e),
        };
        self.record_call(
            "docker",
            "prune",
            args,
            &result,
            |r| {
                format!(
                    "{} containers, {} images, {} volumes deleted; {} bytes reclaimed",
                    r.containers_deleted, r.images_deleted, r.volumes_deleted, r.bytes_reclaimed
                )
            },
            started.elapsed(),
        );
        Ok(result)
    }

    async fn network_disconnect(
        &mut self,
        container: String,
        network: String,
        force: bool,
    ) -> CallResult<()> {
        let args = json!({ "container": container, "network": network, "force": force });
        self.container_call(
            DockerVerb::NetworkDisconnect,
            &container,
            args,
            Some(()),
            |d, c| async move { d.network_disconnect(&c, &network, force).await },
            |_| String::new(),
        )
        .await
    }
}

impl RunState {
    /// Containers matching the filter, limited to those the playbook may list: ungranted
    /// containers are invisible rather than an error.
    async fn list_granted(&mut self, filter: &ListFilter) -> Result<Vec<Container>, CapError> {
        let rules = self.rules_for(DockerVerb::List);
        if rules.is_empty() {
            return Err(CapError::Denied(
                "docker list is not granted to this playbook".into(),
            ));
        }
        let name_glob = match &filter.name {
            Some(g) => Some(
                Glob::new(g)
                    .map_err(|e| CapError::Invalid(format!("name glob {g:?}: {e}")))?
                    .compile_matcher(),
            ),
            None => None,
        };
        let mut found = Vec::new();
        for name in self.docker.list_names(filter.all, &filter.labels).await? {
            if name_glob.as_ref().is_some_and(|g| !g.is_match(&name)) {
                continue;
            }
            let container = match self.docker.inspect_raw(&name).await {
                Ok(resp) => engine::container(&resp),
                Err(CapError::NotFound(_)) => continue, // removed meanwhile
                Err(e) => return Err(e),
            };
            if rules
                .iter()
                .any(|r| rule_covers(r, &container.name, Some(&container.labels)))
            {
                found.push(container);
            }
            if found.len() >= 500 {
                break;
            }
        }
        Ok(found)
    }
}

/// Raw figures in the timeline, so the audit log can be compared with `docker system df`.
fn df_summary(df: &SystemDf) -> String {
    let section = |name: &str, s: &crate::bindings::runbook::host::docker::DfSection| {
        format!(
            "{name} {} ({} active) {} B, reclaimable {} B",
            s.count, s.active, s.size_bytes, s.reclaimable_bytes
        )
    };
    [
        section("images", &df.images),
        section("containers", &df.containers),
        section("volumes", &df.volumes),
        section("build-cache", &df.build_cache),
    ]
    .join("; ")
}
