//! `host run PLAYBOOK --node NAME`: asks the server to run a playbook on a node
//! (`POST /hooks/run/{playbook}?node=NAME`) and follows the run live through the read API,
//! printing its timeline as the node's agent sends it.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::text::escape;

/// How often the run is read while it goes on.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

pub struct RemoteRun<'a> {
    pub server: &'a url::Url,
    pub node: &'a str,
    pub playbook: &'a str,
    pub params: &'a [(String, String)],
    pub dry_run: bool,
    pub severity: Option<&'a str>,
    /// Bearer token of `[webhooks.run]`; the read API's (`[webhooks.api]`) when different.
    pub run_token: Option<&'a str>,
    pub api_token: Option<&'a str>,
    pub json: bool,
}

/// Submits and follows the run; returns its final status.
pub async fn run_on_node(remote: RemoteRun<'_>) -> Result<String> {
    super::check_node_name(remote.node).map_err(|e| anyhow::anyhow!("--node: {e}"))?;
    crate::catalog::check_name(remote.playbook)?;
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut url = remote.server.clone();
    url.path_segments_mut()
        .map_err(|_| anyhow::anyhow!("--server: not an http(s) URL"))?
        .pop_if_empty()
        .extend(["hooks", "run", remote.playbook]);
    url.query_pairs_mut()
        .append_pair("node", remote.node)
        .append_pair("dry_run", if remote.dry_run { "true" } else { "false" });
    if let Some(severity) = remote.severity {
        url.query_pairs_mut().append_pair("severity", severity);
    }
    let params: serde_json::Map<String, Value> = remote
        .params
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let mut request = client.post(url.clone()).json(&params);
    if let Some(token) = remote.run_token {
        request = request.bearer_auth(token);
    }
    let shown = crate::redact::url(url.as_str());
    let response = request
        .send()
        .await
        .with_context(|| format!("POST {shown}"))?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!(
            "the server refused the run ({status}): {}",
            escape(answer["error"].as_str().unwrap_or("no reason given"))
        );
    }
    let Some(id) = answer["runs"][0].as_str().map(String::from) else {
        bail!(
            "the server started no run ({})",
            escape(answer["status"].as_str().unwrap_or("no status"))
        );
    };
    if !remote.json {
        println!(
            "▶ {} on node {} (run {id}, {})",
            escape(remote.playbook),
            remote.node,
            if remote.dry_run { "dry run" } else { "live" }
        );
    }
    follow(&client, &remote, &id).await
}

async fn follow(client: &reqwest::Client, remote: &RemoteRun<'_>, id: &str) -> Result<String> {
    let mut url = remote.server.clone();
    url.path_segments_mut()
        .map_err(|_| anyhow::anyhow!("--server: not an http(s) URL"))?
        .pop_if_empty()
        .extend(["runs", id]);
    let token = remote.api_token.or(remote.run_token);
    let mut printed = 0;
    let mut waiting_said = false;
    loop {
        let mut request = client.get(url.clone());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.context("reading the run")?;
        if !response.status().is_success() {
            bail!(
                "reading run {id}: the server answered {} (the read API needs [webhooks.api] \
                 auth: RUNBOOK_API_TOKEN)",
                response.status()
            );
        }
        let run: Value = response.json().await.context("reading the run")?;
        let status = run["status"].as_str().unwrap_or_default().to_string();
        let timeline = run["timeline"].as_array().cloned().unwrap_or_default();
        if !remote.json {
            if status == "queued" && !waiting_said {
                println!("  … waiting for the agent of node {}", remote.node);
                waiting_said = true;
            }
            for event in timeline.iter().skip(printed) {
                if let Ok(event) = serde_json::from_value(event.clone()) {
                    println!("{}", crate::render::event_line(&event));
                }
            }
        }
        printed = printed.max(timeline.len());
        if !matches!(status.as_str(), "queued" | "running" | "waiting-approval") {
            if remote.json {
                println!("{}", crate::text::json_for_terminal(&run)?);
            } else {
                match serde_json::from_value::<StoredRunView>(run) {
                    Ok(view) => print!("{}", view.render()),
                    Err(_) => println!("■ {}", escape(&status)),
                }
            }
            return Ok(status);
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

/// The parts of a stored run the end of a followed run shows.
#[derive(serde::Deserialize)]
struct StoredRunView {
    status: String,
    summary: String,
    #[serde(default)]
    actions: Vec<String>,
    reason: Option<String>,
}

impl StoredRunView {
    fn render(&self) -> String {
        let mut out = format!("■ {}: {}\n", escape(&self.status), escape(&self.summary));
        for action in &self.actions {
            out.push_str(&format!("  • {}\n", escape(action)));
        }
        if let Some(reason) = &self.reason
            && self.status != "resolved"
        {
            out.push_str(&format!("  reason: {}\n", escape(reason)));
        }
        out
    }
}

/// `host nodes`: one line per node.
pub fn nodes_table(nodes: &[crate::records::NodeRecord], up_within: Duration) -> String {
    let mut out = format!(
        "{:<24} {:<5} {:>12} {:>9} {:>7} {:<10} {}\n",
        "NODE", "UP", "LAST SEEN", "IN FLIGHT", "QUEUED", "VERSION", "SESSION SINCE"
    );
    for n in nodes {
        let up = n.seen_secs_ago <= up_within.as_secs_f64();
        out.push_str(&format!(
            "{:<24} {:<5} {:>11.0}s {:>9} {:>7} {:<10} {}\n",
            n.name,
            if up { "yes" } else { "no" },
            n.seen_secs_ago,
            n.in_flight,
            n.queued,
            escape(&n.version),
            n.connected_at
        ));
    }
    if nodes.is_empty() {
        out.push_str("(no agent has connected yet: `host agent --server URL --node NAME`)\n");
    }
    out
}
