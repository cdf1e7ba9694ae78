//! Which store this is and whether it answers: for messages, `host check` and the health page.

use std::fmt;
use std::time::Duration;

use anyhow::Result;

/// Owns nothing stored: which store this is, and whether it answers.
#[async_trait::async_trait]
pub trait StoreInfo: Send + Sync {
    /// For messages: the SQLite file's path, or the database URL with its password masked.
    fn describe(&self) -> String;

    /// "sqlite" or "postgres".
    fn kind(&self) -> &'static str;

    /// The store's file on this machine (SQLite): fs-read grants never reach it, and the
    /// compile cache lives next to it by default. None for a database server.
    fn local_file(&self) -> Option<std::path::PathBuf>;

    /// One trivial round trip: whether the store answers, and how long it took.
    async fn ping(&self) -> Result<Duration>;

    /// How the link to a database server is protected; None for a file on this machine.
    fn link_security(&self) -> Option<LinkSecurity> {
        None
    }
}

/// libpq's `sslmode`, minus `allow` (plain first, TLS as a fallback), which no one should want.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    /// TLS when the server offers it, unverified; plain otherwise (libpq's default).
    Prefer,
    /// TLS or no connection; the certificate is checked only when `sslrootcert` is given
    /// (then as verify-ca, as libpq does).
    Require,
    /// TLS, and the certificate chains to a trusted CA.
    VerifyCa,
    /// verify-ca, and the certificate names the host connected to.
    VerifyFull,
}

impl SslMode {
    pub fn parse(text: &str) -> anyhow::Result<SslMode> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => anyhow::bail!(
                "sslmode=allow is not supported (it tries plain text first): use prefer or stricter"
            ),
            other => anyhow::bail!(
                "sslmode={other:?} is not one of disable, prefer, require, verify-ca, verify-full"
            ),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// What a link to the store is, for `host check` and the start-up line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSecurity {
    pub mode: SslMode,
    /// The link negotiated TLS (known once a connection was made; `prefer` may fall back).
    pub encrypted: bool,
    /// The server's certificate was checked against trusted CAs (and its name, for
    /// verify-full).
    pub verified: bool,
    pub name_checked: bool,
    pub client_certificate: bool,
    /// The server is this machine (loopback or a Unix socket): nothing crosses a network.
    pub local: bool,
}

impl LinkSecurity {
    /// Why this link deserves a warning: it leaves the machine without a verified server.
    pub fn warning(&self) -> Option<String> {
        if self.local || self.verified {
            return None;
        }
        Some(if self.encrypted {
            format!(
                "the run store's server certificate is not verified (sslmode={}): anyone on \
                 the path can pose as the database; set sslmode=verify-full and sslrootcert",
                self.mode.as_str()
            )
        } else {
            format!(
                "the run store is reached in plain text over the network (sslmode={}): \
                 set sslmode=verify-full and sslrootcert in its URL",
                self.mode.as_str()
            )
        })
    }
}

impl fmt::Display for LinkSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.encrypted {
            return write!(f, "plain text (sslmode={})", self.mode.as_str());
        }
        let check = match (self.verified, self.name_checked) {
            (true, true) => "certificate and host name verified",
            (true, false) => "certificate verified, host name not checked",
            _ => "certificate NOT verified",
        };
        let client = if self.client_certificate {
            ", client certificate"
        } else {
            ""
        };
        write!(f, "TLS, {check}{client} (sslmode={})", self.mode.as_str())
    }
}
