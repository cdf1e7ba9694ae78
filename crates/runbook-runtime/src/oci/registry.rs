//! Talking to one OCI registry: credentials (Docker's config.json conventions or two env
//! variables), TLS (system roots plus an optional CA file; plain HTTP only for a loopback
//! registry the operator marked insecure), and reads that are bounded before they are made:
//! a manifest is read through our own request, never more than `MAX_MANIFEST_BYTES`, and a
//! blob streams to disk through a cap, its SHA-256 computed as it comes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::manifest::OCI_MANIFEST_MEDIA_TYPE;
use super::reference::ArtifactRef;

/// Manifests are a few hundred bytes; a registry that sends more is not serving ours.
pub const MAX_MANIFEST_BYTES: usize = 64 << 10;
/// A signature payload (cosign "simple signing") is a few hundred bytes.
pub const MAX_SMALL_BLOB_BYTES: usize = 64 << 10;
/// Env variables that give registry credentials (they win over Docker's config.json).
pub const USERNAME_ENV: &str = "RUNBOOK_REGISTRY_USERNAME";
pub const PASSWORD_ENV: &str = "RUNBOOK_REGISTRY_PASSWORD";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How to reach registries: from `[registries."HOST:PORT"]` in host.toml or command flags.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RegistryOptions {
    /// Plain HTTP: refused unless the registry is on this machine (127.0.0.0/8, ::1, localhost).
    #[serde(default)]
    pub insecure: bool,
    /// PEM certificates trusted besides the system's roots (a private registry's CA).
    pub ca_file: Option<PathBuf>,
}

/// Bytes that are not what was asked for (digest, size, format): never routed around by asking
/// elsewhere, unlike a registry that does not answer.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

macro_rules! refuse {
    ($($arg:tt)*) => { return Err(Refused(format!($($arg)*)).into()) };
}

pub struct Registry {
    client: Client,
    http: reqwest::Client,
    auth: RegistryAuth,
    scheme: &'static str,
}

