//! The console: `/ui` of `host serve`. Server-rendered HTML (maud: compile-time checked,
//! escaped by default), one embedded script and stylesheet served under their content hash,
//! a strict Content-Security-Policy on every answer, live timelines over server-sent events.
//!
//! Reading uses `[webhooks.api]` auth, as the JSON API does. Every state-changing form (run a
//! playbook, retry a message, answer a question) is served and accepted only under the separate
//! `[ui]` auth, and carries a CSRF token: an HMAC of the request's credentials under a key only
//! the server knows, so another site can neither read it nor forge it.

mod approvals;
mod assets;
mod feed;
mod cancel;
mod forms;
pub(super) mod live;
mod pages;
mod report;
mod show;

use std::sync::Arc;

use anyhow::{Result, bail};
use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hmac::{Hmac, Mac};
use maud::{DOCTYPE, Markup, html};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::auth::{Verified, Verifier};
use super::{App, Shared};
use crate::config::{AuthConfig, UiConfig};

/// Live timelines followed at once; each polls the store, so they are bounded.
const MAX_STREAMS: usize = 64;
/// Longest text accepted in a filter or a form field.
const MAX_FIELD_BYTES: usize = 4096;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's own state: the `[ui]` verifier, the CSRF key, the stream bound.
pub(super) struct Console {
    forms: Option<Verifier>,
    csrf_key: [u8; 32],
    streams: Arc<Semaphore>,
}

impl Console {
    pub(super) fn from_config(config: &UiConfig) -> Result<Console> {
        let (forms, secret) = match &config.auth {
            None => (None, None),
            Some(auth @ AuthConfig::None) => (Some(Verifier::from_config(auth)?), None),
            Some(auth @ AuthConfig::Bearer { .. }) | Some(auth @ AuthConfig::Basic { .. }) => {
                let verifier = Verifier::from_config(auth)?;
                let secret = match &verifier {
                    Verifier::Bearer(token) => token.clone(),
                    Verifier::Basic { username, password } => format!("{username}:{password}"),
                    _ => unreachable!("bearer or basic"),
                };
                (Some(verifier), Some(secret))
            }
            Some(_) => bail!("[ui] auth must be basic, bearer or none"),
        };
        // Derived from the [ui] secret, so every replica accepts the tokens of the others;
        // without a secret, random per process.
        let csrf_key = match secret {
            Some(secret) => Sha256::new()
                .chain_update(b"runbook console csrf\0")
                .chain_update(secret.as_bytes())
                .finalize()
                .into(),
            None => {
                let mut key = [0u8; 32];
                use std::io::Read as _;
                std::fs::File::open("/dev/urandom")
                    .and_then(|mut f| f.read_exact(&mut key))
                    .map_err(|e| anyhow::anyhow!("reading /dev/urandom for the CSRF key: {e}"))?;
                key
            }
        };
        Ok(Console {
            forms,
            csrf_key,
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
        })
    }

    /// The token a form served to these credentials carries.
    fn csrf_token(&self, credentials: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.csrf_key).expect("any key length");
        mac.update(credentials.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn csrf_ok(&self, credentials: &str, given: Option<&str>) -> bool {
        let expected = self.csrf_token(credentials);
        given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(expected.as_bytes())))
    }
}

pub(super) fn routes(app: Shared) -> Router<Shared> {
    Router::new()
        .route("/ui", get(pages::runs))
        .route("/ui/", get(pages::runs))
        .route("/ui/runs", get(pages::runs))
        .route("/ui/runs/{id}", get(pages::run))
        .route(
            "/ui/runs/{id}/cancel",
            get(cancel::form).post(cancel::submit),
        )
        .route("/ui/runs/{id}/events", get(live::events))
        .route("/ui/runs/{id}/artifacts/{n}", get(pages::artifact))
        .route("/ui/runs/{id}/report", get(report::html))
        .route("/ui/runs/{id}/report.md", get(report::markdown))
        .route("/ui/alerts", get(pages::alerts))
        .route("/ui/playbooks", get(pages::playbooks))
        .route(
            "/ui/playbooks/{name}/run",
            get(forms::run_form).post(forms::run_submit),
        )
        .route("/ui/approvals", get(approvals::pending))
        .route(
            "/ui/approvals/{id}",
            get(approvals::answer_form).post(approvals::answer_submit),
        )
        .route("/ui/outbox", get(pages::outbox))
        .route(
            "/ui/outbox/{id}/retry",
            get(forms::retry_form).post(forms::retry_submit),
        )
        .route("/ui/static/{file}", get(assets::serve))
        .layer(axum::middleware::from_fn_with_state(
            app,
            show::count_questions,
        ))
        .layer(axum::middleware::map_response(harden))
}

