//! How this process reaches a `host serve` (the agent, `host run --server`, `host runs cancel
//! --server`, `host health`): over HTTPS, either the system's trust store or, with
//! `--ca-file`, only the CA(s) in that file (pinned: a certificate from any other CA is
//! refused), and for an agent under mutual TLS its node's client certificate.

use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, ensure};

#[derive(Debug, Default, Clone)]
pub struct ServerLink {
    /// PEM: the only CA(s) the server's certificate may chain to.
    pub ca_file: Option<PathBuf>,
    /// PEM files: this node's certificate and its key (the agent, `[fleet] client-ca`).
    pub client_identity: Option<(PathBuf, PathBuf)>,
}

static LINK: OnceLock<ServerLink> = OnceLock::new();

/// Set once, from the command line, before any client is built.
pub fn set(link: ServerLink) -> Result<()> {
    link.check()?;
    LINK.set(link)
        .map_err(|_| anyhow!("the server link was already set"))
}

fn current() -> ServerLink {
    LINK.get().cloned().unwrap_or_default()
}

impl ServerLink {
    fn check(&self) -> Result<()> {
        // Read now, so a wrong path is an error at start-up rather than at the first call.
        self.apply(reqwest::Client::builder())?.build()?;
        Ok(())
    }

    fn apply(&self, mut builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder> {
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca).with_context(|| format!("--ca-file {}", ca.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| anyhow!("--ca-file {}: {e}", ca.display()))?;
            ensure!(
                !certs.is_empty(),
                "--ca-file {}: no PEM certificate in it",
                ca.display()
            );
            builder = builder.tls_built_in_root_certs(false);
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some((cert, key)) = &self.client_identity {
            let mut pem =
                std::fs::read(cert).with_context(|| format!("--client-cert {}", cert.display()))?;
            pem.push(b'\n');
            pem.extend(
                std::fs::read(key).with_context(|| format!("--client-key {}", key.display()))?,
            );
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                anyhow!(
                    "--client-cert {} / --client-key {}: {e}",
                    cert.display(),
                    key.display()
                )
            })?;
            builder = builder.identity(identity);
        }
        Ok(builder)
    }
}

/// A client builder for calls to a `host serve`, with the process's TLS settings applied.
pub fn client_builder() -> Result<reqwest::ClientBuilder> {
    current().apply(reqwest::Client::builder())
}