impl Registry {
    /// A client for the registry `reference` names.
    pub fn connect(reference: &ArtifactRef, options: &RegistryOptions) -> Result<Self> {
        if options.insecure && !reference.is_loopback() {
            bail!(
                "plain HTTP (insecure) is allowed only for a registry on this machine, not {}; \
                 give the registry's CA with ca-file instead",
                reference.registry
            );
        }
        let mut roots = Vec::new();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            roots.push(Certificate {
                encoding: CertificateEncoding::Der,
                data: cert.to_vec(),
            });
        }
        if let Some(ca) = &options.ca_file {
            let pem = std::fs::read(ca)
                .with_context(|| format!("reading the registry CA file {}", ca.display()))?;
            roots.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data: pem,
            });
        }
        let mut http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(5));
        for cert in &roots {
            let cert = match cert.encoding {
                CertificateEncoding::Der => reqwest::Certificate::from_der(&cert.data),
                CertificateEncoding::Pem => reqwest::Certificate::from_pem(&cert.data),
            };
            // A broken system certificate is skipped, as reqwest's own loader does.
            if let Ok(cert) = cert {
                http = http.add_root_certificate(cert);
            }
        }
        let config = ClientConfig {
            protocol: if options.insecure {
                ClientProtocol::HttpsExcept(vec![reference.registry.clone()])
            } else {
                ClientProtocol::Https
            },
            extra_root_certificates: roots,
            platform_resolver: None,
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            user_agent: concat!("runbook-host/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        Ok(Self {
            client: Client::try_from(config).context("building the registry client")?,
            http: http.build().context("building the registry client")?,
            auth: credentials(&reference.registry)?,
            scheme: if options.insecure { "http" } else { "https" },
        })
    }

    /// Logs in for `op` (a bearer token from the registry's token service, or basic auth) and
    /// returns the Authorization header our own requests carry.
    async fn authorize(&self, r: &ArtifactRef, op: RegistryOperation) -> Result<Option<String>> {
        let token = self
            .client
            .auth(&r.client_ref(), &self.auth, op)
            .await
            .map_err(|e| explain(r, e.into()))?;
        Ok(match (token, &self.auth) {
            (Some(token), _) => Some(format!("Bearer {token}")),
            (None, RegistryAuth::Basic(user, password)) => {
                use base64::Engine;
                let pair = format!("{user}:{password}");
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            }
            _ => None,
        })
    }

    /// The manifest `r` names (by digest, else by tag) and its digest, read no further than
    /// `MAX_MANIFEST_BYTES`; `None` when the registry has no such manifest. A digest in `r` is
    /// checked against the bytes.
    pub async fn manifest(&self, r: &ArtifactRef) -> Result<Option<(Vec<u8>, String)>> {
        let authorization = self.authorize(r, RegistryOperation::Pull).await?;
        let which = r.digest.as_deref().or(r.tag.as_deref()).unwrap_or_default();
        let url = format!(
            "{}://{}/v2/{}/manifests/{which}",
            self.scheme, r.registry, r.repository
        );
        let mut request = self.http.get(&url).header(
            reqwest::header::ACCEPT,
            format!(
                "{OCI_MANIFEST_MEDIA_TYPE}, application/vnd.docker.distribution.manifest.v2+json"
            ),
        );
        if let Some(value) = authorization {
            request = request.header(reqwest::header::AUTHORIZATION, value);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("asking {} for {r}", r.registry))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            bail!(
                "{} answered {status} for the manifest of {r}{}",
                r.registry,
                auth_hint(status)
            );
        }
        if let Some(length) = response.content_length()
            && length > MAX_MANIFEST_BYTES as u64
        {
            refuse!(
                "{r}: the manifest is {length} bytes, over the cap of {MAX_MANIFEST_BYTES}: not a playbook"
            );
        }
        let header_digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = match read_capped(response, MAX_MANIFEST_BYTES).await {
            Ok(body) => body,
            Err(e) if e.is::<Refused>() => refuse!("{r}: the manifest: {e}"),
            Err(e) => return Err(e.context(format!("{r}: reading the manifest"))),
        };
        let digest = sha256_digest(&body);
        if let Some(expected) = &r.digest
            && *expected != digest
        {
            refuse!(
                "{r}: the registry sent a manifest whose digest is {digest}, not the one asked for"
            );
        }
        if let Some(header) = header_digest
            && header.starts_with("sha256:")
            && header != digest
        {
            refuse!(
                "{r}: the registry's Docker-Content-Digest {header:?} is not the manifest's digest {digest}"
            );
        }
        Ok(Some((body, digest)))
    }

    /// Streams the blob `digest` of `r`'s repository to `path` (created new), at most `cap`
    /// bytes, checking its SHA-256 and, when `wasm`, its `\0asm` header as it arrives.
    pub async fn blob_to_file(
        &self,
        r: &ArtifactRef,
        digest: &str,
        cap: u64,
        wasm: bool,
        path: &Path,
    ) -> Result<()> {
        self.authorize(r, RegistryOperation::Pull).await?;
        let descriptor = oci_client::manifest::OciDescriptor {
            digest: digest.to_string(),
            ..Default::default()
        };
        let mut stream = self
            .client
            .pull_blob_stream(&r.client_ref(), &descriptor)
            .await
            .map_err(|e| explain(r, e.into()))?;
        if let Some(length) = stream.content_length
            && length > cap
        {
            refuse!("{r}: the blob {digest} is {length} bytes, over the cap of {cap}");
        }
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .await
            .with_context(|| format!("creating {}", path.display()))?;
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        let mut head = Vec::with_capacity(4);
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                // oci-client checks the digest too, at the end: every byte is hashed here by
                // then, and the refusal says what we got.
                Err(e) if is_digest_error(&e) => {
                    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
                    refuse!(
                        "{r}: the registry served bytes whose digest is {actual}, not {digest}: refused"
                    );
                }
                Err(e) => return Err(e).context(format!("{r}: reading the blob {digest}")),
            };
            written += chunk.len() as u64;
            if written > cap {
                refuse!("{r}: the blob {digest} is over the cap of {cap} bytes");
            }
            if wasm && head.len() < 4 {
                let take = (4 - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
                if head.len() == 4 && head != b"\0asm" {
                    refuse!("{r}: the layer is not WebAssembly (no \\0asm header)");
                }
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
        }
        if wasm && head.len() < 4 {
            refuse!("{r}: the layer is not WebAssembly (shorter than its header)");
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != digest {
            refuse!(
                "{r}: the registry served bytes whose digest is {actual}, not {digest}: refused"
            );
        }
        file.sync_all().await?;
        Ok(())
    }

    /// A small blob (a signature payload), checked against its digest.
    pub async fn small_blob(&self, r: &ArtifactRef, digest: &str) -> Result<Vec<u8>> {
        self.authorize(r, RegistryOperation::Pull).await?;
        let descriptor = oci_client::manifest::OciDescriptor {
            digest: digest.to_string(),
            ..Default::default()
        };
        let mut stream = self
            .client
            .pull_blob_stream(&r.client_ref(), &descriptor)
            .await
            .map_err(|e| explain(r, e.into()))?;
        let mut body = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) if is_digest_error(&e) => {
                    refuse!("{r}: the registry served a blob whose digest is not {digest}: refused")
                }
                Err(e) => return Err(e.into()),
            };
            if body.len() + chunk.len() > MAX_SMALL_BLOB_BYTES {
                bail!("{r}: the blob {digest} is over {MAX_SMALL_BLOB_BYTES} bytes");
            }
            body.extend_from_slice(&chunk);
        }
        if sha256_digest(&body) != digest {
            bail!("{r}: the registry served a blob whose digest is not {digest}: refused");
        }
        Ok(body)
    }

    pub async fn push_blob(&self, r: &ArtifactRef, data: &[u8]) -> Result<String> {
        let digest = sha256_digest(data);
        self.client
            .auth(&r.client_ref(), &self.auth, RegistryOperation::Push)
            .await
            .map_err(|e| explain(r, e.into()))?;
        self.client
            .push_blob(&r.client_ref(), data, &digest)
            .await
            .map_err(|e| explain(r, e.into()))?;
        Ok(digest)
    }

    /// Puts a manifest under `r`'s tag (or digest); returns its digest.
    pub async fn push_manifest(&self, r: &ArtifactRef, body: Vec<u8>) -> Result<String> {
        let digest = sha256_digest(&body);
        self.client
            .auth(&r.client_ref(), &self.auth, RegistryOperation::Push)
            .await
            .map_err(|e| explain(r, e.into()))?;
        self.client
            .push_manifest_raw(
                &r.client_ref(),
                body,
                reqwest::header::HeaderValue::from_static(OCI_MANIFEST_MEDIA_TYPE),
            )
            .await
            .map_err(|e| explain(r, e.into()))?;
        Ok(digest)
    }
}

