//! The link to PostgreSQL under libpq's TLS conventions, so a URL written for `psql` works
//! here: `sslmode` (disable, prefer, require, verify-ca, verify-full), `sslrootcert`,
//! `sslcert` and `sslkey`, in the URL (`?sslmode=…` or `sslmode=…` in a key=value string)
//! or, when the URL is silent, in `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`.
//! tokio-postgres knows only disable/prefer/require and verifies nothing itself: the modes
//! are taken out of the URL here and carried by a rustls verifier.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::backend::{LinkSecurity, SslMode};
use anyhow::{Context, Result, anyhow, bail};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Where the trusted CAs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// The operating system's store (`sslrootcert=system`, or verify-* without a file).
    System,
    File(PathBuf),
}

/// The TLS half of a store URL: what to ask for and how to check the answer.
pub(super) struct Link {
    pub mode: SslMode,
    roots: Option<Roots>,
    client_cert: Option<(PathBuf, PathBuf)>,
    /// Set by the verifier: a handshake reached the certificate check, so TLS was spoken.
    handshaken: Arc<AtomicBool>,
    local: bool,
    /// `pgbouncer=true`: the URL names a transaction-mode pooler (see sql.rs).
    pub pooler: bool,
}

impl Link {
    pub(super) fn security(&self) -> LinkSecurity {
        let encrypted = match self.mode {
            SslMode::Disable => false,
            SslMode::Prefer => self.handshaken.load(Ordering::Relaxed),
            _ => true,
        };
        let verified = encrypted && self.verifies();
        LinkSecurity {
            mode: self.mode,
            encrypted,
            verified,
            name_checked: verified && self.mode == SslMode::VerifyFull,
            client_certificate: encrypted && self.client_cert.is_some(),
            local: self.local,
        }
    }

    fn verifies(&self) -> bool {
        match self.mode {
            SslMode::VerifyCa | SslMode::VerifyFull => true,
            SslMode::Require => self.roots.is_some(),
            SslMode::Disable | SslMode::Prefer => false,
        }
    }

    /// The connector every connection of the store (pool and listener) uses.
    pub(super) fn connector(&self) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let inner = match self.verifies() {
            true => Some(web_pki(
                self.roots.as_ref().unwrap_or(&Roots::System),
                provider.clone(),
            )?),
            false => None,
        };
        let verifier = Arc::new(Verifier {
            inner,
            check_name: self.mode == SslMode::VerifyFull,
            algorithms: provider.signature_verification_algorithms,
            handshaken: self.handshaken.clone(),
        });
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS for the run store: no protocol version")?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match &self.client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = read_certs(cert, "sslcert")?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| anyhow!("sslkey={}: no private key read: {e}", key.display()))?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    anyhow!("sslcert/sslkey: the key does not fit the certificate: {e}")
                })?
            }
        };
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }

    /// A connection error in the words of the setting that fixes it, when it is about TLS.
    pub(super) fn explain(&self, error: &anyhow::Error, host: &str) -> Option<String> {
        let roots = match &self.roots {
            Some(Roots::File(path)) => format!("the CA in sslrootcert={}", path.display()),
            _ => "any CA of this system's trust store".to_string(),
        };
        for cause in error.chain() {
            let text = cause.to_string();
            if let Some(tls) = rustls_error(cause) {
                return Some(match tls {
                    rustls::Error::InvalidCertificate(e) => match e {
                        CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                            format!(
                                "the server's certificate is not signed by {roots}: \
                             set sslrootcert to the CA that signed it"
                            )
                        }
                        CertificateError::NotValidForName
                        | CertificateError::NotValidForNameContext { .. } => format!(
                            "the server's certificate does not name the host {host:?} \
                             (sslmode=verify-full checks it): connect by a name the \
                             certificate carries, or use sslmode=verify-ca"
                        ),
                        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                            "the server's certificate has expired: renew it on the server \
                             (ssl_cert_file)"
                                .to_string()
                        }
                        CertificateError::NotValidYet
                        | CertificateError::NotValidYetContext { .. } => {
                            "the server's certificate is not valid yet: check the clocks"
                                .to_string()
                        }
                        other => format!("the server's certificate was refused: {other:?}"),
                    },
                    rustls::Error::AlertReceived(alert) => format!(
                        "the server refused the TLS handshake ({alert:?}): check \
                         sslcert/sslkey, the client certificate it expects"
                    ),
                    other => format!("TLS to the run store failed: {other}"),
                });
            }
            if text.contains("server does not support TLS") {
                return Some(format!(
                    "the server does not accept TLS and sslmode={} requires it: turn `ssl` \
                     on in its postgresql.conf, or use sslmode=prefer",
                    self.mode.as_str()
                ));
            }
            if text.contains("requires a valid client certificate") {
                return Some(
                    "the server requires a client certificate: set sslcert and sslkey".into(),
                );
            }
            if text.contains("no encryption") || text.contains("SSL off") {
                return Some(
                    "the server accepts only TLS connections: set sslmode=verify-full (or \
                     require)"
                        .into(),
                );
            }
        }
        None
    }
}