/// Every console answer: the CSP, no sniffing, no framing, no referrer leaking run ids.
async fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Reading: `[webhooks.api]` auth; a browser is asked for basic credentials when that is the
/// kind.
async fn may_read(app: &App, headers: &HeaderMap) -> Result<(), Response> {
    match super::refuse_api(app, headers).await {
        None => Ok(()),
        Some(mut denied) => {
            if denied.status() == StatusCode::UNAUTHORIZED
                && matches!(
                    app.live().verifiers.get("api"),
                    Some(Verifier::Basic { .. })
                )
            {
                denied.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"runbook\""),
                );
            }
            Err(denied)
        }
    }
}

/// Forms: `[ui]` auth. The credentials (the Authorization header, empty with `none`) are
/// what the CSRF token is bound to.
fn may_act(app: &App, headers: &HeaderMap) -> Result<String, Box<Response>> {
    let Some(verifier) = &app.console.forms else {
        return Err(Box::new(message_page(
            StatusCode::UNAUTHORIZED,
            "Not allowed",
            "The console's forms need [ui] auth in host.toml (basic or bearer).",
        )));
    };
    match verifier.verify(headers, &[]) {
        Ok(Verified::Done) => Ok(headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()),
        Ok(Verified::IfFirst(_)) | Err(_) => {
            let mut denied = message_page(
                StatusCode::UNAUTHORIZED,
                "Not allowed",
                "This form needs the console's [ui] credentials.",
            );
            if matches!(verifier, Verifier::Basic { .. }) {
                denied.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"runbook console\""),
                );
            }
            Err(Box::new(denied))
        }
    }
}

/// The frame of every page.
fn layout(title: &str, head_extra: Markup, body: Markup) -> Response {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · runbook" }
                link rel="stylesheet" href=(assets::css_path());
                (head_extra)
            }
            body {
                header.top {
                    strong { "runbook" }
                    a href="/ui/runs" { "Runs" }
                    a href="/ui/alerts" { "Alerts" }
                    a href="/ui/playbooks" { "Playbooks" }
                    (show::approvals_link())
                    a href="/ui/outbox" { "Outbox" }
                }
                main { (body) }
                script src=(assets::js_path()) {}
            }
        }
    };
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page.into_string(),
    )
        .into_response()
}

fn message_page(status: StatusCode, title: &str, message: &str) -> Response {
    let mut response = layout(
        title,
        html! {},
        html! { h1 { (title) } p.error { (message) } },
    );
    *response.status_mut() = status;
    response
}

/// A path segment (run id, playbook name) as it goes into a link.
fn seg(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A query value from a form: empty is absent; too long is refused.
fn field(value: &Option<String>) -> Result<Option<String>, Box<Response>> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v.len() > MAX_FIELD_BYTES => Err(Box::new(message_page(
            StatusCode::BAD_REQUEST,
            "Bad request",
            &format!("a field is longer than {MAX_FIELD_BYTES} bytes"),
        ))),
        Some(v) => Ok(Some(v.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn console(auth: Option<AuthConfig>) -> Console {
        Console::from_config(&UiConfig { auth }).unwrap()
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_credentials_and_shared_by_replicas() {
        // SAFETY: set before any thread of this test reads the environment.
        unsafe { std::env::set_var("RUNBOOK_TEST_UI_TOKEN", "s3cret-s3cret-s3cret") };
        let auth = || {
            toml::from_str::<AuthConfig>(
                "kind = \"bearer\"\ntoken = { env = \"RUNBOOK_TEST_UI_TOKEN\" }",
            )
            .unwrap()
        };
        let (one, other) = (console(Some(auth())), console(Some(auth())));
        let token = one.csrf_token("Bearer s3cret-s3cret-s3cret");
        assert!(other.csrf_ok("Bearer s3cret-s3cret-s3cret", Some(&token)));
        assert!(!other.csrf_ok("Bearer someone-else", Some(&token)));
        assert!(!other.csrf_ok("Bearer s3cret-s3cret-s3cret", None));
        assert!(!other.csrf_ok("Bearer s3cret-s3cret-s3cret", Some("")));
        // Without a secret each process has its own key.
        assert_ne!(console(None).csrf_token(""), console(None).csrf_token(""));
    }

    #[test]
    fn signatures_are_not_console_auth() {
        let auth = toml::from_str::<AuthConfig>("kind = \"hmac-sha256\"\nsecret = { env = \"X\" }")
            .unwrap();
        assert!(Console::from_config(&UiConfig { auth: Some(auth) }).is_err());
    }
}