/// `sha256:HEX` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Registry credentials: `RUNBOOK_REGISTRY_USERNAME` and `RUNBOOK_REGISTRY_PASSWORD` when both
/// are set, else Docker's config.json (`$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`: `auths`, `credHelpers`, `credsStore`), else anonymous.
pub fn credentials(registry: &str) -> Result<RegistryAuth> {
    if let (Ok(user), Ok(password)) = (std::env::var(USERNAME_ENV), std::env::var(PASSWORD_ENV)) {
        return Ok(RegistryAuth::Basic(user, password));
    }
    use docker_credential::{CredentialRetrievalError as E, DockerCredential};
    // The crate calls a missing file unreadable: no config.json is no credentials, not an error.
    let config = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
        .map(|dir| dir.join("config.json"));
    if !config.as_deref().is_some_and(Path::is_file) {
        return Ok(RegistryAuth::Anonymous);
    }
    match docker_credential::get_credential(registry) {
        Ok(DockerCredential::UsernamePassword(user, password)) => {
            Ok(RegistryAuth::Basic(user, password))
        }
        Ok(DockerCredential::IdentityToken(_)) => bail!(
            "Docker's config.json holds an identity token for {registry}, which this host cannot \
             use; set {USERNAME_ENV} and {PASSWORD_ENV}"
        ),
        Err(E::ConfigNotFound | E::NoCredentialConfigured) => Ok(RegistryAuth::Anonymous),
        Err(e) => bail!("registry credentials for {registry} from Docker's config.json: {e}"),
    }
}