/// Takes libpq's TLS settings out of `url` (they are not tokio-postgres's to read) and
/// returns the rest as tokio-postgres's config, with its own mode set to match.
pub(super) fn split(url: &str) -> Result<(tokio_postgres::Config, Link)> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    split_with(url, env)
}

fn split_with(
    url: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(tokio_postgres::Config, Link)> {
    let (rest, mut found) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        take_from_uri(url)
    } else {
        take_from_key_values(url)?
    };
    for (key, var) in SETTINGS {
        if !found.iter().any(|(k, _)| k == key)
            && let Some(value) = env(var)
        {
            found.push((key.to_string(), value));
        }
    }
    let get = |key: &str| found.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v);
    let mode = match get("sslmode") {
        Some(mode) => SslMode::parse(mode)?,
        None => SslMode::Prefer,
    };
    let roots = get("sslrootcert").map(|path| match path.as_str() {
        "system" => Roots::System,
        path => Roots::File(PathBuf::from(path)),
    });
    let pooler = match get(POOLER).map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => bail!("{POOLER}={other:?} in the store URL: the value is true or false"),
    };
    let client_cert = match (get("sslcert"), get("sslkey")) {
        (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
        (None, None) => None,
        (Some(_), None) => bail!("sslcert is set without sslkey: a client certificate needs both"),
        (None, Some(_)) => bail!("sslkey is set without sslcert: a client certificate needs both"),
    };
    let mut config: tokio_postgres::Config = rest
        .parse()
        .map_err(|e| anyhow!("the store URL is not a PostgreSQL connection string: {e}"))?;
    config.ssl_mode(match mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    let local = config.get_hosts().iter().all(|host| match host {
        tokio_postgres::config::Host::Tcp(name) => {
            name == "localhost"
                || name
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        tokio_postgres::config::Host::Unix(_) => true,
    }) && !config.get_hostaddrs().iter().any(|ip| !ip.is_loopback());
    Ok((
        config,
        Link {
            mode,
            roots,
            client_cert,
            handshaken: Arc::default(),
            local,
            pooler,
        },
    ))
}

const SETTINGS: [(&str, &str); 4] = [
    ("sslmode", "PGSSLMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
];

/// Ours too, but no environment variable: whether the URL names a transaction-mode pooler
/// (Prisma's spelling), which takes no start-up options, so must not be passed on.
const POOLER: &str = "pgbouncer";

fn ours(key: &str) -> bool {
    key == POOLER || SETTINGS.iter().any(|(k, _)| *k == key)
}

/// `postgres://…?a=b&sslmode=verify-full`: the TLS pairs out, the others kept as written.
fn take_from_uri(url: &str) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), Vec::new());
    };
    let mut kept = Vec::new();
    let mut found = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = url::form_urlencoded::parse(pair.as_bytes())
            .next()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .unwrap_or_default();
        if ours(&key) {
            found.push((key, value));
        } else {
            kept.push(pair);
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, found)
}

/// `host=db sslmode=verify-full sslrootcert='/etc/ca dir/ca.pem'`: the same, for libpq's
/// key=value form (values may be single-quoted, with backslash escapes).
fn take_from_key_values(text: &str) -> Result<(String, Vec<(String, String)>)> {
    let mut kept = Vec::new();
    let mut found = Vec::new();
    let mut chars = text.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if chars.next_if(|(_, c)| *c == '=').is_none() {
            bail!("the store URL is not a PostgreSQL connection string: {key:?} has no value");
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if(|(_, c)| *c == '\'').is_some() {
            loop {
                match chars.next() {
                    Some((_, '\'')) => break,
                    Some((_, '\\')) => value.extend(chars.next().map(|(_, c)| c)),
                    Some((_, c)) => value.push(c),
                    None => bail!("the store URL has an unterminated quote after {key}="),
                }
            }
        } else {
            while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace()) {
                value.push(c);
            }
        }
        let end = chars.peek().map(|(i, _)| *i).unwrap_or(text.len());
        if ours(&key) {
            found.push((key, value));
        } else {
            kept.push(&text[start..end]);
        }
    }
    Ok((kept.join(" "), found))
}

fn read_certs(path: &Path, setting: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow!("{setting}={}: {e}", path.display()))?;
    if certs.is_empty() {
        bail!("{setting}={}: no PEM certificate in it", path.display());
    }
    Ok(certs)
}

fn web_pki(roots: &Roots, provider: Arc<CryptoProvider>) -> Result<Arc<WebPkiServerVerifier>> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            for cert in read_certs(path, "sslrootcert")? {
                store
                    .add(cert)
                    .map_err(|e| anyhow!("sslrootcert={}: {e}", path.display()))?;
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                bail!(
                    "no CA certificate found in this system's trust store: set sslrootcert to \
                     the CA that signed the server's certificate"
                );
            }
        }
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
        .build()
        .map_err(|e| anyhow!("sslrootcert: {e}"))
}

