//! The console's read-only pages: runs, a run, alerts, playbooks, the outbox.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::page::{field, layout, message_page, seg, store_unavailable};
use super::show::{self, Tone, badge, status_badge, time, when};
use crate::app::Shared;
use crate::records::{RunStatus, Trigger};
use crate::store::{RunFilter, RunSummary, StoredRun};
use crate::timeline::{Event, EventKind};

/// Rows per page of runs.
const PAGE: usize = 50;
/// The runs page refreshes itself this often (its first page only: a cursor stays put).
const REFRESH_SECS: u32 = 10;

#[derive(Deserialize, Default)]
pub(crate) struct RunsQuery {
    playbook: Option<String>,
    status: Option<String>,
    priority: Option<String>,
    trigger: Option<String>,
    node: Option<String>,
    since: Option<String>,
    until: Option<String>,
    /// "started_at|id" of the last row of the previous page.
    before: Option<String>,
}

impl RunsQuery {
    fn filter(&self) -> Result<RunFilter, Box<Response>> {
        let before = match field(&self.before)? {
            None => None,
            Some(cursor) => match cursor.split_once('|') {
                Some((at, id)) => Some((at.to_string(), id.to_string())),
                None => {
                    return Err(Box::new(message_page(
                        StatusCode::BAD_REQUEST,
                        "Bad request",
                        "before must be started_at|id",
                    )));
                }
            },
        };
        Ok(RunFilter {
            playbook: field(&self.playbook)?,
            status: field(&self.status)?,
            severity: field(&self.priority)?.map(|p| p.to_uppercase()),
            trigger: field(&self.trigger)?,
            node: field(&self.node)?,
            since: field(&self.since)?,
            until: field(&self.until)?,
            before,
            limit: PAGE,
        })
    }

    /// This query with another cursor, as a link.
    fn link(&self, before: &str) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("playbook", &self.playbook),
            ("status", &self.status),
            ("priority", &self.priority),
            ("trigger", &self.trigger),
            ("node", &self.node),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                query.append_pair(name, v);
            }
        }
        query.append_pair("before", before);
        format!("/ui/runs?{}", query.finish())
    }
}

/// An outbox message's state in its colour.
fn delivery_tone(state: &str) -> Tone {
    match state {
        "delivered" => Tone::Good,
        "failed" => Tone::Bad,
        _ => Tone::Queued,
    }
}

fn store_error(e: anyhow::Error) -> Response {
    store_unavailable("The run store does not answer", &e)
}

fn select(name: &str, label: &str, options: &[&str], chosen: &Option<String>) -> Markup {
    let chosen = chosen.as_deref().unwrap_or("");
    html! {
        label { (label)
            select name=(name) {
                option value="" { "any" }
                @for o in options {
                    option value=(o) selected[*o == chosen] { (o) }
                }
            }
        }
    }
}

pub(crate) async fn runs(State(app): State<Shared>, Query(q): Query<RunsQuery>) -> Response {
    let filter = match q.filter() {
        Ok(filter) => filter,
        Err(refused) => return *refused,
    };
    let store = app.store.clone();
    let runs = match store.list_page(&filter).await {
        Ok(runs) => runs,
        Err(e) => return store_error(e),
    };
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let statuses = RunStatus::ALL.map(RunStatus::as_str);
    let triggers = Trigger::ALL.map(Trigger::as_str);
    let asking = asking(&app, &runs).await;
    let refresh = html! {
        @if filter.before.is_none() {
            meta http-equiv="refresh" content=(REFRESH_SECS);
        }
    };
    let body = html! {
        h1 { "Runs" }
        form.filters method="get" action="/ui/runs" {
            label { "playbook" input name="playbook" value=(text(&q.playbook)) size="12"; }
            (select("status", "status", &statuses, &q.status))
            (select("priority", "priority", &["P1", "P2", "P3", "P4"], &q.priority))
            (select("trigger", "trigger", &triggers, &q.trigger))
            label { "node" input name="node" value=(text(&q.node)) size="10"; }
            label { "since" input name="since" value=(text(&q.since)) placeholder="2026-11-25T10:00" size="16"; }
            label { "until" input name="until" value=(text(&q.until)) placeholder="2026-11-26" size="16"; }
            label { "\u{a0}" button type="submit" { "Filter" } }
        }
        @if runs.is_empty() {
            p.muted { "No runs." }
        } @else {
            (runs_table(&runs, &asking))
        }
        @if runs.len() == PAGE {
            @let last = runs.last().expect("a full page");
            p { a id="older" href=(q.link(&format!("{}|{}", last.started_at, last.id))) { "Older runs →" } }
        }
    };
    layout("Runs", refresh, body)
}

