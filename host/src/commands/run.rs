//! `host run`: run a playbook now, here (its timeline printed live) or on a fleet node (followed
//! through the server), and exit with its outcome.

use std::path::PathBuf;
use std::time::Duration;

use anstream::eprintln;
use clap::Args;

use super::Globals;
use crate::commands::{ConfigError, Context, EXIT_ESCALATED, EXIT_FAILED, prepare_named_or_file};
use crate::incident::{parse_param, read_alert_file};
use crate::notify::ConsoleStream;
use crate::records::Trigger;
use crate::render;
use crate::run::RunRequest;
use crate::severity::Priority;
use crate::style;
use crate::timeline::Sink;

#[derive(Args)]
#[command(
    after_help = "Examples:\n  host run disk-full\n  host run disk-full -p mounts=/,/data -p critical-percent=95\n  host run disk-full --alert-file alert.json --dry-run --json\n  host run ./my-playbook.wasm\n  host run --plugin my-playbook.wasm --dry-run --json"
)]
pub struct RunArgs {
    /// Playbook name (see `host list`) or path to a .wasm component
    #[arg(required_unless_present = "plugin")]
    playbook: Option<String>,
    /// A .wasm component to run, by path (instead of PLAYBOOK)
    #[arg(long, value_name = "FILE", conflicts_with = "playbook")]
    plugin: Option<PathBuf>,
    /// A parameter, key=value (repeatable; see `host inspect <playbook>`)
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// Alertmanager alert (or whole webhook payload) to run against, as JSON
    #[arg(long, value_name = "FILE")]
    alert_file: Option<PathBuf>,
    /// Record mutating calls (restart, prune, notify, non-GET http) as "would …" instead
    #[arg(long)]
    dry_run: bool,
    /// Print one JSON document (timeline, outcome, timings) instead of the live timeline
    #[arg(long)]
    json: bool,
    /// Incident priority P1–P4 [default: the alert's severity label, else P3]
    #[arg(long, value_name = "P1..P4", value_parser = Priority::parse)]
    severity: Option<Priority>,
    /// How long to wait for the run's notifications to be delivered before exiting; what
    /// is still pending stays in the outbox for the next host (or `host notify flush`)
    #[arg(long, value_name = "SECS", default_value_t = 15)]
    notify_wait: u64,
    /// Run it on this fleet node instead: the server (--server) hands it to the node's
    /// agent, whose host.toml decides what it may do; the timeline is followed live
    #[arg(long, value_name = "NAME", requires = "server", conflicts_with_all = ["plugin", "alert_file"])]
    node: Option<String>,
    /// With --node: the server, e.g. http://runbook.internal:9095. Bearer tokens:
    /// RUNBOOK_RUN_TOKEN for /hooks/run, RUNBOOK_API_TOKEN for reading the run; basic auth
    /// for reading: RUNBOOK_API_USER and RUNBOOK_API_PASSWORD, or https://user:pass@host
    #[arg(long, env = "RUNBOOK_SERVER", value_name = "URL")]
    server: Option<url::Url>,
    #[command(flatten)]
    ca: super::globals::ServerCa,
    /// Also write the run as a fixture for `host test`: the incident, every capability
    /// call with its result, the outcome (kept with the run too: `host runs export`)
    #[arg(long, value_name = "FILE", conflicts_with = "node")]
    record: Option<PathBuf>,
}

