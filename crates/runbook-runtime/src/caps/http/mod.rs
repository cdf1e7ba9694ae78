//! The `http` capability: outbound requests to the origins granted to the playbook. Redirects
//! are followed by hand so every hop is re-checked against the grants; bodies are capped; every
//! request has a deadline; a failed probe is data (refused, timeout, dns, tls, http-status).
//! Where a granted name may lead (no private addresses unless granted) is `egress`'s job.

pub mod egress;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use url::Url;

use crate::bindings::CapError;
use crate::bindings::runbook::host::http::{self, ProbeFailure, ProbeResult, Request, Response};
use crate::calls::LimitExceeded;
use crate::calls::seam::{Gate, replay_call, taped, untargeted};
use crate::policy::Grants;
use egress::{EgressPolicy, GuardedResolver};

/// The `http` interface's view of a run: the run's `Calls`, the client and the egress policy.
pub struct HttpView<'a> {
    pub(crate) calls: &'a mut crate::calls::Calls,
    pub(crate) http: &'a Arc<HttpClient>,
    pub(crate) egress: &'a Arc<egress::EgressPolicy>,
}
crate::calls::view_of_calls!(HttpView);

/// Links the interface to `HttpView` (`add_to_linker_instance::<_, Http>`).
pub struct Http;
impl wasmtime::component::HasData for Http {
    type Data<'a> = HttpView<'a>;
}

type CallResult<T> = wasmtime::Result<Result<T, CapError>>;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_BODY_BYTES: usize = 1 << 20;
const MAX_REDIRECTS: usize = 5;

pub struct HttpClient {
    client: reqwest::Client,
}