fn rustls_error<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(e) = cause.downcast_ref::<rustls::Error>() {
        return Some(e);
    }
    cause
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// One verifier for every mode: with `inner`, WebPKI's chain check (and the name check for
/// verify-full); without, any certificate (prefer, require: encryption without proof).
/// Handshake signatures are always checked, so the peer holds the certificate's key.
#[derive(Debug)]
struct Verifier {
    inner: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    algorithms: WebPkiSupportedAlgorithms,
    handshaken: Arc<AtomicBool>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.handshaken.store(true, Ordering::Relaxed);
        let Some(inner) = &self.inner else {
            return Ok(ServerCertVerified::assertion());
        };
        match inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_plain(url: &str) -> Result<(tokio_postgres::Config, Link)> {
        split_with(url, |_| None)
    }

    #[test]
    fn uri_settings_are_taken_out_and_the_rest_kept() {
        let (config, link) = split_plain(
            "postgres://u@db.example:5433/runs?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(link.mode, SslMode::VerifyFull);
        assert_eq!(link.roots, Some(Roots::File("/etc/ca.pem".into())));
        assert_eq!(config.get_dbname(), Some("runs"));
        assert_eq!(config.get_application_name(), Some("x"));
        assert_eq!(
            config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
    }

    #[test]
    fn key_value_settings_with_quotes() {
        let (config, link) = split_plain(
            "host=db user=u sslmode = 'verify-ca' sslrootcert='/etc/my ca/ca.pem' dbname=x",
        )
        .unwrap();
        assert_eq!(link.mode, SslMode::VerifyCa);
        assert_eq!(link.roots, Some(Roots::File("/etc/my ca/ca.pem".into())));
        assert_eq!(config.get_dbname(), Some("x"));
        assert!(split_plain("host=db sslrootcert='/open").is_err());
        assert!(split_plain("host=db sslmode").is_err());
    }

    #[test]
    fn defaults_follow_libpq_and_env_fills_gaps() {
        let (_, link) = split_plain("postgres://u@db/x").unwrap();
        assert_eq!(link.mode, SslMode::Prefer);
        let env = |name: &str| match name {
            "PGSSLMODE" => Some("require".to_string()),
            "PGSSLROOTCERT" => Some("system".to_string()),
            _ => None,
        };
        let (_, link) = split_with("postgres://u@db/x?sslmode=disable", env).unwrap();
        assert_eq!(
            link.mode,
            SslMode::Disable,
            "the URL wins over the environment"
        );
        assert_eq!(link.roots, Some(Roots::System));
        let (_, link) = split_with("postgres://u@db/x", env).unwrap();
        assert_eq!(link.mode, SslMode::Require);
    }

    #[test]
    fn bad_settings_are_named() {
        let err = split_plain("postgres://u@db/x?sslmode=verify")
            .err()
            .unwrap();
        assert!(err.to_string().contains("sslmode=\"verify\""), "{err}");
        let err = split_plain("postgres://u@db/x?sslmode=allow")
            .err()
            .unwrap();
        assert!(err.to_string().contains("prefer"), "{err}");
        let err = split_plain("postgres://u@db/x?sslcert=/c.pem")
            .err()
            .unwrap();
        assert!(err.to_string().contains("sslkey"), "{err}");
        let (_, link) =
            split_plain("postgres://u@db/x?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
                .unwrap();
        let err = link.connector().err().unwrap();
        assert!(
            err.to_string().contains("sslrootcert=/nonexistent/ca.pem"),
            "{err}"
        );
    }

    #[test]
    fn security_says_what_is_checked() {
        let (_, link) = split_plain("postgres://u@db/x?sslmode=disable").unwrap();
        assert!(!link.security().encrypted);
        let (_, link) = split_plain("postgres://u@db/x?sslmode=require").unwrap();
        let security = link.security();
        assert!(security.encrypted && !security.verified);
        assert!(security.to_string().contains("NOT verified"));
        let (_, link) =
            split_plain("postgres://u@db/x?sslmode=require&sslrootcert=/ca.pem").unwrap();
        assert!(
            link.security().verified,
            "require with a root file is verify-ca (libpq)"
        );
        let (_, link) = split_plain("postgres://u@db/x?sslmode=verify-full").unwrap();
        assert!(link.security().name_checked);
        assert_eq!(link.security().warning(), None);
        let (_, link) = split_plain("postgres://u@db.example/x?sslmode=disable").unwrap();
        assert!(link.security().warning().unwrap().contains("plain text"));
        let (_, link) = split_plain("postgres://u@db.example/x?sslmode=require").unwrap();
        assert!(link.security().warning().unwrap().contains("not verified"));
        let (_, link) = split_plain("postgres://u@127.0.0.1/x?sslmode=disable").unwrap();
        assert_eq!(
            link.security().warning(),
            None,
            "loopback never leaves the machine"
        );
    }
}
