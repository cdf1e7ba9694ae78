//! The console's front page: is the automation helping? Outcomes over time, time to mitigate,
//! top alerts, playbook success rates, from the store's figures (`FigureStore`); the same
//! figures as JSON with `?format=json`. The answer says its server time (`Server-Timing`).

use std::time::{Duration, Instant, SystemTime};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::charts::{self, Bar, Column, Span};
use super::page::{layout, message_page, seg, store_unavailable};
use super::show::{tone, tone_class};
use crate::app::Shared;
use crate::records::RunStatus;
use crate::store::StoredRun;
use crate::timeline::EventKind;
use runbook_core::figures::{Bucket, Figures, Window};
use runbook_runtime::digest;
use runbook_runtime::postmortem::IncidentTimes;

/// The windows the dashboard offers.
const SPANS: [(&str, u64); 4] = [
    ("24h", 86_400),
    ("7d", 7 * 86_400),
    ("30d", 30 * 86_400),
    ("1h", 3_600),
];

#[derive(Deserialize, Default)]
pub(crate) struct DashboardQuery {
    since: Option<String>,
    format: Option<String>,
}

pub(crate) async fn dashboard(
    State(app): State<Shared>,
    Query(q): Query<DashboardQuery>,
) -> Response {
    let started = Instant::now();
    let since = q.since.as_deref().unwrap_or("24h");
    let Some((since, secs)) = SPANS.iter().find(|(name, _)| *name == since).copied() else {
        return message_page(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "since must be one of 1h, 24h, 7d, 30d",
        );
    };
    let window = Window::last(Duration::from_secs(secs));
    let figures = match app.store.figures(&window).await {
        Ok(figures) => figures,
        Err(e) => {
            return store_unavailable("The run store does not answer", &e);
        }
    };
    let read = started.elapsed();
    let mut response = match q.format.as_deref() {
        Some("json") => Json(digest::json(&figures, digest::Period::Window)).into_response(),
        None | Some("html") => page(&figures, since),
        Some(_) => {
            return message_page(
                StatusCode::BAD_REQUEST,
                "Bad request",
                "format must be json",
            );
        }
    };
    let timing = format!(
        "figures;dur={:.1}, render;dur={:.1}, total;dur={:.1}",
        read.as_secs_f64() * 1e3,
        (started.elapsed() - read).as_secs_f64() * 1e3,
        started.elapsed().as_secs_f64() * 1e3
    );
    if let Ok(value) = HeaderValue::from_str(&timing) {
        response.headers_mut().insert("server-timing", value);
    }
    response
}

fn status_class(status: &str) -> &'static str {
    tone_class(tone(RunStatus::parse(status)))
}