impl HttpClient {
    pub fn new() -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would do the resolving (and connecting) out of our sight.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver))
            // No connection outlives its request: one run's checked connection is never
            // reused by another run's request.
            .pool_max_idle_per_host(0)
            .user_agent(concat!("runbook-host/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client })
    }

    /// The client every run shares (its resolver enforces the running request's policy).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

/// A granted origin: `scheme://host[:port]`, with `:*` for any port.
#[derive(Debug, PartialEq)]
pub struct OriginGrant {
    scheme: String,
    host: String,
    /// None: any port.
    port: Option<u16>,
}

impl OriginGrant {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (base, any_port) = match text.strip_suffix(":*") {
            Some(base) => (base, true),
            None => (text.trim_end_matches('/'), false),
        };
        let url = Url::parse(base).map_err(|e| format!("{text:?} is not an origin: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.path() != "/" && !url.path().is_empty()
        {
            return Err(format!(
                "{text:?} is not an origin (scheme://host[:port] or :*)"
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| format!("{text:?} has no host"))?;
        Ok(Self {
            scheme: url.scheme().to_string(),
            host: host.to_ascii_lowercase(),
            port: if any_port {
                None
            } else {
                url.port_or_known_default()
            },
        })
    }

    /// Lower case; IPv6 in brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn allows(&self, url: &Url) -> bool {
        url.scheme() == self.scheme
            && url
                .host_str()
                .is_some_and(|h| h.eq_ignore_ascii_case(&self.host))
            && self
                .port
                .is_none_or(|p| url.port_or_known_default() == Some(p))
    }
}

/// Whether one of the playbook's `http` grants covers the URL's scheme, host and port.
pub fn origin_granted(grants: &Grants, url: &Url) -> bool {
    grants
        .http
        .iter()
        .filter_map(|g| OriginGrant::parse(g).ok())
        .any(|g| g.allows(url))
}

fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

impl HttpView<'_> {
    fn check_url(&self, raw: &str) -> Result<Url, CapError> {
        let shown = crate::text::echo(raw);
        if raw.len() > MAX_URL_BYTES {
            return Err(CapError::Invalid(format!(
                "url {shown:?} is {} bytes; at most {MAX_URL_BYTES}",
                raw.len()
            )));
        }
        let url = Url::parse(raw).map_err(|e| CapError::Invalid(format!("url {shown:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(CapError::Invalid(format!(
                "url {shown:?}: only http and https"
            )));
        }
        EgressPolicy::check_url(raw, &url).map_err(|e| CapError::Denied(e.0))?;
        self.check_origin(&url)?;
        Ok(url)
    }

    /// Counts a request against the per-run cap on http calls.
    fn count_http_call(&mut self) -> wasmtime::Result<()> {
        self.counters.http_calls += 1;
        if self.counters.http_calls > self.limits.max_http_calls {
            return Err(LimitExceeded(format!(
                "more than {} http calls in one run",
                self.limits.max_http_calls
            ))
            .into());
        }
        Ok(())
    }

    fn check_origin(&self, url: &Url) -> Result<(), CapError> {
        if origin_granted(&self.grants, url) {
            Ok(())
        } else {
            Err(CapError::Denied(format!(
                "http to {} is not granted to this playbook (granted: [{}])",
                origin(url),
                self.grants.http.join(", ")
            )))
        }
    }

    /// Sends and follows redirects, each hop re-checked against the grants.
    async fn fetch(
        &mut self,
        method: reqwest::Method,
        mut url: Url,
        headers: &[(String, String)],
        mut body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<reqwest::Response, Fetch> {
        let mut method = method;
        for _ in 0..=MAX_REDIRECTS {
            let mut builder = self
                .http
                .client
                .request(method.clone(), url.clone())
                .timeout(timeout);
            for (name, value) in headers {
                builder = builder.header(name, value);
            }
            if let Some(bytes) = body.clone() {
                builder = builder.body(bytes);
            }
            let response = match self.egress.clone().scope(builder.send()).await {
                Ok(response) => response,
                Err(e) => {
                    return Err(match egress::refusal(&e) {
                        Some(refused) => Fetch::Refused(CapError::Denied(refused)),
                        // Its message would repeat the URL, secrets and all.
                        None => Fetch::Network(e.without_url()),
                    });
                }
            };
            if !response.status().is_redirection() {
                return Ok(response);
            }
            let Some(location) = response.headers().get(reqwest::header::LOCATION) else {
                return Ok(response);
            };
            let location = location.to_str().unwrap_or_default().to_string();
            let next = url.join(&location).map_err(|_| {
                Fetch::Refused(CapError::Failed(format!(
                    "{}: unreadable redirect location",
                    crate::redact::url(url.as_str())
                )))
            })?;
            EgressPolicy::check_url(&location, &next).map_err(|e| {
                Fetch::Refused(CapError::Denied(format!(
                    "redirect from {}: {}",
                    crate::redact::url(url.as_str()),
                    e.0
                )))
            })?;
            self.check_origin(&next).map_err(|e| {
                Fetch::Refused(CapError::Denied(format!(
                    "redirect from {} to {} leaves the granted origins ({})",
                    crate::redact::url(url.as_str()),
                    crate::redact::url(next.as_str()),
                    e.detail()
                )))
            })?;
            if response.status() == reqwest::StatusCode::SEE_OTHER {
                method = reqwest::Method::GET;
                body = None;
            }
            url = next;
        }
        Err(Fetch::Refused(CapError::Failed(format!(
            "more than {MAX_REDIRECTS} redirects"
        ))))
    }
}

enum Fetch {
    Network(reqwest::Error),
    Refused(CapError),
}

/// What went wrong on the wire, the way an operator names it.
fn classify(error: &reqwest::Error) -> (ProbeFailure, String) {
    let mut chain = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(error);
    let mut refused = false;
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        chain.push_str(&format!("{e}; "));
        source = e.source();
    }
    let chain = chain.trim_end_matches("; ").to_string();
    let lower = chain.to_ascii_lowercase();
    let kind = if error.is_timeout() {
        ProbeFailure::Timeout
    } else if refused || lower.contains("connection refused") {
        ProbeFailure::Refused
    } else if lower.contains("dns error") || lower.contains("failed to lookup address") {
        ProbeFailure::Dns
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        ProbeFailure::Tls
    } else {
        ProbeFailure::Other
    };
    (kind, chain)
}

fn failure_word(kind: ProbeFailure) -> &'static str {
    match kind {
        ProbeFailure::Refused => "refused",
        ProbeFailure::Timeout => "timeout",
        ProbeFailure::Dns => "dns",
        ProbeFailure::Tls => "tls",
        ProbeFailure::HttpStatus => "http-status",
        ProbeFailure::Other => "other",
    }
}

fn network_error(url: &Url, error: &reqwest::Error) -> CapError {
    let (kind, detail) = classify(error);
    let detail = format!(
        "{}: {} ({detail})",
        crate::redact::url(url.as_str()),
        failure_word(kind)
    );
    match kind {
        ProbeFailure::Timeout => CapError::Timeout(detail),
        ProbeFailure::Refused | ProbeFailure::Dns => CapError::Unavailable(detail),
        _ => CapError::Failed(detail),
    }
}

fn timeout_of(ms: Option<u32>) -> Duration {
    ms.map_or(DEFAULT_TIMEOUT, |ms| Duration::from_millis(u64::from(ms)))
        .min(MAX_TIMEOUT)
}

/// Headers that choose where or how the request travels: the host decides those from the
/// granted URL (a playbook-chosen `Host` reaches any virtual host behind a granted address).
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "te",
    "trailer",
    "upgrade",
];

/// Longest URL a playbook may ask for (browsers and servers stop near here too).
const MAX_URL_BYTES: usize = 8 << 10;

/// Most headers one request may carry, and the longest name and value.
const MAX_HEADERS: usize = 64;
const MAX_HEADER_BYTES: usize = 8 << 10;