/// The approver group each of these runs' pending questions waits on, by run id.
async fn asking(app: &Shared, runs: &[RunSummary]) -> HashMap<String, String> {
    if !runs
        .iter()
        .any(|r| RunStatus::parse(&r.status) == RunStatus::WaitingApproval)
    {
        return HashMap::new();
    }
    let store = app.store.clone();
    store
        .approvals(None)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|a| (a.run_id, a.group))
        .collect()
}

/// `asking`: the group each waiting run's question waits on (see `asking`).
pub(super) fn runs_table(runs: &[RunSummary], asking: &HashMap<String, String>) -> Markup {
    html! {
        div.scroll { table.stack id="runs" {
            thead { tr { th { "status" } th { "priority" } th { "playbook" } th { "summary" }
                th { "trigger" } th { "started" } th { "took" } } }
            tbody {
                @for r in runs {
                    tr.run {
                        td.st { (status_badge(&r.status)) @if r.dry_run { " " span.muted.nowrap { "dry run" } } }
                        td.nowrap { (r.severity) }
                        td { a.run-link href={ "/ui/runs/" (seg(&r.id)) } { (r.playbook) } }
                        td.summary { (show::summary(r, asking.get(&r.id).map(String::as_str))) }
                        td { (show::origin(r)) @if let Some(node) = &r.node { span.muted { " on " (node) } } }
                        td.mono.nowrap { (when(&r.started_at)) }
                        td.took.nowrap { (show::took(r)) }
                    }
                }
            }
        } }
    }
}

/// One timeline entry; the live stream sends the same fragment.
pub(super) fn event_item(event: &Event, run: Option<&StoredRun>) -> Markup {
    let offset = format!("+{:.0} ms", event.offset_ms);
    let (kind, what): (&str, Markup) = match &event.kind {
        EventKind::Log { level, message } => (
            "log",
            html! { span class={ "lvl-" (level) } { (level) } " " (message) },
        ),
        EventKind::Step {
            name,
            status,
            detail,
        } => (
            "step",
            html! { strong { (name) } " " span.status { (status) } @if !detail.is_empty() { " — " (detail) } },
        ),
        EventKind::Call {
            interface,
            function,
            args,
            result,
            detail,
            duration_ms,
        } => (
            "call",
            html! {
                code { (interface) "." (function) "(" (args.to_string()) ")" }
                " → " strong { (result) } " in " (format!("{duration_ms:.1} ms"))
                @if let Some(d) = detail { " — " (d) }
            },
        ),
        EventKind::Notification {
            channel,
            severity,
            title,
            state,
            outbox_id,
        } => {
            let delivery = run.and_then(|r| {
                r.deliveries
                    .iter()
                    .find(|d| Some(d.id) == *outbox_id)
                    .map(|d| d.state.clone())
            });
            (
                "notify",
                html! {
                    "→ " (channel) " [" (severity) "] " strong { (title) } " · " (state)
                    @if let Some(d) = delivery { " · delivery: " (d) }
                },
            )
        }
        EventKind::Artifact {
            name,
            content_type,
            bytes,
            sha256,
        } => (
            "artifact",
            html! { (name) " (" (content_type) ", " (bytes) " bytes) " code.muted { (sha256) } },
        ),
    };
    html! {
        li class={ "ev ev-" (kind) } {
            span.muted.mono { (offset) }
            span.kind { (kind) }
            span.what { (what) }
        }
    }
}

