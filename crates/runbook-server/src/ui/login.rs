//! Sign-in with the identity provider (`[ui.oidc]`) and sign-out. `/ui/login` stores the
//! sign-in (its state's hash, nonce and PKCE verifier) in the run store, gives the browser its
//! state in a cookie and sends it to the provider; the callback takes that sign-in once (any
//! replica can), checks the state against the browser's cookie, has `oidc` exchange the code
//! and check the ID token, and stores a session under the hash of a random id the browser
//! keeps as an HttpOnly cookie. Sign-out deletes the session from the store, so it ends on
//! every replica at once. Sign-in and sign-out are audit events, and so is a sign-in refused
//! to a person the provider vouched for (`login-refused`: no group gives a role). A callback
//! refused before anyone is verified (bad state, a spoiled token) is only logged: no
//! unauthenticated request writes to the audit trail.
//!
//! Everything here answers hostile input with a 4xx page: sizes capped, the state and code
//! checked for shape before any lookup, and no error text from the provider echoed raw.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use maud::html;

use super::access::credentials;
use super::forms::{CSRF_FIELD, Fields, see_other};
use super::page::{layout, message_page, store_unavailable};
use crate::app::{App, Shared};
use crate::authz::{SESSION_COOKIE, cookie, session, session_cookie};
use crate::oidc::{Failed, LOGIN_TTL};
use runbook_core::access::{AuditAct, Identity, NewAudit, NewSession, Proof, token_hash};

/// The browser's half of a sign-in under way: its state.
const LOGIN_COOKIE: &str = "__Host-runbook-login";
/// Where the sign-out form posts (its CSRF tokens are good there only).
pub(crate) const LOGOUT: &str = "/ui/logout";
/// The longest query a callback or login URL may carry.
const MAX_QUERY: usize = 8 * 1024;
/// The longest authorization code taken (providers' codes are tens to hundreds of bytes).
const MAX_CODE: usize = 2048;
/// The longest console path a sign-in returns to.
const MAX_RETURN: usize = 512;

/// Most refused sign-ins one process audits per minute; past it they are only logged. Each
/// takes a person the provider vouched for, but a script of one could loop: the audit trail
/// must not grow without bound for someone who has no role at all.
const REFUSALS_AUDITED_PER_MINUTE: u32 = 30;

fn refusal_audit_allowed() -> bool {
    use std::time::{Duration, Instant};
    static WINDOW: std::sync::Mutex<Option<(Instant, u32)>> = std::sync::Mutex::new(None);
    let mut window = WINDOW.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    match &mut *window {
        Some((start, count)) if now.duration_since(*start) < Duration::from_secs(60) => {
            *count += 1;
            if *count > REFUSALS_AUDITED_PER_MINUTE {
                tracing::warn!(
                    "more than {REFUSALS_AUDITED_PER_MINUTE} refused sign-ins this minute: logged only"
                );
                return false;
            }
            true
        }
        _ => {
            *window = Some((now, 1));
            true
        }
    }
}

fn bad(message: &str) -> Response {
    message_page(StatusCode::BAD_REQUEST, "Sign-in failed", message)
}

fn unconfigured() -> Response {
    message_page(
        StatusCode::NOT_FOUND,
        "No sign-in",
        "This console has no identity provider ([ui.oidc] is not set).",
    )
}

/// The query's pairs, or a refusal when it is over the cap.
fn query(uri: &Uri) -> Result<Vec<(String, String)>, Box<Response>> {
    let raw = uri.query().unwrap_or("");
    if raw.len() > MAX_QUERY {
        return Err(Box::new(bad("the address is too long")));
    }
    Ok(url::form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .take(64)
        .collect())
}

fn value<'q>(pairs: &'q [(String, String)], name: &str) -> Option<&'q str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A console path to return to: ours (`/ui…`, no scheme, host or backslash), else `/ui`.
fn return_to(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.len() <= MAX_RETURN
                && (path == "/ui" || path.starts_with("/ui/") || path.starts_with("/ui?"))
                && !path.contains(['\\', '\r', '\n'])
                && !path.starts_with("/ui/login")
                && !path.starts_with(LOGOUT) =>
        {
            path.to_string()
        }
        _ => "/ui".into(),
    }
}

/// A state as `CsrfToken::new_random` makes them (URL-safe base64 of 16 bytes); a bound on
/// anything else a client sends.
fn state_shaped(state: &str) -> bool {
    (16..=128).contains(&state.len())
        && state
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn cookie_header(name: &str, value: &str, max_age: u64) -> HeaderValue {
    // `__Host-`: Secure, Path=/, no Domain. Lax: sent on the provider's top-level redirect
    // back, never on another site's POST.
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite=Lax"
    ))
    .expect("a cookie of ours is a header value")
}