fn check_headers(headers: &[(String, String)]) -> Result<(), CapError> {
    if headers.len() > MAX_HEADERS {
        return Err(CapError::Invalid(format!(
            "{} headers; at most {MAX_HEADERS} per request",
            headers.len()
        )));
    }
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if FORBIDDEN_HEADERS.contains(&lower.as_str()) || lower.starts_with("proxy-") {
            return Err(CapError::Invalid(format!(
                "header {:?} is set by the host, not by a playbook",
                crate::text::echo(name)
            )));
        }
        if name.len() + value.len() > MAX_HEADER_BYTES {
            return Err(CapError::Invalid(format!(
                "header {:?} is {} bytes; at most {MAX_HEADER_BYTES}",
                crate::text::echo(name),
                name.len() + value.len()
            )));
        }
        reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            CapError::Invalid(format!(
                "header name {:?} is not valid",
                crate::text::echo(name)
            ))
        })?;
        reqwest::header::HeaderValue::from_str(value).map_err(|_| {
            CapError::Invalid(format!(
                "the value of header {:?} is not valid (control characters?)",
                crate::text::echo(name)
            ))
        })?;
    }
    Ok(())
}

async fn read_capped(mut response: reqwest::Response) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY_BYTES - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// Replay: the URL and headers against this host's grants and egress rules (no name is
/// resolved: nothing is sent).
fn url_gate<'a, 'v>(url: String, headers: Vec<(String, String)>) -> Gate<'a, HttpView<'v>> {
    untargeted(move |state: &HttpView<'v>| {
        state.check_url(&url)?;
        check_headers(&headers)
    })
}

impl http::Host for HttpView<'_> {
    async fn send(&mut self, req: Request) -> CallResult<Response> {
        // Header values and bodies may carry tokens: names, and a body's size and digest.
        let args = json!({
            "method": req.method,
            "url": crate::redact::url(&req.url),
            "headers": req.headers.iter().map(|(k, _)| (k, "***")).collect::<Vec<_>>(),
            "body": req.body.as_ref().map(|b| json!({ "bytes": b.len(), "sha256": format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(b)) })),
            "timeout_ms": req.timeout_ms,
        });
        let gate = url_gate(req.url.clone(), req.headers.clone());
        if let Some(answer) = replay_call(self, "http", "send", &args, gate)? {
            return Ok(answer);
        }
        let result = self.live_http_send(req).await;
        if let (Some(_), Ok(answer)) = (&self.tape, &result) {
            let shown = answer.clone().map(|mut response| {
                for (name, value) in &mut response.headers {
                    *value = crate::redact::header_value(name, value);
                }
                response
            });
            self.tape_call("http", "send", args, &Ok(shown));
        }
        result
    }

    async fn probe(&mut self, url: String, timeout_ms: Option<u32>) -> CallResult<ProbeResult> {
        let args = json!({ "url": crate::redact::url(&url), "timeout_ms": timeout_ms });
        taped!(
            self,
            "http",
            "probe",
            ProbeResult,
            args,
            url_gate(url.clone(), Vec::new()),
            { self.live_probe(url, timeout_ms).await }
        )
    }
}

/// The live calls, wrapped above in the tape.
impl HttpView<'_> {
    async fn live_http_send(&mut self, req: Request) -> CallResult<Response> {
        self.begin_call()?;
        self.count_http_call()?;
        let started = Instant::now();
        // Header values may carry tokens: only their names go to the audit log.
        let header_names: Vec<&str> = req.headers.iter().map(|(k, _)| k.as_str()).collect();
        let args = json!({ "method": req.method, "url": crate::redact::url(&req.url), "headers": header_names,
            "body-bytes": req.body.as_ref().map(Vec::len) });
        let result = self.send_checked(req, started).await;
        match result {
            Ok(None) => {
                let (result, detail) = match (&self.frozen, self.dry_run) {
                    (Some((_, reason)), false) => {
                        ("frozen", format!("frozen ({reason}): would send"))
                    }
                    _ => ("would", "would send (dry run)".into()),
                };
                self.timeline.call(
                    "http",
                    "send",
                    args,
                    result,
                    Some(detail),
                    started.elapsed(),
                );
                Ok(Ok(Response {
                    status: 0,
                    headers: Vec::new(),
                    body: Vec::new(),
                    truncated: false,
                    elapsed_ms: 0,
                }))
            }
            Ok(Some(response)) => {
                let ok = Ok(response);
                self.record_call(
                    "http",
                    "send",
                    args,
                    &ok,
                    |r| format!("HTTP {}, {} bytes", r.status, r.body.len()),
                    started.elapsed(),
                );
                Ok(ok)
            }
            Err(e) => {
                let err = Err(e);
                self.record_call(
                    "http",
                    "send",
                    args,
                    &err,
                    |_: &Response| String::new(),
                    started.elapsed(),
                );
                Ok(err)
            }
        }
    }

    async fn live_probe(
        &mut self,
        url: String,
        timeout_ms: Option<u32>,
    ) -> CallResult<ProbeResult> {
        self.begin_call()?;
        self.count_http_call()?;
        let started = Instant::now();
        let args = json!({ "url": crate::redact::url(&url), "timeout-ms": timeout_ms });
        let result = match self.check_url(&url) {
            Ok(parsed) => self.probe_checked(parsed, timeout_of(timeout_ms)).await,
            Err(e) => Err(e),
        };
        self.record_call(
            "http",
            "probe",
            args,
            &result,
            |p| match p.failure {
                None => format!(
                    "healthy, HTTP {}, {} ms",
                    p.status.unwrap_or(0),
                    p.latency_ms
                ),
                Some(kind) => format!(
                    "down: {} ({}), {} ms",
                    failure_word(kind),
                    p.detail,
                    p.latency_ms
                ),
            },
            started.elapsed(),
        );
        Ok(result)
    }
}

