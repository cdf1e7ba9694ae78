//! Strict artifact references: `[oci://]REGISTRY/REPOSITORY[:TAG][@sha256:HEX]`. The registry
//! is always named (no implicit Docker Hub): a reference in host.toml or on a command line says
//! exactly which server is asked. Everything else is refused before any request is made, so a
//! reference can never smuggle a path, a query or a second host into a URL.

use std::fmt;

/// Longest reference accepted (the distribution spec's repository limit plus tag and digest).
pub const MAX_REFERENCE_LEN: usize = 512;
const MAX_TAG_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArtifactRef {
    /// `host`, `host:port`, `[v6]:port`; lowercase.
    pub registry: String,
    /// `ns/name`: lowercase path components of `[a-z0-9]` joined by `.`, `_`, `__` or `-`.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:` and 64 lowercase hex digits: the manifest's digest.
    pub digest: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "{shown:?} is not an artifact reference: {why} (expected [oci://]REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST], e.g. oci://registry.example.com/playbooks/disk-full:1.4)"
)]
pub struct BadReference {
    shown: String,
    why: &'static str,
}

impl ArtifactRef {
    pub fn parse(text: &str) -> Result<Self, BadReference> {
        let bad = |why| BadReference {
            shown: text.chars().take(120).collect(),
            why,
        };
        if text.len() > MAX_REFERENCE_LEN {
            return Err(bad("longer than 512 bytes"));
        }
        let rest = text.strip_prefix("oci://").unwrap_or(text);
        if !rest.is_ascii() || rest.chars().any(|c| c.is_ascii_control() || c == ' ') {
            return Err(bad("only printable ASCII without spaces"));
        }
        let (rest, digest) = match rest.split_once('@') {
            Some((rest, digest)) => {
                check_digest(digest).map_err(bad)?;
                (rest, Some(digest.to_string()))
            }
            None => (rest, None),
        };
        let (registry, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("no registry: name the registry host first"))?;
        check_registry(registry).map_err(bad)?;
        // A tag's colon is after the last slash; a port's is in the registry, already split off.
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
            _ => (path, None),
        };
        check_repository(repository).map_err(bad)?;
        if let Some(tag) = tag {
            check_tag(tag).map_err(bad)?;
        }
        if tag.is_none() && digest.is_none() {
            return Err(bad(
                "no tag and no digest: say which version (`:1.4` or `@sha256:…`)",
            ));
        }
        Ok(Self {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The same artifact pinned to `digest` (the tag kept for the reader).
    pub fn pinned(&self, digest: &str) -> Self {
        Self {
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }

    /// The reference oci-client sends: the digest when there is one, else the tag.
    pub fn client_ref(&self) -> oci_client::Reference {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => oci_client::Reference::with_digest(
                self.registry.clone(),
                self.repository.clone(),
                digest.clone(),
            ),
            (None, Some(tag)) => oci_client::Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                tag.clone(),
            ),
            (None, None) => unreachable!("parse requires a tag or a digest"),
        }
    }

    /// A tag of the same repository (a signature's `sha256-HEX.sig`).
    pub fn with_tag(&self, tag: &str) -> Self {
        Self {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }

    /// The host part without the port, for the loopback rule of `--insecure`.
    pub fn host(&self) -> &str {
        let r = self.registry.as_str();
        if let Some(v6) = r.strip_prefix('[') {
            return v6.split(']').next().unwrap_or_default();
        }
        r.split(':').next().unwrap_or(r)
    }

    /// Whether the registry is this machine: only then may it be spoken to in plain HTTP.
    pub fn is_loopback(&self) -> bool {
        let host = self.host();
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// `registry/repository` as cosign's `docker-reference`.
    pub fn repository_path(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for ArtifactRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci://{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `sha256:` + 64 lowercase hex digits; nothing else is ever put in a URL or a path.
pub fn check_digest(digest: &str) -> Result<(), &'static str> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or("a digest is sha256:HEX")?;
    if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err("a sha256 digest has 64 lowercase hex digits")
    }
}

fn check_registry(registry: &str) -> Result<(), &'static str> {
    let (host, port) = if let Some(v6) = registry.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or("unclosed [ in the registry")?;
        addr.parse::<std::net::Ipv6Addr>()
            .map_err(|_| "not an IPv6 address in [ ]")?;
        (None, after.strip_prefix(':'))
    } else {
        match registry.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(registry), None),
        }
    };
    if let Some(host) = host {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
            return Err("the registry is a lowercase host name or IP address");
        }
        // `ns/x:1` must not read as registry "ns": a registry has a dot, a port or is localhost.
        if !host.contains('.') && port.is_none() && host != "localhost" {
            return Err(
                "the first component must be a registry (a host with a dot or a port, or localhost)",
            );
        }
    }
    if let Some(port) = port
        && port.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err("the registry's port is a number from 1 to 65535");
    }
    Ok(())
}