/// Every bucket of the window, empty ones too, so the time axis is even.
fn columns(f: &Figures) -> Vec<Column> {
    let step = match f.window.bucket {
        Bucket::Hour => 3_600,
        Bucket::Day => 86_400,
    };
    let len = f.window.bucket.prefix_len();
    let parse = |t: &str| humantime::parse_rfc3339_weak(t).ok();
    let (Some(since), Some(until)) = (parse(&f.window.since), parse(&f.window.until)) else {
        return Vec::new();
    };
    let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let mut at = SystemTime::UNIX_EPOCH + Duration::from_secs(secs(since).as_secs() / step * step);
    let mut out = Vec::new();
    while at < until && out.len() < 800 {
        let key = humantime::format_rfc3339_seconds(at).to_string()[..len].to_string();
        let outcomes = f
            .buckets
            .iter()
            .find(|b| b.start == key)
            .map(|b| &b.outcomes);
        // Statuses in RunStatus::ALL order, so colours stack the same way in every column.
        let mut parts: Vec<(&'static str, String, u64)> = RunStatus::ALL
            .iter()
            .filter_map(|s| {
                let n = *outcomes?.get(s.as_str())?;
                Some((status_class(s.as_str()), s.as_str().to_string(), n))
            })
            .collect();
        if let Some(outcomes) = outcomes {
            for (status, n) in outcomes {
                if RunStatus::parse(status) == RunStatus::Other {
                    parts.push((status_class(status), status.clone(), *n));
                }
            }
        }
        let label = match f.window.bucket {
            Bucket::Hour => format!("{}h", &key[11..13]),
            Bucket::Day => key[5..10].to_string(),
        };
        out.push(Column { label, parts });
        at += Duration::from_secs(step);
    }
    out
}

fn page(f: &Figures, since: &str) -> Response {
    let t = &f.total;
    let mitigate: Vec<Bar> = digest::mitigate_bars(f)
        .into_iter()
        .map(|(label, n)| Bar {
            label: label.into(),
            value: n as f64,
            shown: n.to_string(),
            class: "t-eased",
        })
        .collect();
    let alerts: Vec<Bar> = f
        .alert_runs
        .iter()
        .map(|g| Bar {
            label: g.name.clone(),
            value: g.runs as f64,
            shown: g.runs.to_string(),
            class: "t-warn",
        })
        .collect();
    let success: Vec<Bar> = f
        .playbooks
        .iter()
        .take(15)
        .filter_map(|g| {
            let rate = g.success_rate()?;
            Some(Bar {
                label: g.name.clone(),
                value: rate,
                shown: format!("{rate:.0}% of {}", g.runs),
                class: if rate >= 90.0 {
                    "t-good"
                } else if rate >= 60.0 {
                    "t-warn"
                } else {
                    "t-bad"
                },
            })
        })
        .collect();
    let body = html! {
        h1 { "Dashboard" }
        p.spans {
            "Runs accepted in the last "
            @for (name, _) in SPANS {
                @if name == since { strong { (name) } } @else { a href={ "/ui?since=" (name) } { (name) } }
                " "
            }
            "· " a href="/ui/runs" { "all runs →" }
            " · " a href={ "/ui?since=" (since) "&format=json" } { "JSON" }
        }
        dl.tiles {
            div { dt { "Runs" } dd { (t.runs) } }
            div { dt { "Resolved automatically" } dd { (t.automatic) } }
            div { dt { "Escalated" } dd { (t.escalated) } }
            div { dt { "Failed or lost" } dd { (digest::error_rate(t).map_or("–".into(), |r| format!("{r:.1}%"))) } }
            div { dt { "Detection → outcome p50 / p90" } dd { (digest::duration(t.to_outcome.p50_ms)) " / " (digest::duration(t.to_outcome.p90_ms)) } }
            div { dt { "Alerts received" } dd { (f.alerts_received) } }
        }
        div.charts {
            (charts::stacked("outcomes", "Outcomes over time", &columns(f)))
            (charts::bars("mitigate", "Time from detection to mitigation", &mitigate, None))
            (charts::bars("alerts", "Top alerts (runs they started)", &alerts, None))
            (charts::bars("success", "Playbook success rate", &success, Some(100.0)))
        }
        h2 { "Playbooks" }
        div.scroll { table.figures {
            thead { tr {
                th scope="col" { "playbook" } th scope="col" { "runs" } th scope="col" { "outcomes" }
                th scope="col" { "to start p50 / p90" } th scope="col" { "to first action" }
                th scope="col" { "to outcome" }
            } }
            tbody { @for g in &f.playbooks { tr {
                td { a href={ "/ui/runs?playbook=" (seg(&g.name)) } { (g.name) } }
                td { (g.runs) }
                td { (digest::outcome_list(g)) }
                td.nowrap { (digest::duration(g.to_start.p50_ms)) " / " (digest::duration(g.to_start.p90_ms)) }
                td.nowrap { (digest::duration(g.to_first_action.p50_ms)) " / " (digest::duration(g.to_first_action.p90_ms)) }
                td.nowrap { (digest::duration(g.to_outcome.p50_ms)) " / " (digest::duration(g.to_outcome.p90_ms)) }
            } } }
        } }
        @if !f.top_alerts.is_empty() {
            h2 { "Alerts received" }
            ul { @for a in &f.top_alerts { li { (a.name) " — " (a.count) } } }
        }
        @if !f.nodes.is_empty() {
            h2 { "Noisiest nodes" }
            ul { @for n in &f.nodes { li { (n.name) " — " (n.count) } } }
        }
        @if !f.actions.is_empty() {
            h2 { "Actions taken" }
            ul { @for a in &f.actions { li.mono { (a.name) " ×" (a.count) } } }
        }
        p.muted { "Times run from detection (the alert's startsAt, else when the run was accepted); p50/p90 are nearest-rank." }
    };
    layout("Dashboard", html! {}, body)
}

/// A run's steps and capability calls as a Gantt bar each (the run page).
pub(super) fn run_timeline(run: &StoredRun) -> maud::Markup {
    let mut spans: Vec<Span> = Vec::new();
    let mut open: Vec<(String, f64)> = Vec::new();
    for event in &run.timeline {
        match &event.kind {
            EventKind::Step { name, status, .. } => {
                if let Some(i) = open.iter().position(|(n, _)| n == name) {
                    let (name, start) = open.remove(i);
                    spans.push(Span {
                        label: name,
                        start_ms: start,
                        end_ms: event.offset_ms,
                        class: status_class_of_step(status),
                    });
                } else if matches!(status.as_str(), "running" | "started" | "start") {
                    open.push((name.clone(), event.offset_ms));
                } else {
                    spans.push(Span {
                        label: name.clone(),
                        start_ms: event.offset_ms,
                        end_ms: event.offset_ms,
                        class: status_class_of_step(status),
                    });
                }
            }
            EventKind::Call {
                interface,
                function,
                result,
                duration_ms,
                ..
            } => spans.push(Span {
                label: format!("{interface}.{function}"),
                start_ms: (event.offset_ms - duration_ms).max(0.0),
                end_ms: event.offset_ms,
                class: if result == "ok" {
                    "t-live"
                } else if result == "would" {
                    "t-calm"
                } else {
                    "t-bad"
                },
            }),
            _ => {}
        }
    }
    let end = run.timeline.last().map_or(0.0, |e| e.offset_ms);
    for (name, start) in open {
        spans.push(Span {
            label: name,
            start_ms: start,
            end_ms: end,
            class: "t-live",
        });
    }
    spans.truncate(60);
    if spans.is_empty() {
        return html! {};
    }
    charts::gantt("run-timeline", "Steps and calls", &spans)
}

fn status_class_of_step(status: &str) -> &'static str {
    match status {
        "failed" => "t-bad",
        "warning" => "t-warn",
        "skipped" => "t-gone",
        _ => "t-good",
    }
}

/// The incident's milestones from detection (the report page).
pub(super) fn incident_timeline(run: &StoredRun) -> maud::Markup {
    let times = IncidentTimes::of(run);
    let rows = times.rows();
    let spans: Vec<Span> = rows
        .iter()
        .map(|(what, at)| {
            let ms = times.after_detection(at).unwrap_or(0) as f64;
            Span {
                label: (*what).into(),
                start_ms: 0.0,
                end_ms: ms,
                class: if *what == "detected" {
                    "t-warn"
                } else {
                    "t-eased"
                },
            }
        })
        .collect();
    charts::gantt("incident-times", "Incident times from detection", &spans)
}
