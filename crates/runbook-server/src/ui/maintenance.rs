//! The console's maintenance page (`/ui/maintenance`): every circuit breaker (open or closed,
//! until when, a Reset form) and maintenance window (config and ad hoc: in force, upcoming or
//! recently ended, an End form), and a form to open a window. Every form is under the `[ui]`
//! auth with a CSRF token bound to it, like the other forms; the rules a window must keep are
//! the CLI's (`safety::new_window`).

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};

use super::access::Operator;
use super::forms::{CSRF_FIELD, Fields, check, see_other};
use super::page::{layout, message_page, seg, store_unavailable};
use super::show::{Tone, badge, time};
use crate::app::{App, Shared};
use crate::store::BreakerState;
use runbook_core::access::AuditAct;

const PAGE: &str = "/ui/maintenance";
const START: &str = "/ui/maintenance/windows";

fn reset_action(playbook: &str) -> String {
    format!("/ui/maintenance/breakers/{}/reset", seg(playbook))
}

fn end_action(id: &str) -> String {
    format!("/ui/maintenance/windows/{}/end", seg(id))
}

fn post_button(action: &str, token: &str, id: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            input type="hidden" name=(CSRF_FIELD) value=(token);
            button type="submit" id=(id) { (label) }
        }
    }
}

/// `GET /ui/maintenance`.
pub(crate) async fn page(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let store = app.store.clone();
    let (breakers, windows) = match (store.breakers().await, store.windows(true).await) {
        (Ok(b), Ok(w)) => (b, w),
        (Err(e), _) | (_, Err(e)) => {
            return store_unavailable("The run store does not answer", &e);
        }
    };
    let operator = super::access::operator(&headers, runbook_core::access::Role::Admin);
    let token = |action: &str| operator.as_ref().map(|o| o.csrf_token(&app, action));
    let safety = &app.dispatcher.safety;
    let mut shown: Vec<BreakerState> = breakers;
    for (name, plugin) in &app.dispatcher.host().config.plugins {
        if plugin.breaker.is_some() && !shown.iter().any(|b| &b.playbook == name) {
            shown.push(BreakerState {
                playbook: name.clone(),
                open: false,
                opened_at: String::new(),
                until: String::new(),
                opened_ms: 0,
                failures: 0,
                openings: 0,
                reset_by: None,
            });
        }
    }
    shown.sort_by(|a, b| a.playbook.cmp(&b.playbook));
    let body = html! {
        h1 { "Maintenance" }
        h2 { "Circuit breakers" }
        p.muted { "After a playbook's runs end failed or escalated too often, its breaker opens: \
            new runs are recorded held, not executed, until the cool-down ends or it is reset." }
        @if shown.is_empty() { p.muted { "No breaker is configured ([plugins.X] breaker)." } }
        @else {
            div.scroll { table.stack id="breakers" {
                thead { tr { th { "playbook" } th { "state" } th { "until" } th { "rule" }
                    th { "openings" } th {} } }
                tbody { @for b in &shown { tr.breaker {
                    td { (b.playbook) }
                    td.st { @if b.open { (badge(Tone::Warn, "open")) } @else { (badge(Tone::Calm, "closed")) } }
                    td { @if b.open { (time(&b.until)) }
                         @else if let Some(by) = &b.reset_by { span.muted { "reset by " (by) } } }
                    td { @if let Some(r) = safety.breaker_of(&b.playbook) {
                        (r.failures) " within " (humantime::format_duration(r.within))
                        ", cool-down " (humantime::format_duration(r.cool_down)) }
                        @else { span.muted { "not configured" } } }
                    td { (b.openings) }
                    td { @if b.open { @if let Some(t) = token(&reset_action(&b.playbook)) {
                        (post_button(&reset_action(&b.playbook), &t,
                            &format!("reset-{}", b.playbook), "Reset")) } } }
                } } }
            } }
        }
        h2 { "Maintenance windows" }
        p.muted { "While a window is in force, matching alerts and scheduled runs are recorded \
            suppressed, not run." }
        @let config = safety.config_windows();
        @if windows.is_empty() && config.is_empty() { p.muted { "No window in force or upcoming." } }
        @else {
            div.scroll { table.stack id="windows" {
                thead { tr { th { "window" } th { "state" } th { "from" } th { "until" }
                    th { "scope" } th { "reason" } th {} } }
                tbody {
                    @for (w, occurrence) in &config { tr.window {
                        td { (w.name) br; span.muted { "host.toml" } }
                        @match occurrence {
                            Some((start, end)) => {
                                @let active = *start <= jiff::Timestamp::now();
                                td.st { @if active { (badge(Tone::Asking, "active")) }
                                        @else { (badge(Tone::Queued, "upcoming")) } }
                                td { (time(&start.to_string())) } td { (time(&end.to_string())) }
                            }
                            None => { td.st { (badge(Tone::Gone, "over")) } td {} td {} }
                        }
                        td { (scope(&w.matchers, &w.nodes)) }
                        td { (w.reason.as_deref().unwrap_or("")) }
                        td {}
                    } }
                    @for w in &windows { tr.window {
                        td { code { (w.id) } br; span.muted { "by " (w.created_by) } }
                        td.st { @if w.active { (badge(Tone::Asking, "active")) }
                                @else { (badge(Tone::Gone, "ended")) } }
                        td { (time(&w.starts_at)) }
                        td { (time(&w.ends_at))
                             @if let Some(by) = &w.ended_by { br; span.muted { "ended by " (by) } } }
                        td { (scope(&w.matchers, &w.nodes)) }
                        td { (w.reason.as_deref().unwrap_or("")) }
                        td { @if w.active { @if let Some(t) = token(&end_action(&w.id)) {
                            (post_button(&end_action(&w.id), &t, &format!("end-{}", w.id), "End")) } } }
                    } }
                }
            } }
        }
        h2 { "Open a window" }
        @match token(START) {
            Some(t) => {
                form method="post" action=(START) id="start-window" {
                    input type="hidden" name=(CSRF_FIELD) value=(t);
                    div.form-grid {
                        label for="for" { "for" br; span.muted { "90m, 2h, 1d (at most 30 days)" } }
                        input id="for" name="for" required value="2h";
                        label for="match" { "matchers" br; span.muted { "one per line: instance=\"web01\" (all must match)" } }
                        textarea id="match" name="match" rows="3" {}
                        label for="nodes" { "nodes" br; span.muted { "fleet nodes, comma-separated" } }
                        input id="nodes" name="nodes";
                        label for="reason" { "reason" }
                        input id="reason" name="reason" maxlength="512";
                    }
                    button type="submit" id="start-window-submit" { "Open window" }
                }
            }
            None => p.muted { "Sign in with the [ui] credentials to open, end or reset." },
        }
    };
    layout("Maintenance", html! {}, body)
}

