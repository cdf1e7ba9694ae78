//! `host approvals` and `host approve`: the questions playbooks are waiting on (`approval.ask`),
//! and an operator's answer to one, kept in the run store.

use std::sync::Arc;

use anstream::{eprintln, print, println};
use clap::Args;

use super::Globals;
use crate::approval::{Approvals, cli};
use crate::commands::Context;
use crate::style;
use runbook_core::access::AuditAct;

#[derive(Args)]
#[command(
    after_help = "Examples:\n  host approvals\n  host approvals --json\n\nAnswer with `host approve RUN`."
)]
pub struct ApprovalsArgs {
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(
    after_help = "On the store, your login name must be in the group's `users` in host.toml ([approvers.GROUP]);\nopening the store is admin. With --server, the API token (RUNBOOK_API_TOKEN, role approver)\nanswers as its name, which the group's `users` must list: no store access needed.\n\nExamples:\n  host approve r1a2126ff8f40245b000\n  host approve r1a2126ff8f40245b000 --reject --reason \"not during the release\"\n  RUNBOOK_API_TOKEN=rbk_… host approve r1a2126ff8f40245b000 --server https://runbooks:9095\n\nExit status: 0 recorded, 1 refused (not listed, already decided), 2 no such question."
)]
pub struct ApproveArgs {
    /// The run that asked (its one waiting question), or an approval id
    target: String,
    /// Reject instead of approve
    #[arg(long)]
    reject: bool,
    /// Why (kept with the answer; shown in the run's report)
    #[arg(long, value_name = "TEXT", requires = "reject")]
    reason: Option<String>,
    /// Answer through this server's API (`POST /approvals/{id}`, bearer token from
    /// RUNBOOK_API_TOKEN) instead of the local store
    #[arg(long, value_name = "URL")]
    server: Option<url::Url>,
    #[command(flatten)]
    ca: super::globals::ServerCa,
}

impl ApprovalsArgs {
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        let (_, approvals) = open(globals).await?;
        let pending = approvals.store().approvals(None).await?;
        if self.json {
            println!("{}", crate::text::json_for_terminal(&pending)?);
        } else {
            print!("{}", cli::table(&pending));
        }
        Ok(0)
    }
}

impl ApproveArgs {
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        if let Some(server) = &self.server {
            self.ca.apply(None)?;
            let token = std::env::var("RUNBOOK_API_TOKEN").ok();
            let answer = Answer {
                target: &self.target,
                approve: !self.reject,
                reason: self.reason.as_deref(),
            };
            return on_server(server, token.as_deref(), answer).await;
        }
        let (ctx, approvals) = open(globals).await?;
        let decision = if self.reject { "rejected" } else { "approved" };
        let (code, line) = cli::approve(&approvals, &self.target, self.reject, self.reason).await?;
        if code == 0 {
            // On the server the API's door records it; on the store, this command does.
            let (act, target) = (AuditAct::ApprovalAnswered, Some(&*self.target));
            super::access::record(&ctx, act, target, Some(decision.into())).await;
            println!("{}", crate::text::escape(&line));
        } else {
            eprintln!("{} {}", style::error(), crate::text::escape(&line));
        }
        Ok(code)
    }
}

/// The approvals over the run store, which both commands need.
async fn open(globals: Globals) -> anyhow::Result<(Context, Arc<Approvals>)> {
    let mut ctx = Context::load(globals)?;
    ctx.host.store = Some(ctx.open_store().await?);
    let approvals = ctx
        .host
        .approvals()
        .ok_or_else(|| anyhow::anyhow!("approvals are not available here"))?;
    Ok((ctx, approvals))
}

struct Answer<'a> {
    target: &'a str,
    approve: bool,
    reason: Option<&'a str>,
}

/// `host approve --server`: the run's waiting question (or the approval id given), answered
/// over the API as the token's holder.
async fn on_server(
    server: &url::Url,
    token: Option<&str>,
    answer: Answer<'_>,
) -> anyhow::Result<u8> {
    use anyhow::Context as _;
    let client = runbook_runtime::server_link::client_builder()?
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let url = |segments: &[&str]| -> anyhow::Result<url::Url> {
        let mut url = server.clone();
        url.path_segments_mut()
            .map_err(|_| anyhow::anyhow!("--server: not an http(s) URL"))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    };
    let authed = |request: reqwest::RequestBuilder| match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    // A run id names its one waiting question; anything else is taken as an approval id.
    let mut listed = url(&["approvals"])?;
    listed.query_pairs_mut().append_pair("run", answer.target);
    let shown = runbook_core::redact::url(listed.as_str());
    let response = authed(client.get(listed))
        .send()
        .await
        .with_context(|| format!("GET {shown}"))?;
    let status = response.status().as_u16();
    let waiting: serde_json::Value = response.json().await.unwrap_or_default();
    if status != 200 {
        let why = waiting["error"].as_str().unwrap_or("no reason given");
        eprintln!("{} {status}: {}", style::error(), crate::text::escape(why));
        return Ok(1);
    }
    let id = waiting
        .as_array()
        .and_then(|all| all.iter().find(|a| a["state"] == "pending"))
        .and_then(|a| a["id"].as_str())
        .unwrap_or(answer.target)
        .to_string();
    let body = serde_json::json!({ "approve": answer.approve, "reason": answer.reason });
    let posted = url(&["approvals", &id])?;
    let shown = runbook_core::redact::url(posted.as_str());
    let response = authed(client.post(posted).json(&body))
        .send()
        .await
        .with_context(|| format!("POST {shown}"))?;
    let status = response.status().as_u16();
    let reply: serde_json::Value = response.json().await.unwrap_or_default();
    if status == 200 {
        let decision = if answer.approve {
            "approved"
        } else {
            "rejected"
        };
        println!("{decision} {}", crate::text::escape(&id));
        return Ok(0);
    }
    let why = reply["error"].as_str().unwrap_or("no reason given");
    eprintln!("{} {status}: {}", style::error(), crate::text::escape(why));
    Ok(if status == 404 { 2 } else { 1 })
}