/// What a registry error means for the operator.
fn explain(r: &ArtifactRef, e: anyhow::Error) -> anyhow::Error {
    let text = format!("{e:#}");
    let hint =
        if text.contains("401") || text.contains("nauthorized") || text.contains("uthentication") {
            format!(
                " (credentials: `docker login {}`, or {USERNAME_ENV} and {PASSWORD_ENV})",
                r.registry
            )
        } else if text.contains("certificate") || text.contains("invalid peer") {
            " (a private registry's CA: ca-file in [registries.\"HOST:PORT\"] or --ca-file)"
                .to_string()
        } else {
            String::new()
        };
    anyhow::anyhow!(
        "registry {}: {}{hint}",
        r.registry,
        runbook_core::text::escape(&text.chars().take(400).collect::<String>())
    )
}

fn auth_hint(status: reqwest::StatusCode) -> String {
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        format!(" (credentials: `docker login`, or {USERNAME_ENV} and {PASSWORD_ENV})")
    } else {
        String::new()
    }
}

/// oci-client's own end-of-stream digest check failing.
fn is_digest_error(e: &std::io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<oci_client::errors::DigestError>())
}

/// A response body, refused as soon as it passes `cap` bytes.
async fn read_capped(response: reqwest::Response, cap: usize) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > cap {
            refuse!("over the cap of {cap} bytes: refused");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};

    /// A registry on 127.0.0.1 that answers `/v2/` and then sends `manifest_response` for any
    /// manifest: a misbehaving server, real sockets.
    fn hostile_registry(manifest_response: fn(&mut std::net::TcpStream)) -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let path = line.split(' ').nth(1).unwrap_or_default().to_string();
                        loop {
                            let mut header = String::new();
                            if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                                break;
                            }
                        }
                        if path == "/v2/" {
                            let _ =
                                stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                        } else {
                            manifest_response(&mut stream);
                            return;
                        }
                    }
                });
            }
        });
        port
    }

    async fn ask(port: u16) -> anyhow::Error {
        let r = ArtifactRef::parse(&format!("127.0.0.1:{port}/x/y:1")).unwrap();
        let options = RegistryOptions {
            insecure: true,
            ca_file: None,
        };
        let registry = Registry::connect(&r, &options).unwrap();
        tokio::time::timeout(Duration::from_secs(10), registry.manifest(&r))
            .await
            .expect("the manifest read is bounded, not waited out")
            .unwrap_err()
    }

    #[tokio::test]
    async fn a_manifest_over_the_cap_is_refused_before_it_is_read() {
        // Announces 100 MB and sends none of it: refused on the announcement.
        let port = hostile_registry(|s| {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000000\r\n\r\n");
            std::thread::sleep(Duration::from_secs(30));
        });
        let e = ask(port).await;
        assert!(
            e.is::<Refused>() && e.to_string().contains("over the cap"),
            "{e:#}"
        );

        // No length, an endless body: refused once past the cap.
        let port = hostile_registry(|s| {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
            let chunk = vec![b'{'; 16 << 10];
            for _ in 0..4096 {
                let head = format!("{:x}\r\n", chunk.len());
                if s.write_all(head.as_bytes()).is_err()
                    || s.write_all(&chunk).is_err()
                    || s.write_all(b"\r\n").is_err()
                {
                    return;
                }
            }
        });
        let e = ask(port).await;
        assert!(
            e.is::<Refused>() && e.to_string().contains("over the cap"),
            "{e:#}"
        );
    }
}
