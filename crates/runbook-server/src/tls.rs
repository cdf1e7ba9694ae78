//! `host serve` over TLS (`[server] tls = { cert, key }`): rustls, HTTP/1.1 and HTTP/2 by
//! ALPN, the certificate re-read on SIGHUP for new connections while open ones finish on the
//! one they started with. With `[fleet] client-ca`, a client may present a certificate from
//! that CA (browsers and webhooks need not): the agent API then takes it as proof of which
//! node is calling.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// A handshake that has not finished by then is dropped (a client that opens and waits
/// must not hold a task forever).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the server's certificate, its key and the CA of client certificates are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// The server's TLS settings as last read from disk: each new connection takes the current
/// one, so a SIGHUP after a certificate rotation is seen by the next handshake.
pub struct Certificates {
    files: TlsFiles,
    current: RwLock<Arc<rustls::ServerConfig>>,
}

/// The certificate a client presented, verified against `[fleet] client-ca`.
#[derive(Clone, Debug)]
pub struct ClientCertificate(CertificateDer<'static>);

impl ClientCertificate {
    /// Whether the certificate names `node` (a DNS name in its subjectAltName) and no other
    /// node beside it: a wildcard (`*.example.com`) would let one node's certificate act for
    /// every node of that domain, so a certificate that also fits a made-up sibling name is
    /// refused.
    pub fn names(&self, node: &str) -> bool {
        let Ok(cert) = webpki::EndEntityCert::try_from(&self.0) else {
            return false;
        };
        let fits = |name: &str| {
            ServerName::try_from(name)
                .is_ok_and(|name| cert.verify_is_valid_for_subject_name(&name).is_ok())
        };
        let sibling = match node.split_once('.') {
            Some((_, domain)) => format!("not-a-node-0x5e.{domain}"),
            None => "not-a-node-0x5e".to_string(),
        };
        fits(node) && !fits(&sibling)
    }
}

/// The request's connection's client certificate, if it presented one (never over plain
/// HTTP): what the agent API checks a node against.
pub(crate) struct PresentedCertificate(pub Option<ClientCertificate>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PresentedCertificate {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(PresentedCertificate(
            parts
                .extensions
                .get::<Option<ClientCertificate>>()
                .cloned()
                .flatten(),
        ))
    }
}

impl Certificates {
    pub fn load(files: TlsFiles) -> Result<Certificates> {
        let config = server_config(&files)?;
        Ok(Certificates {
            files,
            current: RwLock::new(Arc::new(config)),
        })
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Re-reads the files; on any error the served certificate stays as it was.
    pub fn reload(&self) -> Result<()> {
        let config = server_config(&self.files)?;
        *self.current.write().unwrap() = Arc::new(config);
        Ok(())
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().unwrap().clone())
    }
}

fn server_config(files: &TlsFiles) -> Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = read_certs(&files.cert, "[server] tls.cert")?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        anyhow!(
            "[server] tls.key = {:?}: no private key read: {e}",
            files.key
        )
    })?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS: no protocol version")?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(ca, "[fleet] client-ca")? {
                roots
                    .add(cert)
                    .map_err(|e| anyhow!("[fleet] client-ca = {ca:?}: {e}"))?;
            }
            // Optional: browsers and webhook senders present none; the agent API decides
            // whether a node must.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| anyhow!("[fleet] client-ca = {ca:?}: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| anyhow!("[server] tls: the key does not fit the certificate: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

pub(crate) fn read_certs(path: &Path, setting: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow!("{setting} = {path:?}: {e}"))?;
    if certs.is_empty() {
        bail!("{setting} = {path:?}: no PEM certificate in it");
    }
    Ok(certs)
}

/// Accepts TLS connections until `shutdown` resolves, then waits for the open ones to end
/// (axum's own `serve` does the same for plain HTTP).
pub(crate) async fn serve(
    listener: TcpListener,
    routes: Router,
    certificates: Arc<Certificates>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of descriptors and the like: wait rather than spin.
                Err(e) => {
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let acceptor = certificates.acceptor();
        let routes = routes.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!("TLS handshake with {peer}: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake with {peer}: no answer within 10 s");
                    return;
                }
            };
            let client = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|cert| ClientCertificate(cert.clone().into_owned()));
            let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                // Always set, so a handler cannot mistake "no certificate" for "not asked".
                request.extensions_mut().insert(client.clone());
                routes.clone().oneshot(request.map(axum::body::Body::new))
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!("connection from {peer}: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate with these DNS names, made by openssl (the names are what
    /// is tested, not the chain).
    fn cert_for(names: &[&str]) -> ClientCertificate {
        let dir = tempfile::tempdir().unwrap();
        let der = dir.path().join("cert.der");
        let san: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
        let made = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-keyout"])
            .arg(dir.path().join("key.pem"))
            .args(["-subj", "/CN=node", "-days", "1", "-outform", "DER", "-out"])
            .arg(&der)
            .args(["-addext", &format!("subjectAltName={}", san.join(","))])
            .output()
            .expect("openssl");
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        ClientCertificate(CertificateDer::from(std::fs::read(der).unwrap()))
    }

    #[test]
    fn a_certificate_names_its_node_and_a_wildcard_names_none() {
        let web01 = cert_for(&["web01.example.com"]);
        assert!(web01.names("web01.example.com"));
        assert!(!web01.names("web02.example.com"));
        assert!(!web01.names("web01"));
        let wildcard = cert_for(&["*.example.com"]);
        assert!(!wildcard.names("web01.example.com"));
        assert!(!wildcard.names("web02.example.com"));
        assert!(cert_for(&["web01"]).names("web01"));
    }
}
