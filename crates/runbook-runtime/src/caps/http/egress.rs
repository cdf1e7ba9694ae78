//! Where a playbook's HTTP request may connect. The origin grant names a host; this module
//! decides about the *address* actually dialled: loopback, private, link-local (cloud metadata
//! at 169.254.169.254), unique-local, CGNAT and unspecified addresses are refused unless the
//! operator named that host as private. Names are resolved by our own resolver inside the HTTP
//! client, so the address checked is the address connected to (no DNS-rebinding window).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use crate::policy::Grants;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A run's view of which hosts may lead to non-public addresses.
#[derive(Debug, Default)]
pub struct EgressPolicy {
    /// Lower-case host names (no brackets) that may resolve to non-public addresses.
    private_hosts: BTreeSet<String>,
}

tokio::task_local! {
    /// The policy of the run whose request is being sent. The resolver reads it; without it
    /// (a connection finished in the background, say) every name is refused.
    static POLICY: Arc<EgressPolicy>;
}

/// Refusal by the address check; found again in the HTTP client's error chain.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EgressRefused(pub String);

impl EgressPolicy {
    /// `localhost` always means loopback, so a grant naming it needs no more; any other name
    /// must be listed in `http-private`.
    pub fn from_grants(grants: &Grants) -> Self {
        let mut private_hosts: BTreeSet<String> = grants
            .http_private
            .iter()
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        private_hosts.insert("localhost".into());
        Self { private_hosts }
    }

    /// Runs `request` with this policy in force for the resolver.
    pub async fn scope<F: Future>(self: Arc<Self>, request: F) -> F::Output {
        POLICY.scope(self, request).await
    }

    fn may_be_private(&self, host: &str) -> bool {
        self.private_hosts
            .contains(&host.trim_end_matches('.').to_ascii_lowercase())
    }

    /// The check before sending: IP literals (which the client dials without resolving) must
    /// be written plainly; a granted literal is the operator naming that address, so it may be
    /// private. Names are checked by the resolver.
    pub fn check_url(raw: &str, url: &Url) -> Result<(), EgressRefused> {
        let Some(host) = url.host() else {
            return Ok(());
        };
        if let Host::Ipv4(ip) = host
            && raw_host(raw).is_some_and(|written| written != ip.to_string())
        {
            return Err(EgressRefused(format!(
                "{}: the host {:?} is the address {ip} in disguise (decimal, octal, hex or \
                 short form); write addresses plainly",
                crate::redact::url(raw),
                raw_host(raw).unwrap_or_default()
            )));
        }
        Ok(())
    }

    /// Resolves `host` and keeps the answer only if every address is allowed for it. A name
    /// that does not resolve is the network's problem (`dns`), not a refusal.
    async fn resolve(&self, host: &str) -> Result<Vec<SocketAddr>, BoxError> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
        if !self.may_be_private(host)
            && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip()))
        {
            return Err(EgressRefused(format!(
                "{host} resolves to {}, a {} address; only hosts listed in the playbook's \
                 `http-private` grant may lead there",
                bad.ip(),
                class(bad.ip())
            ))
            .into());
        }
        Ok(addrs)
    }
}

/// The host exactly as written in the URL text (userinfo and port removed, lower-cased).
fn raw_host(raw: &str) -> Option<String> {
    let rest = raw.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        host_port.split_inclusive(']').next()?
    } else {
        host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
    };
    Some(host.to_ascii_lowercase())
}

/// The resolver installed in the run's HTTP client.
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = POLICY.try_with(Arc::clone);
        let host = name.as_str().to_string();
        Box::pin(async move {
            let policy = policy.map_err(|_| {
                EgressRefused(format!("{host}: no egress policy in force; refused"))
            })?;
            let addrs = policy.resolve(&host).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The refusal inside an HTTP client error, if that is what stopped the request.
pub fn refusal(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<EgressRefused>() {
            return Some(refused.0.clone());
        }
        source = e.source();
    }
    None
}

/// Reachable from anywhere on the internet: not loopback, private, link-local, shared (CGNAT),
/// unique-local, unspecified, multicast, broadcast or documentation space. IPv4 addresses
/// embedded in IPv6 (mapped, NAT64, 6to4) are judged as IPv4.
pub fn is_public(ip: IpAddr) -> bool {
    class(ip) == "public"
}

fn class(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(v4) => class_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => class_v4(v4),
            None => class_v6(v6),
        },
    }
}

fn class_v4(ip: Ipv4Addr) -> &'static str {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        "loopback"
    } else if ip.is_private() {
        "private"
    } else if ip.is_link_local() {
        "link-local (cloud metadata)"
    } else if a == 100 && (64..128).contains(&b) {
        "shared (CGNAT)"
    } else if ip.is_unspecified() || a == 0 {
        "unspecified"
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        "multicast or reserved"
    } else if ip.is_documentation() || (a == 192 && b == 0 && ip.octets()[2] == 0) {
        "reserved"
    } else {
        "public"
    }
}

fn class_v6(ip: Ipv6Addr) -> &'static str {
    if ip.is_loopback() {
        "loopback"
    } else if ip.is_unspecified() {
        "unspecified"
    } else if ip.is_unique_local() {
        "unique-local (private)"
    } else if ip.is_unicast_link_local() {
        "link-local"
    } else if ip.is_multicast() {
        "multicast"
    } else if ip.segments()[0] == 0x2001 && ip.segments()[1] == 0xdb8 {
        "reserved"
    } else {
        "public"
    }
}

/// The IPv4 address inside an IPv4-mapped, NAT64 (64:ff9b::/96) or 6to4 (2002::/16) address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let from = |hi: u16, lo: u16| Ipv4Addr::from(((hi as u32) << 16) | lo as u32);
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return Some(from(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(from(s[1], s[2]));
    }
    // Deprecated IPv4-compatible (::a.b.c.d), judged by the address it spells.
    if s[0..6] == [0; 6] && !ip.is_unspecified() && !ip.is_loopback() {
        return Some(from(s[6], s[7]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_classified() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "::7f00:1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["1.1.1.1", "93.184.216.34", "2606:4700::1111", "100.128.0.1"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn disguised_ipv4_literals_are_refused() {
        for raw in [
            "http://2130706433/",
            "http://0x7f000001:8080/x",
            "http://017700000001/",
            "http://127.1/",
            "http://user:pw@2852039166/latest/meta-data",
        ] {
            let url = Url::parse(raw).unwrap();
            assert!(EgressPolicy::check_url(raw, &url).is_err(), "{raw}");
        }
        for raw in [
            "http://127.0.0.1:8080/",
            "http://[::1]:80/",
            "https://example.com/",
        ] {
            let url = Url::parse(raw).unwrap();
            assert!(EgressPolicy::check_url(raw, &url).is_ok(), "{raw}");
        }
    }

    #[tokio::test]
    async fn names_leading_to_private_addresses_need_the_private_grant() {
        let strict = EgressPolicy::from_grants(&Grants::default());
        // `runsc`/`vm` style names from /etc/hosts are not known everywhere; `localhost` is.
        assert!(strict.resolve("localhost").await.is_ok());
        let grants = Grants {
            http_private: vec!["ip6-localhost".into()],
            ..Grants::default()
        };
        let named = EgressPolicy::from_grants(&grants);
        assert!(named.may_be_private("IP6-LOCALHOST."));
        assert!(!strict.may_be_private("ip6-localhost"));
    }
}