impl RunArgs {
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        let mut ctx = Context::load(globals)?;
        if let (Some(node), Some(server)) = (&self.node, &self.server) {
            self.ca.apply(None)?;
            return self.on_node(node, server).await;
        }
        ctx.attach_store_if_any().await;
        let host = &mut ctx.host;
        if self.json {
            host.console = ConsoleStream::Stderr;
        }
        let alert = match &self.alert_file {
            Some(path) => Some(
                read_alert_file(path).map_err(|e| ConfigError(format!("--alert-file: {e:#}")))?,
            ),
            None => None,
        };
        let prepared = match &self.plugin {
            Some(path) => host.prepare_file(path).await?,
            None => prepare_named_or_file(host, &self.playbook.unwrap_or_default()).await?,
        };
        let trigger = if alert.is_some() {
            Trigger::Alert
        } else {
            Trigger::Cli
        };
        let request = RunRequest {
            params: self.params,
            alert,
            trigger,
            by: None,
            dry_run: self.dry_run,
            dedup_key: None,
            severity: self.severity,
        };
        let sink: Option<Sink> = if self.json {
            None
        } else {
            out(&format!(
                "▶ {} ({}, {}{})\n",
                crate::text::escape(&prepared.source.name),
                crate::text::escape(&prepared.source.origin.to_string()),
                trigger.as_str(),
                if self.dry_run { ", dry run" } else { "" }
            ));
            Some(Box::new(|event| {
                out(&format!("{}\n", render::event_line(event)))
            }))
        };
        let notifier = host.notifier();
        notifier.start();
        let tape = self
            .record
            .as_ref()
            .map(|_| crate::replay::Tape::Recording(Vec::new()));
        let (record, _) = host.run_taped(&prepared, request, sink, tape).await?;
        if let Some(path) = &self.record {
            crate::replay::cli::write_recording(&record, path)?;
        }
        let deliveries = notifier
            .wait_for_run(&record.run_id, Duration::from_secs(self.notify_wait))
            .await?;
        notifier.stop(Duration::from_secs(5)).await;
        for (channel, problem) in notifier.problems() {
            if deliveries.iter().any(|d| d.channel == channel) {
                eprintln!(
                    "{} channel {channel} cannot deliver until fixed: {problem}",
                    style::warning()
                );
            }
        }
        if self.json {
            let mut doc = serde_json::to_value(&record)?;
            doc["deliveries"] = serde_json::to_value(&deliveries)?;
            out(&format!("{}\n", crate::text::json_for_terminal(&doc)?));
        } else {
            out(&render::deliveries(&deliveries));
            out(&render::summary(&record));
            if let Some(reason) = &record.reason {
                eprintln!(
                    "{} {} failed: {}",
                    style::error(),
                    record.playbook,
                    crate::text::escape(reason)
                );
            }
        }
        // The process ends here: the kernel unmaps a 35 MB compiled Python component at
        // exit for less than wasmtime's drop, which unregisters and unmaps it piece by piece.
        std::mem::forget(prepared);
        Ok(match record.status {
            // Stopped before it finished (`host runs cancel`): not a success to chain on.
            "failed" | "cancelled" => EXIT_FAILED,
            "escalated" => EXIT_ESCALATED,
            _ => 0,
        })
    }

    /// `--node`: the server hands the run to the node's agent; its timeline is followed here.
    async fn on_node(&self, node: &str, server: &url::Url) -> anyhow::Result<u8> {
        let (run_auth, api_auth) = crate::fleet::remote::ApiAuth::from_env(server);
        let severity = self.severity.map(|s| s.as_str().to_string());
        let status = crate::fleet::remote::run_on_node(crate::fleet::remote::RemoteRun {
            server,
            node,
            playbook: self.playbook.as_deref().unwrap_or_default(),
            params: &self.params,
            dry_run: self.dry_run,
            severity: severity.as_deref(),
            run_auth,
            api_auth,
            json: self.json,
        })
        .await?;
        Ok(match status.as_str() {
            "resolved" | "mitigated" | "no-action" => 0,
            "escalated" => EXIT_ESCALATED,
            _ => EXIT_FAILED,
        })
    }
}

/// A run's output on stdout (colour only on a terminal). A reader that leaves early
/// (`host run disk-full | head -2`) ends the output, never the run: it goes on to its end and
/// its outcome, stored and in the exit status, is what it would have been.
fn out(text: &str) {
    use std::io::Write;
    let mut stdout = anstream::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("{} writing the run to stdout: {e}", style::warning());
        }
        _ => {}
    }
}
