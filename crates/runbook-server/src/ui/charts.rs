//! Charts as server-rendered SVG: no script, no CDN, nothing the CSP must allow. Written with
//! maud like every page, so every label (a playbook's or an alert's name, chosen by someone
//! else) is escaped; colours come from the stylesheet's classes, so they follow light and
//! dark. Each chart comes with its numbers as a table (for screen readers, and anyone).

use maud::{Markup, html};

/// Longest label drawn in a chart (the table beside it has the whole name).
const LABEL_CHARS: usize = 28;

fn label(text: &str) -> String {
    runbook_core::text::truncate(text, LABEL_CHARS).into_owned()
}

/// One bar of a horizontal bar chart.
pub(super) struct Bar {
    pub label: String,
    pub value: f64,
    /// What the table and the bar's end say (`12`, `87.5%`, `4.1 s`).
    pub shown: String,
    /// A tone class (`t-good` …) or `t-live`.
    pub class: &'static str,
}

/// Horizontal bars, longest `max` (or the largest value).
pub(super) fn bars(id: &str, title: &str, rows: &[Bar], max: Option<f64>) -> Markup {
    let row_h = 22.0;
    // Room at the right for the longest value written after its bar.
    let longest = rows
        .iter()
        .map(|r| r.shown.chars().count())
        .max()
        .unwrap_or(0);
    let (width, left, right) = (560.0, 190.0, 12.0 + 7.0 * longest as f64);
    let height = (rows.len().max(1) as f64) * row_h + 8.0;
    let top = max
        .unwrap_or_else(|| rows.iter().map(|r| r.value).fold(0.0, f64::max))
        .max(f64::MIN_POSITIVE);
    let span = width - left - right;
    html! {
        figure.chart id=(id) {
            figcaption { (title) }
            svg role="img" aria-labelledby={(id) "-t"} viewBox={"0 0 " (width) " " (height)}
                width=(width) height=(height) xmlns="http://www.w3.org/2000/svg" {
                title id={(id) "-t"} { (title) }
                @if rows.is_empty() {
                    text.axis x="4" y="18" { "nothing in this window" }
                }
                @for (i, row) in rows.iter().enumerate() {
                    @let y = i as f64 * row_h + 4.0;
                    @let w = (row.value / top * span).max(if row.value > 0.0 { 1.0 } else { 0.0 });
                    text.axis x=(left - 6.0) y=(y + 15.0) text-anchor="end" { (label(&row.label)) }
                    rect class=(row.class) x=(left) y=(y + 2.0) width={(format!("{w:.1}"))} height=(row_h - 6.0) rx="2" {}
                    text.axis x={(format!("{:.1}", left + w + 4.0))} y=(y + 15.0) { (row.shown) }
                }
            }
            (table(&["", "value"], rows.iter().map(|r| vec![r.label.clone(), r.shown.clone()])))
        }
    }
}

