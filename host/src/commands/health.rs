//! `host health`: one bounded GET of a server's /healthz, for container HEALTHCHECKs and service
//! monitors. The answer decides the exit code; nothing from it is trusted beyond a short quote.

use std::time::{Duration, Instant};

use anstream::{eprintln, println};
use anyhow::{Context, bail};
use clap::Args;

use crate::commands::EXIT_FAILED;

#[derive(Args)]
#[command(
    after_help = "For container HEALTHCHECKs and service monitors.\n\nExamples:\n  host health\n  host health --url http://10.0.0.5:9095/healthz --timeout 2\n  host health --url https://runbook.internal:9095/healthz --ca-file /etc/runbook/ca.pem"
)]
pub struct HealthArgs {
    /// The server's /healthz
    #[arg(
        long,
        env = "RUNBOOK_HEALTH_URL",
        value_name = "URL",
        default_value = "http://127.0.0.1:9095/healthz"
    )]
    url: String,
    /// Seconds to wait for the answer
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    timeout: u64,
    #[command(flatten)]
    ca: super::globals::ServerCa,
}

impl HealthArgs {
    pub async fn run(self) -> anyhow::Result<u8> {
        self.ca.apply(None)?;
        Ok(
            match probe(&self.url, Duration::from_secs(self.timeout)).await {
                Ok(line) => {
                    println!("healthy: {line}");
                    0
                }
                Err(e) => {
                    eprintln!("unhealthy: {e:#}");
                    EXIT_FAILED
                }
            },
        )
    }
}

/// A /healthz answer is a small JSON object; more than this is not ours.
const MAX_BODY: usize = 16 * 1024;

/// Ok with a one-line description when `url` answers 2xx within `timeout`, else why not.
pub async fn probe(url: &str, timeout: Duration) -> anyhow::Result<String> {
    let parsed =
        url::Url::parse(url).with_context(|| format!("--url {:?}", crate::text::echo(url)))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        bail!("--url {url:?}: expected an http:// or https:// URL");
    }
    let client = runbook_runtime::server_link::client_builder()?
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let started = Instant::now();
    let mut reply = client
        .get(parsed.clone())
        .send()
        .await
        .with_context(|| format!("GET {parsed}"))?;
    let status = reply.status();
    let mut body = Vec::new();
    while let Some(chunk) = reply
        .chunk()
        .await
        .with_context(|| format!("GET {parsed}"))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_BODY {
            body.truncate(MAX_BODY);
            break;
        }
    }
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&body);
    let quote = crate::text::escape(&crate::text::echo(text.trim())).into_owned();
    if !status.is_success() {
        bail!("GET {parsed}: {status} after {took:.0?}: {quote}");
    }
    Ok(format!("GET {parsed}: {status} after {took:.0?}: {quote}"))
}