fn json_pairs(value: Option<&Value>) -> Vec<(String, String)> {
    match value {
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn pairs(pairs: &[(String, String)]) -> Markup {
    html! {
        @if pairs.is_empty() { span.muted { "none" } }
        @for (k, v) in pairs { code { (k) "=" (v) } " " }
    }
}

pub(crate) async fn run(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let run = match crate::api::find_run(&app, id).await {
        Ok(run) => run,
        Err(refused) => return *refused,
    };
    let r = &run.run;
    let live = RunStatus::parse(&r.status).is_live();
    let labels = json_pairs(run.alert.as_ref().and_then(|a| a.get("labels")));
    let params = json_pairs(Some(&run.params));
    let actions: Vec<String> = match &run.actions {
        Value::Array(items) => items
            .iter()
            .map(|a| a.as_str().map_or_else(|| a.to_string(), String::from))
            .collect(),
        _ => Vec::new(),
    };
    let base = format!("/ui/runs/{}", seg(&r.id));
    let (questions, asking) = super::approvals::for_run(&app, &headers, &r.id).await;
    let cancel = super::cancel::section(&app, &headers, &r.id, live);
    let body = html! {
        h1 { (r.playbook) " " (status_badge(&r.status))
            @if live { " " span.status.t-live id="live" { "live" } } }
        dl.facts {
            dt { "run" } dd.mono { (r.id) }
            dt { "priority" } dd { (r.severity) }
            dt { "trigger" } dd id="trigger" {
                @if let (Some(by), Some(Trigger::Console)) = (&r.by, Trigger::parse(&r.trigger)) {
                    span.trigger { (r.trigger) } " · " span id="started-by" { "started by " (by) " from the console" }
                } @else { (show::origin(r)) }
                @if let Some(n) = &r.node { " on node " (n) } }
            dt { "dry run" } dd { @if r.dry_run { "yes" } @else { "no" } }
            dt { "accepted" } dd { (time(&r.started_at)) }
            dt { "took" } dd id="took" { (show::took(r)) }
            dt { "alert labels" } dd id="labels" { (pairs(&labels)) }
            dt { "parameters" } dd { (pairs(&params)) }
        }
        h2 { "Outcome" }
        p id="summary" { (show::summary(r, asking.as_deref())) }
        @if let Some(reason) = &run.reason { p.error { (reason) } }
        @if !actions.is_empty() { ul { @for a in &actions { li { (a) } } } }
        (cancel)
        (questions)
        h2 { "Timeline" }
        (super::dashboard::run_timeline(&run))
        @if run.timeline.is_empty() { p.muted id="timeline-empty" { "No events yet." } }
        @let stream = format!("{base}/events?from={}", run.timeline.len());
        ol.timeline id="timeline" data-live=[live.then_some(stream)] {
            @for e in &run.timeline { (event_item(e, Some(&run))) }
        }
        @if !run.artifacts.is_empty() {
            h2 { "Artifacts" }
            div.scroll { table.stack { thead { tr { th { "name" } th { "type" } th { "bytes" } th { "SHA-256" } th {} } }
                tbody { @for (n, a) in run.artifacts.iter().enumerate() { tr {
                    td { (a.name) } td { (a.content_type) } td { (a.bytes) } td.mono.hash { (a.sha256) }
                    td.nowrap { a href={ (base) "/artifacts/" (n) } { "view" } " · "
                         a href={ (base) "/artifacts/" (n) "?download=1" } { "download" } }
                } } }
            } }
        }
        @if !run.deliveries.is_empty() {
            h2 { "Notifications" }
            div.scroll { table.stack { thead { tr { th { "channel" } th { "title" } th { "state" } th { "attempts" } th { "last error" } } }
                tbody { @for d in &run.deliveries { tr {
                    td { (d.channel) } td { (d.title) } td.st { (badge(delivery_tone(&d.state), &d.state)) } td { (d.attempts) }
                    td { (d.last_error.as_deref().unwrap_or("")) }
                } } }
            } }
        }
        h2 { "Post-incident report" }
        p { a id="report" href={ (base) "/report" } { "Read the report" } " · "
            a id="report-md" href={ (base) "/report.md" } { "download Markdown" } }
    };
    layout(&r.playbook, html! {}, body)
}

#[derive(Deserialize)]
pub(crate) struct ArtifactQuery {
    #[serde(default)]
    download: Option<String>,
}

/// An artifact as plain text (never as HTML, whatever its declared type), or as a download.
pub(crate) async fn artifact(
    State(app): State<Shared>,
    Path((id, n)): Path<(String, usize)>,
    Query(q): Query<ArtifactQuery>,
) -> Response {
    let run = match crate::api::find_run(&app, id).await {
        Ok(run) => run,
        Err(refused) => return *refused,
    };
    let Some(a) = run.artifacts.get(n) else {
        return message_page(StatusCode::NOT_FOUND, "Not found", "no such artifact");
    };
    let safe_name: String = a
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = if q.download.is_some() {
        format!("attachment; filename=\"{safe_name}\"")
    } else {
        "inline".to_string()
    };
    (
        [
            (
                header::CONTENT_TYPE,
                "text/plain; charset=utf-8".to_string(),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        a.text.clone(),
    )
        .into_response()
}

pub(crate) async fn alerts(State(app): State<Shared>) -> Response {
    let store = app.store.clone();
    let alerts = match store.alerts(200).await {
        Ok(alerts) => alerts,
        Err(e) => return store_error(e),
    };
    let body = html! {
        h1 { "Alerts" }
        @if alerts.is_empty() { p.muted { "No alerts received." } }
        @else {
            div.scroll { table.stack id="alerts" { thead { tr { th { "received" } th { "alert" } th { "status" } th { "labels" }
                th { "disposition" } th { "run" } } }
                tbody { @for a in &alerts { tr.alert {
                    td.mono.nowrap { (when(&a.received_at)) }
                    td { (a.alertname) }
                    td.nowrap { (a.status) }
                    td.labels { (pairs(&json_pairs(Some(&a.labels)))) }
                    td { strong { (a.disposition) } @if let Some(d) = &a.detail { br; span.muted { (d) } } }
                    td { @if let Some(id) = &a.run_id {
                        a href={ "/ui/runs/" (seg(id)) } { (a.playbook.as_deref().unwrap_or("run")) }
                    } @else if let Some(p) = &a.playbook { span.muted { (p) } } }
                } } }
            } }
        }
    };
    layout("Alerts", html! {}, body)
}

/// Runs that ended well, of those that ended, among the recent ones.
fn success_rate(runs: &[RunSummary]) -> Option<f64> {
    let ended: Vec<RunStatus> = runs
        .iter()
        .map(|r| RunStatus::parse(&r.status))
        .filter(|s| !s.is_live())
        .collect();
    let good = ended.iter().filter(|s| s.is_good()).count();
    (!ended.is_empty()).then(|| good as f64 * 100.0 / ended.len() as f64)
}

pub(crate) async fn playbooks(State(app): State<Shared>) -> Response {
    let host = app.dispatcher.host();
    let store = app.store.clone();
    let mut sections = Vec::new();
    for entry in host.playbooks().await {
        let recent = store
            .list_page(&RunFilter {
                playbook: Some(entry.name.clone()),
                limit: 50,
                ..RunFilter::default()
            })
            .await
            .unwrap_or_default();
        let described = match app.dispatcher.prepared(&entry.name).await {
            Ok(prepared) => {
                let grants = host.grants_for(&prepared.source);
                let limits = host.config.limits_for(&prepared.source.name);
                let d = &prepared.description;
                Ok((
                    d.summary.clone(),
                    prepared.source.origin.clone(),
                    crate::render::inspect(
                        d,
                        &prepared.source.origin.to_string(),
                        &grants,
                        &limits,
                    ),
                ))
            }
            Err(refusal) => Err(refusal.to_string()),
        };
        sections.push((entry.name, described, recent));
    }
    // Only a caller who may start runs is shown the way to the run form.
    // A viewer sees no Run link; an anonymous reader (an open read API) does: the form asks
    // them to sign in, and the `[ui]` credentials may hold the operator role.
    let may_run = crate::authz::caller().is_some_and(|c| {
        c.identity.roles.allow(runbook_core::access::Role::Operator)
            || c.identity.proof == runbook_core::access::Proof::Open
    });
    let body = html! {
        h1 { "Playbooks" }
        @for (name, described, recent) in &sections {
            section.playbook {
                h2 { (name) }
                @match described {
                    Ok((summary, origin, inspect)) => {
                        p { (summary) }
                        (origin_line(origin))
                        p { @if may_run { a.run-form href={ "/ui/playbooks/" (seg(name)) "/run" } { "Run…" } " · " }
                            a href={ "/ui/runs?playbook=" (seg(name)) } { "all runs" }
                            @if let Some(rate) = success_rate(recent) {
                                " · " (format!("{rate:.0}%")) " succeeded of the last " (recent.len()) } }
                        details { summary { "parameters, capabilities wanted → granted, limits" }
                            pre { (inspect) } }
                    }
                    Err(problem) => { p.error { (problem) } }
                }
                @if !recent.is_empty() { (runs_table(&recent[..recent.len().min(5)], &HashMap::new())) }
            }
        }
    };
    layout("Playbooks", html! {}, body)
}

/// Where a playbook's bytes come from: for a registry playbook its source, the digest that
/// runs and who signed it.
fn origin_line(origin: &crate::catalog::Origin) -> maud::Markup {
    use crate::catalog::Origin;
    match origin {
        Origin::Registry(pinned) => html! {
            p.origin {
                "source " code { (pinned.source) }
                @if let Some(digest) = &pinned.digest { " · digest " code.digest { (digest) } }
                " · "
                @match &pinned.signer {
                    Some(signer) => { "signed by " strong.signer { (signer) } }
                    None => { "signature not required" }
                }
            }
        },
        other => html! { p.origin { "from " code { (other) } } },
    }
}

#[derive(Deserialize)]
pub(crate) struct OutboxQuery {
    state: Option<String>,
}

pub(crate) async fn outbox(State(app): State<Shared>, Query(q): Query<OutboxQuery>) -> Response {
    let store = app.store.clone();
    let state = match q.state.as_deref() {
        Some("delivered") => Some("delivered"),
        Some("failed") => Some("failed"),
        Some("all") => None,
        _ => Some("pending"),
    };
    let rows = match state {
        Some(state) => store.outbox_list(Some(state), 200).await,
        None => store.outbox_list(None, 200).await,
    };
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => return store_error(e),
    };
    let body = html! {
        h1 { "Outbox" }
        p { @for s in ["pending", "failed", "delivered", "all"] {
            a href={ "/ui/outbox?state=" (s) } { (s) } " " } }
        @if rows.is_empty() { p.muted { "No messages." } }
        @else {
            div.scroll { table.stack id="outbox" { thead { tr { th { "id" } th { "channel" } th { "title" } th { "state" }
                th { "created" } th { "attempts" } th { "last attempt" } th { "next attempt" } th { "last error" } th { "run" } th {} } }
                tbody { @for m in &rows { tr.message {
                    td { (m.id) } td { (m.channel) } td { (m.title) }
                    td.st { (badge(delivery_tone(&m.state), &m.state)) }
                    td.created { (time(&m.created_at)) }
                    td { (m.attempts) }
                    td.attempted {
                        @if let Some(at) = &m.attempted_at { (time(at)) br; }
                        @else if m.delivered_at.is_none() { span.muted { "not yet" } }
                        @if let Some(at) = &m.delivered_at { span.muted { "delivered " (show::relative(at)) } } }
                    td.next.nowrap { @if let Some(at) = &m.next_attempt_at { (show::next_attempt(at)) } }
                    td { (m.last_error.as_deref().unwrap_or("")) }
                    td { @if let Some(id) = &m.run_id { a href={ "/ui/runs/" (seg(id)) } { "run" } } }
                    td { @if m.state == "failed" { a.retry href={ "/ui/outbox/" (m.id) "/retry" } { "Retry…" } } }
                } } }
            } }
        }
    };
    layout("Outbox", html! {}, body)
}
