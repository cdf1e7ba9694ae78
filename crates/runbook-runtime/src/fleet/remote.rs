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
    /// What `/hooks/run` (`[webhooks.run]`) and the read API (`[webhooks.api]`) are asked
    /// with: see [`ApiAuth::from_env`].
    pub run_auth: Option<ApiAuth>,
    pub api_auth: Option<ApiAuth>,
    pub json: bool,
}

/// How the CLI proves itself to a server: a bearer token or basic auth, whichever the
/// server's `[webhooks.*] auth` asks for.
#[derive(Clone)]
pub enum ApiAuth {
    Bearer(String),
    Basic { user: String, password: String },
}

impl ApiAuth {
    /// (for `/hooks/run`, for the read API), from the environment and the server URL:
    /// `RUNBOOK_RUN_TOKEN` for the hook; `RUNBOOK_API_TOKEN`, or `RUNBOOK_API_USER` with
    /// `RUNBOOK_API_PASSWORD`, for reading. A URL with `user:password@` is basic auth for
    /// whichever has nothing else; the hook's token reads too when nothing else is given.
    pub fn from_env(server: &url::Url) -> (Option<ApiAuth>, Option<ApiAuth>) {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let userinfo = (!server.username().is_empty()).then(|| ApiAuth::Basic {
            user: percent(server.username()),
            password: percent(server.password().unwrap_or_default()),
        });
        let run = var("RUNBOOK_RUN_TOKEN")
            .map(ApiAuth::Bearer)
            .or_else(|| userinfo.clone());
        let api = var("RUNBOOK_API_TOKEN")
            .map(ApiAuth::Bearer)
            .or_else(|| {
                var("RUNBOOK_API_USER").map(|user| ApiAuth::Basic {
                    user,
                    password: var("RUNBOOK_API_PASSWORD").unwrap_or_default(),
                })
            })
            .or(userinfo)
            .or_else(|| run.clone());
        (run, api)
    }

    fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            ApiAuth::Bearer(token) => request.bearer_auth(token),
            ApiAuth::Basic { user, password } => request.basic_auth(user, Some(password)),
        }
    }
}

/// A URL's user or password as typed: `%XX` decoded (the URL keeps them encoded).
fn percent(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The server's URL without credentials: they go in a header, never in a logged URL.
fn without_userinfo(server: &url::Url) -> url::Url {
    let mut url = server.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url
}

/// Submits and follows the run; returns its final status.
pub async fn run_on_node(remote: RemoteRun<'_>) -> Result<String> {
    super::check_node_name(remote.node).map_err(|e| anyhow::anyhow!("--node: {e}"))?;
    crate::catalog::check_name(remote.playbook)?;
    let client = crate::server_link::client_builder()?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut url = without_userinfo(remote.server);
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
    if let Some(auth) = &remote.run_auth {
        request = auth.apply(request);
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
    let mut url = without_userinfo(remote.server);
    url.path_segments_mut()
        .map_err(|_| anyhow::anyhow!("--server: not an http(s) URL"))?
        .pop_if_empty()
        .extend(["runs", id]);
    let mut printed = 0;
    let mut waiting_said = false;
    loop {
        let mut request = client.get(url.clone());
        if let Some(auth) = &remote.api_auth {
            request = auth.apply(request);
        }
        let response = request.send().await.context("reading the run")?;
        if !response.status().is_success() {
            bail!(
                "reading run {id}: the server answered {} (the read API needs [webhooks.api] \
                 auth: RUNBOOK_API_TOKEN, or RUNBOOK_API_USER and RUNBOOK_API_PASSWORD, or \
                 https://user:password@… in --server)",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_the_url_are_basic_auth_and_leave_the_url() {
        let server = url::Url::parse("https://ops%40corp:p%3Ass@runbook.internal:9095/").unwrap();
        let (run, api) = ApiAuth::from_env(&server);
        for auth in [run, api] {
            match auth {
                // (unless the environment running the tests sets RUNBOOK_* tokens)
                Some(ApiAuth::Basic { user, password }) => {
                    assert_eq!((user.as_str(), password.as_str()), ("ops@corp", "p:ss"));
                }
                Some(ApiAuth::Bearer(_)) => {}
                None => panic!("no auth from a URL with credentials"),
            }
        }
        assert_eq!(
            without_userinfo(&server).as_str(),
            "https://runbook.internal:9095/"
        );
        assert_eq!(percent("a%2"), "a%2");
    }
}