fn check_repository(repository: &str) -> Result<(), &'static str> {
    if repository.is_empty() || repository.len() > 255 {
        return Err("the repository has 1 to 255 characters");
    }
    for component in repository.split('/') {
        let mut prev_sep = true;
        let bytes = component.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            let alnum = b.is_ascii_lowercase() || b.is_ascii_digit();
            if alnum {
                prev_sep = false;
                continue;
            }
            let sep = matches!(b, b'.' | b'_' | b'-');
            // `__` is one separator; any other run of separators is refused.
            let double_underscore =
                b == b'_' && i > 0 && bytes[i - 1] == b'_' && { i < 2 || bytes[i - 2] != b'_' };
            let dashes = b == b'-' && i > 0 && bytes[i - 1] == b'-';
            if !sep || (prev_sep && !double_underscore && !dashes) {
                return Err(
                    "repository components are lowercase letters and digits joined by '.', '_', '__' or '-'",
                );
            }
            prev_sep = true;
        }
        if prev_sep {
            return Err("a repository component is empty or ends with a separator");
        }
    }
    Ok(())
}

fn check_tag(tag: &str) -> Result<(), &'static str> {
    let ok = !tag.is_empty()
        && tag.len() <= MAX_TAG_LEN
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err("a tag is 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_registries_accept() {
        let r = ArtifactRef::parse("oci://127.0.0.1:5015/playbooks/disk-full:1.4").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5015");
        assert_eq!(r.repository, "playbooks/disk-full");
        assert_eq!(r.tag.as_deref(), Some("1.4"));
        assert!(r.is_loopback());
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ArtifactRef::parse(&format!("ghcr.io/acme/x__y.z@{d}")).unwrap();
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert!(!r.is_loopback());
        assert_eq!(r.to_string(), format!("oci://ghcr.io/acme/x__y.z@{d}"));
        let r = ArtifactRef::parse("localhost/a:b").unwrap();
        assert!(r.is_loopback());
        let r = ArtifactRef::parse("[::1]:5000/a:b").unwrap();
        assert!(r.is_loopback());
    }

    #[test]
    fn refuses_anything_else() {
        let d = "a".repeat(64);
        for bad in [
            "",
            "oci://",
            "playbooks/x:1",
            "x:1",
            "reg.io/x",
            "reg.io/X:1",
            "reg.io/../x:1",
            "reg.io/x/:1",
            "reg.io//x:1",
            "reg.io/x:1?q=1",
            "reg.io/x:1#f",
            "reg.io/x:-1",
            "reg.io/x:.1",
            "reg.io/x:1 2",
            "reg.io/x:1\n",
            "Reg.io/x:1",
            "user@reg.io/x:1",
            "reg.io:0/x:1",
            "reg.io:99999/x:1",
            "reg.io/x___y:1",
            "reg.io/x--/y:1",
            "reg.io/x@sha256:abc",
            "reg.io/x@md5:abc",
            &format!("reg.io/x@sha256:{}", d.to_uppercase()),
            &format!("reg.io/{}:1", "a".repeat(600)),
            "reg.io/x:é",
        ] {
            assert!(ArtifactRef::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