fn with_cookie(mut response: Response, cookie: HeaderValue) -> Response {
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn provider_failed(failed: Failed) -> Response {
    match failed {
        Failed::Refused(why) => {
            tracing::warn!("sign-in refused: {why}");
            message_page(StatusCode::UNAUTHORIZED, "Sign-in refused", &why)
        }
        Failed::Oversized(why) => {
            tracing::error!("sign-in failed: {why}");
            message_page(StatusCode::BAD_GATEWAY, "Sign-in failed", &why)
        }
        Failed::Unavailable(why) => {
            tracing::error!("sign-in failed: {why}");
            message_page(
                StatusCode::BAD_GATEWAY,
                "Sign-in failed",
                "The identity provider did not answer as expected; try again later.",
            )
        }
    }
}

/// `GET /ui/login?next=/ui/…`: begins a sign-in at the identity provider.
pub(crate) async fn login(State(app): State<Shared>, uri: Uri) -> Response {
    let Some(oidc) = app.live().oidc.clone() else {
        return unconfigured();
    };
    let pairs = match query(&uri) {
        Ok(pairs) => pairs,
        Err(refused) => return *refused,
    };
    let back = return_to(value(&pairs, "next"));
    let (url, pending, state) = match oidc.begin(&back).await {
        Ok(begun) => begun,
        Err(failed) => return provider_failed(failed),
    };
    if let Err(e) = app.store.login_begin(pending).await {
        return store_unavailable("Store", &e);
    }
    with_cookie(
        see_other(url.as_str()),
        cookie_header(LOGIN_COOKIE, &state, LOGIN_TTL.as_secs()),
    )
}

/// `GET /ui/login/callback?code=…&state=…` (or `?error=…`): the provider's answer.
pub(crate) async fn callback(
    State(app): State<Shared>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let forget = cookie_header(LOGIN_COOKIE, "", 0);
    let answer = finish(&app, remote, &headers, &uri).await;
    with_cookie(answer, forget)
}

async fn finish(app: &App, remote: SocketAddr, headers: &HeaderMap, uri: &Uri) -> Response {
    let Some(oidc) = app.live().oidc.clone() else {
        return unconfigured();
    };
    let pairs = match query(uri) {
        Ok(pairs) => pairs,
        Err(refused) => return *refused,
    };
    if let Some(error) = value(&pairs, "error") {
        // The provider's own words, shortened and cleaned: they reach a page and the log.
        let clean = |s: &str| {
            crate::text::truncate_owned(s.chars().filter(|c| !c.is_control()).collect(), 200)
        };
        let why = match value(&pairs, "error_description") {
            Some(text) => format!("{}: {}", clean(error), clean(text)),
            None => clean(error),
        };
        tracing::warn!("the identity provider refused the sign-in: {why}");
        return message_page(
            StatusCode::UNAUTHORIZED,
            "Sign-in refused",
            &format!("The identity provider said: {why}"),
        );
    }
    let (Some(state), Some(code)) = (value(&pairs, "state"), value(&pairs, "code")) else {
        return bad("the provider's answer has no state or no code; start again at /ui/login");
    };
    if !state_shaped(state) || code.is_empty() || code.len() > MAX_CODE {
        return bad("the provider's answer does not have the shape of one");
    }
    // The state must be the one this browser was given: a callback link handed to someone
    // else (login CSRF) does not sign them in.
    let mine = cookie(headers, LOGIN_COOKIE, state_shaped);
    if !mine.is_some_and(|m| crate::signing::equal(m.as_bytes(), state.as_bytes())) {
        return bad("this sign-in was not started in this browser; start again at /ui/login");
    }
    let started = match app.store.login_take(&token_hash(state)).await {
        Ok(Some(started)) => started,
        Ok(None) => {
            return bad("this sign-in expired or was already used; start again at /ui/login");
        }
        Err(e) => {
            return store_unavailable("Store", &e);
        }
    };
    let signed_in = match oidc.finish(code, &started).await {
        Ok(signed_in) => signed_in,
        Err(failed) => return provider_failed(failed),
    };
    let roles = app
        .dispatcher
        .host()
        .with_policy(|c| c.roles.of_groups(&signed_in.groups));
    let identity = Identity {
        subject: signed_in.subject.clone(),
        groups: signed_in.groups.clone(),
        roles,
        proof: Proof::Session,
    };
    if roles == runbook_core::access::Roles::none() {
        let why = "no group of the person's gives a role in [roles]";
        tracing::warn!(subject = %crate::text::echo(&signed_in.subject), "sign-in refused: {why}");
        // The provider vouched for this person: the refusal is theirs, and audited.
        if refusal_audit_allowed() {
            let event = NewAudit::by(&identity, &remote.ip().to_string(), AuditAct::LoginRefused)
                .detail(format!(
                    "{} via {}: {why} (groups: {})",
                    signed_in.name,
                    oidc.issuer(),
                    signed_in.groups.join(", ")
                ));
            crate::authz::record(app, event).await;
        }
        return message_page(
            StatusCode::FORBIDDEN,
            "No role here",
            &format!(
                "You signed in as {}, but none of your groups gives a role on this console.",
                signed_in.subject
            ),
        );
    }
    let id = match crate::csrf::random_key() {
        Ok(random) => hex::encode(random),
        Err(e) => {
            tracing::error!("{e:#}");
            return message_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in failed",
                "no randomness for a session id",
            );
        }
    };
    let ttl = oidc.session_ttl();
    let session = NewSession {
        hash: token_hash(&id),
        subject: signed_in.subject.clone(),
        name: signed_in.name.clone(),
        groups: signed_in.groups,
        ttl,
    };
    if let Err(e) = app.store.session_create(session).await {
        return store_unavailable("Store", &e);
    }
    let event = NewAudit::by(&identity, &remote.ip().to_string(), AuditAct::Login).detail(format!(
        "{} via {}; roles {roles}",
        signed_in.name,
        oidc.issuer()
    ));
    crate::authz::record(app, event).await;
    with_cookie(
        see_other(&return_to(Some(&started.return_to))),
        cookie_header(SESSION_COOKIE, &id, ttl.as_secs()),
    )
}

