//! The `docker` capability: the only place playbooks reach the Docker engine. A reference a
//! playbook passes is first held to Docker's name grammar, then resolved by one inspect to the
//! container's id, name and labels; the grant is checked on those, and the action is performed
//! by id, so neither crafted text nor a rename in between can point it at another container.
//! Every call is time-bounded, skipped with a "would …" record on a dry run when it mutates,
//! and recorded.

mod answers;
mod engine;
mod reference;
mod replay;

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

pub use engine::DockerEngine;

use crate::bindings::CapError;
use crate::bindings::runbook::host::docker::{
    self, Container, ContainerDetails, ContainerStats, ListFilter, LogLine, LogOptions,
    PruneOptions, PruneReport, SystemDf,
};
use crate::calls::seam::{Gate, replay_call, taped, untargeted};
use crate::policy::{DockerRule, DockerVerb, name_glob};
use replay::container_gate;

/// The `docker` interface's view of a run: the run's `Calls` and the Docker engine.
pub struct DockerView<'a> {
    pub(crate) calls: &'a mut crate::calls::Calls,
    pub(crate) docker: &'a Arc<DockerEngine>,
}
crate::calls::view_of_calls!(DockerView);

/// Links the interface to `DockerView` (`add_to_linker_instance::<_, Docker>`).
pub struct Docker;
impl wasmtime::component::HasData for Docker {
    type Data<'a> = DockerView<'a>;
}

type CallResult<T> = wasmtime::Result<Result<T, CapError>>;

/// Longest stop/restart grace a playbook may ask for: the call waits that long.
const MAX_STOP_TIMEOUT_SECS: u32 = 600;

