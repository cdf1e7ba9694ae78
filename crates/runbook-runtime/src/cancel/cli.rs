//! `host runs cancel ID`: on the local store (as `cli:<login name>`), or through a server's
//! `POST /runs/{id}/cancel` with `--server` (as the server's API names the caller). Waits a
//! little for a running run to end, so the answer says it stopped.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::records::{Cancelled, RunStatus};
use crate::store::Store;
use crate::text::escape;

/// How long the CLI waits for a running run to end once asked.
const WAIT: Duration = Duration::from_secs(15);
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// What the request did, as an HTTP status and a line for people: 200 ended now, 202 asked
/// (its process stops it), 404 no such run, 409 already ended or already asked.
pub fn answer(id: &str, by: &str, cancelled: &Cancelled) -> (u16, String) {
    match cancelled {
        Cancelled::Ended { .. } => (200, format!("run {id} cancelled by {by}")),
        Cancelled::Asked { .. } => (
            202,
            format!("run {id}: asked to stop (by {by}); its host ends it `cancelled`"),
        ),
        Cancelled::AlreadyAsked { by: first } => (
            409,
            format!("run {id} is already being cancelled (asked by {first})"),
        ),
        Cancelled::Over(status) => (
            409,
            format!("run {id} has already ended ({status}); there is nothing to cancel"),
        ),
        Cancelled::NotFound => (404, format!("no run {id}")),
    }
}

/// Exit status: 0 cancelled (or asked), 1 refused (already ended or being cancelled), 2 no
/// such run.
fn exit_code(http: u16) -> u8 {
    match http {
        200..=299 => 0,
        404 => 2,
        _ => 1,
    }
}

/// On the store this CLI opened; prints the outcome; returns the exit status.
pub async fn on_store(store: &Store, id: &str) -> Result<u8> {
    let by = format!(
        "cli:{}",
        crate::approval::cli::login_name().replace(|c: char| c.is_control(), "")
    );
    let cancelled = store.cancel_run(id, &by).await?;
    let (http, line) = answer(id, &by, &cancelled);
    if http == 202 {
        return Ok(wait_until_ended(id, &line, || async {
            Ok(store.get(id).await?.map(|run| run.run.status))
        })
        .await);
    }
    say(http, &line);
    Ok(exit_code(http))
}

/// Through a server's API (`[webhooks.api]` auth: a bearer `token`).
pub async fn on_server(server: &url::Url, id: &str, token: Option<&str>) -> Result<u8> {
    let client = crate::server_link::client_builder()?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let run_url = |tail: &[&str]| -> Result<url::Url> {
        let mut url = server.clone();
        url.path_segments_mut()
            .map_err(|_| anyhow::anyhow!("--server: not an http(s) URL"))?
            .pop_if_empty()
            .extend(["runs", id])
            .extend(tail);
        Ok(url)
    };
    let with_token = |request: reqwest::RequestBuilder| match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    let url = run_url(&["cancel"])?;
    let shown = crate::redact::url(url.as_str());
    let response = with_token(client.post(url))
        .send()
        .await
        .with_context(|| format!("POST {shown}"))?;
    let http = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_default();
    let line = escape(
        body["message"]
            .as_str()
            .or(body["error"].as_str())
            .unwrap_or("no reason given"),
    )
    .into_owned();
    if http == 401 {
        say(
            http,
            &format!("{line} (the API needs [webhooks.api] auth: set RUNBOOK_API_TOKEN)"),
        );
        return Ok(1);
    }
    if http != 202 {
        say(http, &line);
        return Ok(exit_code(http));
    }
    let read = run_url(&[])?;
    Ok(wait_until_ended(id, &line, || {
        let request = with_token(client.get(read.clone()));
        async move {
            let run: Value = request.send().await?.error_for_status()?.json().await?;
            Ok(run["status"].as_str().map(String::from))
        }
    })
    .await)
}

fn say(http: u16, line: &str) {
    if exit_code(http) == 0 {
        println!("{line}");
    } else {
        eprintln!("{} {line}", crate::style::error());
    }
}

/// After a 202: reads the run's status until it ended (or `WAIT` passed) and says which.
async fn wait_until_ended<F, Fut>(id: &str, asked: &str, mut status: F) -> u8
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<String>>>,
{
    let started = Instant::now();
    while started.elapsed() < WAIT {
        if let Ok(Some(now)) = status().await
            && let Ok(now) = now.parse::<RunStatus>()
            && !now.is_live()
        {
            if now == RunStatus::Cancelled {
                println!("run {id} cancelled");
            } else {
                println!("run {id} ended {now} before it could be stopped");
            }
            return 0;
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
    println!(
        "{asked}; still running after {}s (its host looks every {} ms; a host that is gone \
         leaves it to end `lost` when its lease runs out)",
        WAIT.as_secs(),
        super::POLL.as_millis()
    );
    0
}