/// `GET /ui/logout`: the sign-out form (for a live session), else a note.
pub(crate) async fn logout_form(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let identity = match session(&app, &headers).await {
        Ok(Some(identity)) => identity,
        Ok(None) => return signed_out(),
        Err(unavailable) => return unavailable,
    };
    let token = app
        .console
        .csrf
        .token(&credentials(&headers, &identity), LOGOUT);
    let body = html! {
        h1 { "Sign out" }
        p { "Signed in as " strong { (identity.subject) } "." }
        form method="post" action=(LOGOUT) {
            input type="hidden" name=(CSRF_FIELD) value=(token);
            button.reject id="sign-out-button" type="submit" { "Sign out" }
        }
    };
    layout("Sign out", html! {}, body)
}

fn signed_out() -> Response {
    let body = html! {
        h1 { "Signed out" }
        p id="signed-out" { "You are not signed in. " a href="/ui/login" { "Sign in" } }
    };
    layout("Signed out", html! {}, body)
}

/// `POST /ui/logout`: ends the session in the store (for every replica) and the cookie.
pub(crate) async fn logout(
    State(app): State<Shared>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(fields): Form<Fields>,
) -> Response {
    let identity = match session(&app, &headers).await {
        Ok(Some(identity)) => identity,
        Ok(None) => return signed_out(),
        Err(unavailable) => return unavailable,
    };
    let given = fields
        .iter()
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.as_str());
    if let Err(why) = app
        .console
        .csrf
        .check(&credentials(&headers, &identity), LOGOUT, given)
    {
        tracing::warn!("sign-out refused: CSRF token {why:?}");
        return message_page(
            StatusCode::FORBIDDEN,
            "Refused",
            "The form's CSRF token is missing or stale: reload the sign-out page.",
        );
    }
    let Some(id) = session_cookie(&headers) else {
        return signed_out();
    };
    if let Err(e) = app.store.session_delete(&token_hash(id)).await {
        tracing::warn!("sign-out: the run store failed: {e:#}");
        let why = format!("{}; you are still signed in", crate::respond::STORE_DOWN);
        return message_page(StatusCode::SERVICE_UNAVAILABLE, "Store", &why);
    }
    crate::authz::record(
        &app,
        NewAudit::by(&identity, &remote.ip().to_string(), AuditAct::Logout),
    )
    .await;
    with_cookie(signed_out(), cookie_header(SESSION_COOKIE, "", 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_in_returns_only_to_the_console() {
        assert_eq!(
            return_to(Some("/ui/runs?state=failed")),
            "/ui/runs?state=failed"
        );
        assert_eq!(return_to(Some("/ui")), "/ui");
        for hostile in [
            "https://evil.example/ui",
            "//evil.example/ui",
            "/ui\\@evil",
            "/uix",
            "/ui/login/callback?code=x",
            "/ui/logout",
            "/runs",
            "/ui/\r\nSet-Cookie: x",
        ] {
            assert_eq!(return_to(Some(hostile)), "/ui", "{hostile:?}");
        }
        assert_eq!(return_to(Some(&format!("/ui/{}", "a".repeat(600)))), "/ui");
        assert_eq!(return_to(None), "/ui");
    }

    #[test]
    fn only_a_state_of_our_shape_is_looked_up() {
        assert!(state_shaped("abcDEF0123456789-_xy"));
        for bad in [
            "",
            "short",
            &"a".repeat(129),
            "abcdefghijklmnop;q",
            "abcdefghijklmnop q",
        ] {
            assert!(!state_shaped(bad), "{bad:?}");
        }
    }
}