impl HttpView<'_> {
    /// `Ok(None)`: a mutating request on a dry run, not sent.
    async fn send_checked(
        &mut self,
        req: Request,
        started: Instant,
    ) -> Result<Option<Response>, CapError> {
        let url = self.check_url(&req.url)?;
        check_headers(&req.headers)?;
        let method = reqwest::Method::from_bytes(req.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| {
                CapError::Invalid(format!("method {:?}", crate::text::echo(&req.method)))
            })?;
        let mutating = !matches!(method, reqwest::Method::GET | reqwest::Method::HEAD);
        if self.dry_run && mutating {
            return Ok(None);
        }
        // Frozen: a mutating request is not sent, as on a dry run (no budget counts http; a
        // switch that cannot be read refuses the request).
        if mutating {
            match self.gate("http.send", None).await {
                crate::safety::Verdict::Go => {}
                crate::safety::Verdict::Frozen { .. } => return Ok(None),
                crate::safety::Verdict::OverBudget { message, .. } => {
                    return Err(CapError::Denied(message));
                }
            }
        }
        let response = match self
            .fetch(
                method,
                url.clone(),
                &req.headers,
                req.body,
                timeout_of(req.timeout_ms),
            )
            .await
        {
            Ok(r) => r,
            Err(Fetch::Refused(e)) => return Err(e),
            Err(Fetch::Network(e)) => return Err(network_error(&url, &e)),
        };
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let (body, truncated) = read_capped(response)
            .await
            .map_err(|e| network_error(&url, &e))?;
        Ok(Some(Response {
            status,
            headers,
            body,
            truncated,
            elapsed_ms: started.elapsed().as_millis() as u32,
        }))
    }

    async fn probe_checked(
        &mut self,
        url: Url,
        timeout: Duration,
    ) -> Result<ProbeResult, CapError> {
        let started = Instant::now();
        let fetched = self
            .fetch(reqwest::Method::GET, url, &[], None, timeout)
            .await;
        let latency_ms = started.elapsed().as_millis() as u32;
        match fetched {
            Ok(response) => {
                let status = response.status();
                let healthy = status.is_success() || status.is_redirection();
                Ok(ProbeResult {
                    healthy,
                    status: Some(status.as_u16()),
                    latency_ms,
                    failure: (!healthy).then_some(ProbeFailure::HttpStatus),
                    detail: format!("HTTP {status}"),
                })
            }
            Err(Fetch::Refused(e)) => Err(e),
            Err(Fetch::Network(e)) => {
                let (kind, detail) = classify(&e);
                Ok(ProbeResult {
                    healthy: false,
                    status: None,
                    latency_ms,
                    failure: Some(kind),
                    detail,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_scheme_host_and_port() {
        let url = |s: &str| Url::parse(s).unwrap();
        let exact = OriginGrant::parse("http://127.0.0.1:8080").unwrap();
        assert!(exact.allows(&url("http://127.0.0.1:8080/health")));
        assert!(!exact.allows(&url("http://127.0.0.1:8081/health")));
        assert!(!exact.allows(&url("https://127.0.0.1:8080/")));
        let any_port = OriginGrant::parse("http://LocalHost:*").unwrap();
        assert!(any_port.allows(&url("http://localhost:9/x")));
        assert!(!any_port.allows(&url("http://localhost.evil.com:9/x")));
        let default_port = OriginGrant::parse("https://status.example.com").unwrap();
        assert!(default_port.allows(&url("https://status.example.com:443/")));
        assert!(!default_port.allows(&url("https://status.example.com:8443/")));
        assert!(OriginGrant::parse("http://x/path").is_err());
        assert!(OriginGrant::parse("ftp://x").is_err());
    }
}