fn scope(matchers: &[String], nodes: &[String]) -> Markup {
    html! {
        @for m in matchers { code { (m) } " " }
        @for n in nodes { "node " code { (n) } " " }
    }
}

async fn done(app: &App) -> Response {
    // A window started or ended here applies to the next admission here at once.
    app.dispatcher.safety.forget_windows().await;
    see_other(PAGE)
}

/// `POST /ui/maintenance/breakers/{playbook}/reset`.
pub(crate) async fn reset(
    State(app): State<Shared>,
    operator: Operator,
    Path(playbook): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    if let Err(refused) = check(&app, &operator, &reset_action(&playbook), &fields) {
        return *refused;
    }
    let by = format!("console:{}", operator.user);
    match app.store.breaker_reset(&playbook, &by).await {
        Ok(true) => {
            crate::authz::audit(&app, AuditAct::BreakerReset, Some(&playbook), None).await;
            done(&app).await
        }
        Ok(false) => message_page(
            StatusCode::CONFLICT,
            "Not reset",
            &format!("the breaker of {playbook} is not open"),
        ),
        Err(e) => store_unavailable("Not reset", &e),
    }
}

/// `POST /ui/maintenance/windows/{id}/end`.
pub(crate) async fn end(
    State(app): State<Shared>,
    operator: Operator,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    if let Err(refused) = check(&app, &operator, &end_action(&id), &fields) {
        return *refused;
    }
    let by = format!("console:{}", operator.user);
    match app.store.window_end(&id, &by).await {
        Ok(true) => {
            crate::authz::audit(&app, AuditAct::MaintenanceEnded, Some(&id), None).await;
            done(&app).await
        }
        Ok(false) => message_page(
            StatusCode::CONFLICT,
            "Not ended",
            &format!("no maintenance window {id} is in force"),
        ),
        Err(e) => store_unavailable("Not ended", &e),
    }
}

/// `POST /ui/maintenance/windows`: a window from the form, checked as the CLI checks one.
pub(crate) async fn start(
    State(app): State<Shared>,
    operator: Operator,
    Form(fields): Form<Fields>,
) -> Response {
    if let Err(refused) = check(&app, &operator, START, &fields) {
        return *refused;
    }
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let split = |text: &str, by: &[char]| -> Vec<String> {
        text.split(by)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    let window = crate::safety::new_window(
        field("for"),
        split(field("match"), &['\n', '\r']),
        split(field("nodes"), &[',']),
        Some(field("reason").to_string()),
        format!("console:{}", operator.user),
    );
    match window {
        Ok(window) => match app.store.window_start(window).await {
            Ok(window) => {
                let act = AuditAct::MaintenanceStarted;
                crate::authz::audit(&app, act, Some(&window.id), window.reason.clone()).await;
                done(&app).await
            }
            Err(e) => store_unavailable("Not opened", &e),
        },
        Err(why) => message_page(StatusCode::BAD_REQUEST, "Not opened", &why),
    }
}