/// One stacked column: its label and (tone class, status, count) from the bottom up.
pub(super) struct Column {
    pub label: String,
    pub parts: Vec<(&'static str, String, u64)>,
}

/// Stacked columns (outcomes per hour or day), with a legend of the statuses present.
pub(super) fn stacked(id: &str, title: &str, columns: &[Column]) -> Markup {
    let (width, height, bottom, left) = (720.0, 220.0, 36.0, 34.0);
    let top = columns
        .iter()
        .map(|c| c.parts.iter().map(|p| p.2).sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let plot_h = height - bottom - 8.0;
    let step = (width - left) / columns.len().max(1) as f64;
    let bar_w = (step * 0.8).max(1.0);
    // Every ~8th label, so they never overlap.
    let every = columns.len().div_ceil(8).max(1);
    let mut legend: Vec<(&'static str, String)> = Vec::new();
    for (class, status, _) in columns.iter().flat_map(|c| &c.parts) {
        if !legend.iter().any(|(_, s)| s == status) {
            legend.push((*class, status.clone()));
        }
    }
    let statuses: Vec<String> = legend.iter().map(|(_, s)| s.clone()).collect();
    let mut head = vec!["period".to_string()];
    head.extend(statuses.iter().cloned());
    let head_refs: Vec<&str> = head.iter().map(String::as_str).collect();
    // Each column's x and its parts' (class, status, count, y, height), bottom up.
    type Part<'a> = (&'static str, &'a str, u64, f64, f64);
    let placed: Vec<(&Column, f64, Vec<Part<'_>>)> = columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let x = left + i as f64 * step + (step - bar_w) / 2.0;
            let mut y = 8.0 + plot_h;
            let parts = column
                .parts
                .iter()
                .map(|(class, status, n)| {
                    let h = *n as f64 / top * plot_h;
                    y -= h;
                    (*class, status.as_str(), *n, y, h)
                })
                .collect();
            (column, x, parts)
        })
        .collect();
    html! {
        figure.chart id=(id) {
            figcaption { (title) }
            svg role="img" aria-labelledby={(id) "-t"} viewBox={"0 0 " (width) " " (height)}
                width=(width) height=(height) xmlns="http://www.w3.org/2000/svg" {
                title id={(id) "-t"} { (title) }
                line.grid x1=(left) y1=(8.0 + plot_h) x2=(width) y2=(8.0 + plot_h) {}
                text.axis x=(left - 4.0) y="16" text-anchor="end" { (top as u64) }
                text.axis x=(left - 4.0) y=(8.0 + plot_h) text-anchor="end" { "0" }
                @for (i, (column, x, rects)) in placed.iter().enumerate() {
                    @for (class, status, n, y, h) in rects {
                        rect class=(class) x={(format!("{x:.1}"))} y={(format!("{y:.1}"))}
                            width={(format!("{bar_w:.1}"))} height={(format!("{h:.1}"))} {
                            title { (column.label) ": " (n) " " (status) }
                        }
                    }
                    @if i % every == 0 {
                        text.axis x={(format!("{:.1}", x + bar_w / 2.0))} y=(height - 18.0)
                            text-anchor="middle" { (column.label) }
                    }
                }
            }
            p.legend {
                @for (class, status) in &legend {
                    span.key { svg width="10" height="10" aria-hidden="true" { rect class=(class) width="10" height="10" {} } " " (status) }
                }
            }
            (table(&head_refs, columns.iter().map(|c| {
                let mut row = vec![c.label.clone()];
                row.extend(statuses.iter().map(|s| {
                    c.parts.iter().find(|p| &p.1 == s).map_or(0, |p| p.2).to_string()
                }));
                row
            })))
        }
    }
}

/// One bar of a timeline: from `start_ms` to `end_ms` after the run started.
pub(super) struct Span {
    pub label: String,
    pub start_ms: f64,
    pub end_ms: f64,
    pub class: &'static str,
}

/// A Gantt-style timeline (a run's steps and calls, an incident's phases).
pub(super) fn gantt(id: &str, title: &str, spans: &[Span]) -> Markup {
    let row_h = 20.0;
    let (width, left) = (720.0, 200.0);
    let end = spans.iter().map(|s| s.end_ms).fold(0.0, f64::max).max(1.0);
    let height = spans.len().max(1) as f64 * row_h + 24.0;
    let span_w = width - left - 10.0;
    let x = |ms: f64| left + ms.max(0.0) / end * span_w;
    html! {
        figure.chart id=(id) {
            figcaption { (title) }
            svg role="img" aria-labelledby={(id) "-t"} viewBox={"0 0 " (width) " " (height)}
                width=(width) height=(height) xmlns="http://www.w3.org/2000/svg" {
                title id={(id) "-t"} { (title) }
                @for (i, s) in spans.iter().enumerate() {
                    @let y = i as f64 * row_h + 2.0;
                    @let w = (x(s.end_ms) - x(s.start_ms)).max(2.0);
                    text.axis x=(left - 6.0) y=(y + 14.0) text-anchor="end" { (label(&s.label)) }
                    rect class=(s.class) x={(format!("{:.1}", x(s.start_ms)))} y=(y + 3.0)
                        width={(format!("{w:.1}"))} height=(row_h - 6.0) rx="2" {
                        title { (s.label) ": " (ms(s.start_ms)) " → " (ms(s.end_ms)) }
                    }
                }
                text.axis x=(left) y=(height - 6.0) { "0" }
                text.axis x=(width - 10.0) y=(height - 6.0) text-anchor="end" { (ms(end)) }
            }
            (table(&["", "from", "to"], spans.iter().map(|s| vec![s.label.clone(), ms(s.start_ms), ms(s.end_ms)])))
        }
    }
}

fn ms(v: f64) -> String {
    if v.abs() < 1000.0 {
        format!("{v:.0} ms")
    } else if v.abs() < 120_000.0 {
        format!("{:.1} s", v / 1000.0)
    } else {
        format!("{:.1} min", v / 60_000.0)
    }
}

/// A chart's numbers, folded under it.
fn table(head: &[&str], rows: impl Iterator<Item = Vec<String>>) -> Markup {
    html! {
        details.numbers {
            summary { "Numbers" }
            div.scroll { table {
                thead { tr { @for h in head { th scope="col" { (h) } } } }
                tbody { @for row in rows { tr { @for cell in row { td { (cell) } } } } }
            } }
        }
    }
}
