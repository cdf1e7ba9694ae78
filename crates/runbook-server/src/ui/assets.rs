//! The console's stylesheet and its one script, embedded in the binary and served under a
//! name carrying their content hash: cached for good, and a new build changes the name.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

const CSS: &str = include_str!("static/console.css");
const JS: &str = include_str!("static/console.js");

struct Asset {
    path: String,
    body: &'static str,
    content_type: &'static str,
}

fn asset(stem: &str, ext: &str, body: &'static str, content_type: &'static str) -> Asset {
    let hash = hex::encode(&Sha256::digest(body.as_bytes())[..8]);
    Asset {
        path: format!("/ui/static/{stem}-{hash}.{ext}"),
        body,
        content_type,
    }
}

static ASSETS: LazyLock<[Asset; 2]> = LazyLock::new(|| {
    [
        asset("console", "css", CSS, "text/css; charset=utf-8"),
        asset("console", "js", JS, "text/javascript; charset=utf-8"),
    ]
});

pub(super) fn css_path() -> &'static str {
    &ASSETS[0].path
}

pub(super) fn js_path() -> &'static str {
    &ASSETS[1].path
}

pub(crate) async fn serve(Path(file): Path<String>) -> Response {
    let wanted = format!("/ui/static/{file}");
    match ASSETS.iter().find(|a| a.path == wanted) {
        Some(a) => (
            [
                (header::CONTENT_TYPE, a.content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            a.body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