/// Whether a rule covers a container, by its real name (any glob) or labels (any selector).
pub fn rule_covers(rule: &DockerRule, name: &str, labels: Option<&[(String, String)]>) -> bool {
    let by_name = globs_match(&rule.containers, name);
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

/// Globs were validated when the config was read; one that somehow is not never matches.
fn globs_match(globs: &[String], name: &str) -> bool {
    globs
        .iter()
        .any(|g| name_glob(g).is_ok_and(|g| g.is_match(name)))
}

fn verb_name(verb: DockerVerb) -> String {
    serde_json::to_value(verb)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn global_gate<'a, 'v>(verb: DockerVerb) -> Gate<'a, DockerView<'v>> {
    untargeted(move |state: &DockerView<'v>| state.authorize_global(verb))
}

/// The one rule check, live and on replay: some rule for `verb` covers the container's real
/// name or labels and, for a network verb, the network's real name. Messages echo what the
/// playbook asked for.
fn granted_on(
    rules: &[&DockerRule],
    verb: DockerVerb,
    (asked, name, labels): (&str, &str, &[(String, String)]),
    network: Option<(&str, &str)>,
) -> Result<(), CapError> {
    let denied = |what: String| {
        CapError::Denied(format!(
            "docker {} on {what} is not granted to this playbook",
            verb_name(verb)
        ))
    };
    let on_container = || format!("container {}", reference::echo(asked));
    let covering: Vec<&&DockerRule> = rules
        .iter()
        .filter(|r| rule_covers(r, name, Some(labels)))
        .collect();
    if covering.is_empty() {
        return Err(denied(on_container()));
    }
    if let Some((asked_network, network)) = network
        && !covering.iter().any(|r| globs_match(&r.networks, network))
    {
        return Err(denied(format!(
            "{} from network {}",
            on_container(),
            reference::echo(asked_network)
        )));
    }
    Ok(())
}

/// What a call acts on, as the engine named it when asked.
pub struct Target {
    /// Full container id: every action goes by this.
    pub id: String,
    pub name: String,
    /// Full id and name of the network (`network-disconnect` only).
    pub network: Option<(String, String)>,
    pub labels: Vec<(String, String)>,
}

impl Target {
    fn describe(&self) -> String {
        match &self.network {
            Some((_, network)) => format!("{} from network {network}", self.name),
            None => self.name.clone(),
        }
    }
}

/// A playbook's string as it goes into the timeline: whole when it is short, else cut with its
/// length kept.
fn arg(input: &str) -> String {
    if input.len() <= reference::MAX_REFERENCE_BYTES {
        input.to_string()
    } else {
        reference::echo(input)
    }
}

/// A stop/restart grace within bounds, so no call waits on the engine without limit.
fn stop_timeout(timeout_secs: Option<u32>) -> Result<(), CapError> {
    match timeout_secs {
        Some(t) if t > MAX_STOP_TIMEOUT_SECS => Err(CapError::Invalid(format!(
            "timeout of {t}s; at most {MAX_STOP_TIMEOUT_SECS}s"
        ))),
        _ => Ok(()),
    }
}

impl DockerView<'_> {
    fn rules_for(&self, verb: DockerVerb) -> Vec<&DockerRule> {
        self.grants
            .docker
            .iter()
            .filter(|r| r.verbs.iter().any(|v| v.covers(verb)))
            .collect()
    }

    /// May `verb` touch `container` (and `network`)? Both references are validated, then
    /// resolved by the engine; the rules are checked on the real names and labels. A
    /// container that does not exist is `not-found` only if the verb is granted at all.
    async fn authorize(
        &mut self,
        verb: DockerVerb,
        container: &str,
        network: Option<&str>,
    ) -> Result<Target, CapError> {
        let container_ref = reference::container(container)?;
        let network_ref = network.map(reference::network).transpose()?;
        let rules = self.rules_for(verb);
        if rules.is_empty() {
            return Err(CapError::Denied(format!(
                "docker {} on container {} is not granted to this playbook",
                verb_name(verb),
                reference::echo(container)
            )));
        }
        let found = answers::container(&self.docker.inspect_raw(container_ref).await?);
        let id = reference::engine_id("container", &found.id)?.to_string();
        let subject = (container, found.name.as_str(), found.labels.as_slice());
        granted_on(&rules, verb, subject, None)?;
        let network = match network_ref {
            None => None,
            Some(network_ref) => {
                let (network_id, name) = self.docker.inspect_network(network_ref).await?;
                reference::engine_id("network", &network_id)?;
                granted_on(&rules, verb, subject, Some((network_ref, &name)))?;
                Some((network_id, name))
            }
        };
        Ok(Target {
            id,
            name: found.name,
            network,
            labels: found.labels,
        })
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

    /// A read-only or mutating call on one container: check the arguments (`valid`),
    /// authorize, then perform on the resolved target (or, on a dry run, record "would …").
    #[allow(clippy::too_many_arguments)]
    async fn container_call<T, F>(
        &mut self,
        verb: DockerVerb,
        (container, network): (&str, Option<&str>),
        mut args: Value,
        valid: Result<(), CapError>,
        mutating: Option<T>,
        perform: impl FnOnce(Arc<DockerEngine>, Target) -> F,
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
        let target = match valid {
            Ok(()) => self.authorize(verb, container, network).await,
            Err(e) => Err(e),
        };
        if let Ok(target) = &target {
            // The audit log says what the call acted on, not only what was asked.
            args["resolved"] = json!({ "id": target.id, "name": target.name });
            if self.tape.is_some() {
                self.recorded_target = Some(json!({
                    "id": target.id,
                    "name": target.name,
                    "labels": target.labels,
                    "network": target.network.as_ref().map(|(_, name)| name),
                    "network_id": target.network.as_ref().map(|(id, _)| id),
                }));
            }
        }
        let result = match target {
            Ok(target) if mutating.is_some() && self.dry_run => {
                let detail = format!("would {function} {}", target.describe());
                let elapsed = started.elapsed();
                self.timeline
                    .call("docker", function, args, "would", Some(detail), elapsed);
                return Ok(Ok(mutating.expect("checked above")));
            }
            Ok(target) if mutating.is_some() => {
                let would = format!("would {function} {}", target.describe());
                let container = Some(target.name.as_str());
                let nothing = mutating.expect("checked above");
                let call = ("docker", function);
                if let Some(answer) = self
                    .gated(call, &args, container, would, started, nothing)
                    .await
                {
                    return Ok(answer);
                }
                perform(self.docker.clone(), target).await
            }
            Ok(target) => perform(self.docker.clone(), target).await,
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

impl docker::Host for DockerView<'_> {
    async fn list_containers(&mut self, filter: ListFilter) -> CallResult<Vec<Container>> {
        self.begin_call()?;
        let started = Instant::now();
        let labels: Vec<String> = filter.labels.iter().take(32).map(|l| arg(l)).collect();
        let args =
            json!({ "all": filter.all, "name": filter.name.as_deref().map(arg), "labels": labels });
        if let Some(answer) = replay_call::<_, Vec<Container>>(
            self,
            "docker",
            "list-containers",
            &args,
            global_gate(DockerVerb::List),
        )? {
            // The fixture's containers are held to this host's grants, as live ones are.
            let rules = self.rules_for(DockerVerb::List);
            return Ok(answer.map(|found| {
                found
                    .into_iter()
                    .filter(|c| {
                        rules
                            .iter()
                            .any(|r| rule_covers(r, &c.name, Some(&c.labels)))
                    })
                    .collect()
            }));
        }
        let result =
            super::panic_to_failed("docker.list-containers", self.list_granted(&filter)).await;
        self.tape_call(
            "docker",
            "list-containers",
            args.clone(),
            &Ok(result.clone()),
        );
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
        let args = json!({ "container": arg(&container) });
        let gate = container_gate(DockerVerb::Inspect, container.clone(), None);
        taped!(
            self,
            "docker",
            "inspect",
            ContainerDetails,
            args.clone(),
            gate,
            {
                self.container_call(
                    DockerVerb::Inspect,
                    (&container, None),
                    args,
                    Ok(()),
                    None,
                    |d, t| async move { d.inspect(&t.id).await },
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
        )
    }

    async fn logs(&mut self, container: String, options: LogOptions) -> CallResult<Vec<LogLine>> {
        let args = json!({ "container": arg(&container), "tail": options.tail, "since-secs": options.since_secs });
        let gate = container_gate(DockerVerb::Logs, container.clone(), None);
        taped!(self, "docker", "logs", Vec<LogLine>, args.clone(), gate, {
            self.container_call(
                DockerVerb::Logs,
                (&container, None),
                args,
                Ok(()),
                None,
                |d, t| async move {
                    d.logs(&t.id, options.tail, options.since_secs, options.timestamps)
                        .await
                },
                |l| format!("{} lines", l.len()),
            )
            .await
        })
    }

    async fn start(&mut self, container: String) -> CallResult<()> {
        let args = json!({ "container": arg(&container) });
        let gate = container_gate(DockerVerb::Start, container.clone(), None);
        taped!(self, "docker", "start", (), args.clone(), gate, {
            self.container_call(
                DockerVerb::Start,
                (&container, None),
                args,
                Ok(()),
                Some(()),
                |d, t| async move { d.start(&t.id).await },
                |_| String::new(),
            )
            .await
        })
    }

    async fn stop(&mut self, container: String, timeout_secs: Option<u32>) -> CallResult<()> {
        let args = json!({ "container": arg(&container), "timeout-secs": timeout_secs });
        let gate = container_gate(DockerVerb::Stop, container.clone(), None);
        taped!(self, "docker", "stop", (), args.clone(), gate, {
            self.container_call(
                DockerVerb::Stop,
                (&container, None),
                args,
                stop_timeout(timeout_secs),
                Some(()),
                |d, t| async move { d.stop(&t.id, timeout_secs).await },
                |_| String::new(),
            )
            .await
        })
    }

    async fn restart(&mut self, container: String, timeout_secs: Option<u32>) -> CallResult<()> {
        let args = json!({ "container": arg(&container), "timeout-secs": timeout_secs });
        let gate = container_gate(DockerVerb::Restart, container.clone(), None);
        taped!(self, "docker", "restart", (), args.clone(), gate, {
            self.container_call(
                DockerVerb::Restart,
                (&container, None),
                args,
                stop_timeout(timeout_secs),
                Some(()),
                |d, t| async move { d.restart(&t.id, timeout_secs).await },
                |_| String::new(),
            )
            .await
        })
    }

    async fn pause(&mut self, container: String) -> CallResult<()> {
        let args = json!({ "container": arg(&container) });
        let gate = container_gate(DockerVerb::Pause, container.clone(), None);
        taped!(self, "docker", "pause", (), args.clone(), gate, {
            self.container_call(
                DockerVerb::Pause,
                (&container, None),
                args,
                Ok(()),
                Some(()),
                |d, t| async move { d.pause(&t.id).await },
                |_| String::new(),
            )
            .await
        })
    }

    async fn unpause(&mut self, container: String) -> CallResult<()> {
        let args = json!({ "container": arg(&container) });
        let gate = container_gate(DockerVerb::Unpause, container.clone(), None);
        taped!(self, "docker", "unpause", (), args.clone(), gate, {
            self.container_call(
                DockerVerb::Unpause,
                (&container, None),
                args,
                Ok(()),
                Some(()),
                |d, t| async move { d.unpause(&t.id).await },
                |_| String::new(),
            )
            .await
        })
    }

    async fn stats(&mut self, container: String) -> CallResult<ContainerStats> {
        let args = json!({ "container": arg(&container) });
        let gate = container_gate(DockerVerb::Stats, container.clone(), None);
        taped!(
            self,
            "docker",
            "stats",
            ContainerStats,
            args.clone(),
            gate,
            {
                self.container_call(
                    DockerVerb::Stats,
                    (&container, None),
                    args,
                    Ok(()),
                    None,
                    |d, t| async move { d.stats(&t.id).await },
                    |s| {
                        // For people; the result itself keeps the raw byte counts.
                        format!(
                            "cpu {:.1}%, memory {} of {}",
                            s.cpu_percent,
                            human_bytes(s.memory_used),
                            human_bytes(s.memory_limit)
                        )
                    },
                )
                .await
            }
        )
    }

    async fn disk_usage(&mut self) -> CallResult<SystemDf> {
        let gate = global_gate(DockerVerb::DiskUsage);
        if let Some(answer) = replay_call(self, "docker", "disk-usage", &json!({}), gate)? {
            return Ok(answer);
        }
        self.begin_call()?;
        let started = Instant::now();
        let result = match self.authorize_global(DockerVerb::DiskUsage) {
            Ok(()) => self.docker.disk_usage().await,
            Err(e) => Err(e),
        };
        self.tape_call("docker", "disk-usage", json!({}), &Ok(result.clone()));
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
        let args = json!({
            "containers": options.containers, "images": options.images,
            "all-images": options.all_images, "build-cache": options.build_cache,
            "volumes": options.volumes,
        });
        let volumes = options.volumes;
        let gate: Gate<Self> = untargeted(move |state: &Self| {
            state.authorize_global(DockerVerb::Prune)?;
            if volumes {
                state.authorize_global(DockerVerb::PruneVolumes)?;
            }
            Ok(())
        });
        if let Some(answer) = replay_call(self, "docker", "prune", &args, gate)? {
            return Ok(answer);
        }
        self.begin_call()?;
        let started = Instant::now();
        let mut allowed = self.authorize_global(DockerVerb::Prune);
        if options.volumes && allowed.is_ok() {
            allowed = self.authorize_global(DockerVerb::PruneVolumes);
        }
        if allowed.is_ok() && self.dry_run {
            let args_for_tape = args.clone();
            self.timeline.call(
                "docker",
                "prune",
                args,
                "would",
                Some("would prune".into()),
                started.elapsed(),
            );
            let nothing = PruneReport {
                containers_deleted: 0,
                images_deleted: 0,
                volumes_deleted: 0,
                bytes_reclaimed: 0,
            };
            self.tape_call("docker", "prune", args_for_tape, &Ok(Ok(nothing)));
            return Ok(Ok(nothing));
        }
        if allowed.is_ok() {
            let nothing = PruneReport {
                containers_deleted: 0,
                images_deleted: 0,
                volumes_deleted: 0,
                bytes_reclaimed: 0,
            };
            let would = "would prune".to_string();
            let call = ("docker", "prune");
            if let Some(answer) = self.gated(call, &args, None, would, started, nothing).await {
                return Ok(answer);
            }
        }
        let result = match allowed {
            Ok(()) => self.docker.prune(&options).await,
            Err(e) => Err(e),
        };
        self.tape_call("docker", "prune", args.clone(), &Ok(result.clone()));
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
        let args =
            json!({ "container": arg(&container), "network": arg(&network), "force": force });
        let gate = container_gate(
            DockerVerb::NetworkDisconnect,
            container.clone(),
            Some(network.clone()),
        );
        taped!(
            self,
            "docker",
            "network-disconnect",
            (),
            args.clone(),
            gate,
            {
                self.container_call(
                    DockerVerb::NetworkDisconnect,
                    (&container, Some(&network)),
                    args,
                    Ok(()),
                    Some(()),
                    |d, t| async move {
                        let (network_id, _) = t.network.expect("authorize resolves the network");
                        d.network_disconnect(&t.id, &network_id, force).await
                    },
                    |_| String::new(),
                )
                .await
            }
        )
    }
}

impl DockerView<'_> {
    /// Containers matching the filter, limited to those the playbook may list: ungranted
    /// containers are invisible rather than an error.
    async fn list_granted(&mut self, filter: &ListFilter) -> Result<Vec<Container>, CapError> {
        let rules = self.rules_for(DockerVerb::List);
        if rules.is_empty() {
            return Err(CapError::Denied(
                "docker list is not granted to this playbook".into(),
            ));
        }
        let name_glob = filter
            .name
            .as_deref()
            .map(reference::list_glob)
            .transpose()?;
        reference::label_filters(&filter.labels)?;
        let mut found = Vec::new();
        for (id, name) in self.docker.list(filter.all, &filter.labels).await? {
            if name_glob.as_ref().is_some_and(|g| !g.is_match(&name)) {
                continue;
            }
            let container = match self.docker.inspect_raw(&id).await {
                Ok(resp) => answers::container(&resp),
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

/// Sizes as people read them in the timeline (the call's result keeps the raw bytes).
/// 1536 → "1.5 KiB": binary units, one decimal, bytes as they are below 1 KiB.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn df_summary(df: &SystemDf) -> String {
    let section = |name: &str, s: &crate::bindings::runbook::host::docker::DfSection| {
        format!(
            "{name} {} ({} active) {}, reclaimable {}",
            s.count,
            s.active,
            human_bytes(s.size_bytes),
            human_bytes(s.reclaimable_bytes)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(toml_text: &str) -> Result<DockerRule, toml::de::Error> {
        toml::from_str(toml_text)
    }

    #[test]
    fn byte_counts_read_in_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1982256), "1.9 MiB");
        assert_eq!(human_bytes(25_232_932_864), "23.5 GiB");
    }

    #[test]
    fn rule_globs_match_real_names_only_and_never_a_slash() {
        let rule = rule(
            r#"containers = ["bar-*"]
verbs = ["stop"]
networks = ["front-?"]"#,
        )
        .unwrap();
        assert!(rule_covers(&rule, "bar-x", Some(&[])));
        assert!(!rule_covers(&rule, "bar-x/../victim", Some(&[])));
        assert!(globs_match(&rule.networks, "front-1"));
        assert!(!globs_match(&rule.networks, "front/"));
        assert!(!globs_match(&[], "anything"), "no networks means none");
    }

    #[test]
    fn a_stop_grace_is_bounded() {
        assert!(stop_timeout(None).is_ok());
        assert!(stop_timeout(Some(MAX_STOP_TIMEOUT_SECS)).is_ok());
        assert!(matches!(
            stop_timeout(Some(u32::MAX)),
            Err(CapError::Invalid(_))
        ));
    }

    #[test]
    fn a_bad_or_oversized_rule_glob_is_a_config_error() {
        for glob in ["bar-[x".to_string(), "b".repeat(300)] {
            for field in ["containers", "networks"] {
                let text = format!("{field} = [{glob:?}]\nverbs = [\"read\"]");
                let error = rule(&text).unwrap_err().to_string();
                assert!(error.contains("docker glob"), "{error}");
            }
        }
    }
}
