//! The post-incident report (`crate::postmortem`, the same Markdown `host runs report`
//! prints) as HTML, and as a Markdown download.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{PreEscaped, html};
use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};

use super::page::{layout, seg};
use crate::app::Shared;

/// Markdown to HTML where the Markdown carries playbook and alert text: raw HTML in it is
/// shown as text, and links go only to http(s) or relative places.
pub(super) fn to_html(markdown: &str) -> String {
    let events = Parser::new_ext(markdown, Options::ENABLE_TABLES).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Image {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        other => other,
    });
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, events);
    out
}

fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let lower = url.to_ascii_lowercase();
    let scheme = lower.split_once(':').map(|(s, _)| s);
    let relative = scheme.is_none() || lower.starts_with('/') || lower.starts_with('#');
    if relative || matches!(scheme, Some("http" | "https")) {
        url
    } else {
        CowStr::Borrowed("#")
    }
}

pub(crate) async fn html(State(app): State<Shared>, Path(id): Path<String>) -> Response {
    let (run, report) = match crate::api::report_of(&app, id).await {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let rendered = to_html(&report);
    let body = html! {
        p { a href={ "/ui/runs/" (seg(&run.run.id)) } { "← the run" } " · "
            a href={ "/ui/runs/" (seg(&run.run.id)) "/report.md" } { "download Markdown" } }
        (super::dashboard::incident_timeline(&run))
        article.report { (PreEscaped(rendered)) }
    };
    layout(&format!("Report {}", run.run.playbook), html! {}, body)
}

pub(crate) async fn markdown(State(app): State<Shared>, Path(id): Path<String>) -> Response {
    let (run, report) = match crate::api::report_of(&app, id).await {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let file: String = run
        .run
        .id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    (
        [
            (
                header::CONTENT_TYPE,
                "text/markdown; charset=utf-8".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"report-{file}.md\""),
            ),
        ],
        report,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::to_html;

    #[test]
    fn raw_html_and_script_links_in_a_report_stay_text() {
        let html = to_html(
            "# Title\n\n<script>alert(1)</script>\n\ninline <img src=x onerror=alert(1)> \
             [x](javascript:alert(1)) [ok](https://example.com/a)",
        );
        assert!(html.contains("<h1>Title</h1>"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(!html.contains("javascript:"), "{html}");
        assert!(html.contains("href=\"https://example.com/a\""), "{html}");
    }
}
