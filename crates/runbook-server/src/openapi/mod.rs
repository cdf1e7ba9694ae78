//! The HTTP surface as an OpenAPI 3.1 document, served at `GET /openapi.json` without auth: it
//! describes the endpoints and holds no secret (the same text for every caller). The JSON
//! endpoints' bodies are the handlers' own types (`ToSchema` where they are defined); the
//! console's HTML routes are listed with their media types and no body schema.
//!
//! `paths`: one doc function per JSON operation; `console`: the console's and its assets'
//! routes; `crate::replies`: the bodies the server builds itself. A test walks the route table:
//! every route has an operation here and every operation a route.

mod console;
mod paths;

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, ObjectBuilder, OpenApi as Document, RefOr, ResponseBuilder, Type,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "runbook host",
        description = "Webhooks that start playbook runs, the run API, the fleet's agent API, \
            health and metrics, and the console's pages. Every refusal of a JSON endpoint is \
            `{\"error\": \"…\"}`; 503 (with `Retry-After`) means try again, any other 4xx means \
            retrying cannot help.",
        license(name = "Apache-2.0"),
    ),
    paths(
        paths::alertmanager_hook, paths::run_hook, paths::slack_interactive,
        paths::list_runs, paths::show_run, paths::run_report, paths::cancel_run,
        paths::list_alerts, paths::list_approvals, paths::answer_approval, paths::list_nodes,
        paths::healthz, paths::metrics, paths::openapi_json,
        paths::agent_poll, paths::agent_heartbeat, paths::agent_events, paths::agent_finish,
        paths::agent_act,
        paths::agent_artifact,
        paths::agent_artifact_component,
    ),
    components(schemas(crate::replies::Error)),
    modifiers(&Shared),
    tags(
        (name = "hooks", description = "Webhooks in: each checks its `[webhooks.<name>]` auth"),
        (name = "runs", description = "The run API, behind `[webhooks.api]` auth"),
        (name = "fleet", description = "The fleet's nodes, behind `[webhooks.api]` auth"),
        (name = "agent", description = "The agent API: a node's bearer token \
            (`[fleet.nodes.<name>] token`), and with `[fleet] client-ca` a client certificate \
            naming the node"),
        (name = "health", description = "Open to anyone"),
        (name = "console", description = "The console's HTML pages and forms"),
    ),
)]
struct Doc;

/// The document, built once.
pub(crate) fn document() -> &'static Document {
    static DOC: OnceLock<Document> = OnceLock::new();
    DOC.get_or_init(Doc::openapi)
}

/// `GET /openapi.json`.
pub(crate) async fn serve() -> Response {
    static TEXT: OnceLock<String> = OnceLock::new();
    let text = TEXT.get_or_init(|| document().to_json().expect("the document serializes"));
    ([(header::CONTENT_TYPE, "application/json")], text.as_str()).into_response()
}

/// What every operation of a kind shares: the security schemes, the refusals of auth, size
/// and store, the console's routes.
struct Shared;

impl utoipa::Modify for Shared {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        for (name, scheme) in security_schemes() {
            components.add_security_scheme(name, scheme);
        }
        console::add(doc);
        for (path, item) in doc.paths.paths.iter_mut() {
            for (method, op) in operations(item) {
                shared_responses(path, method, op);
            }
        }
    }
}

fn security_schemes() -> Vec<(&'static str, SecurityScheme)> {
    let described = |kind: HttpAuthScheme, what: &str| {
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(kind)
                .description(Some(what))
                .build(),
        )
    };
    let header = |name: &str, what: &str| {
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(name, what)))
    };
    vec![
        (
            "bearer",
            described(
                HttpAuthScheme::Bearer,
                "`auth = { kind = \"bearer\", token = … }` of the endpoint's [webhooks.<name>]",
            ),
        ),
        (
            "basic",
            described(
                HttpAuthScheme::Basic,
                "`auth = { kind = \"basic\", … }` of the endpoint's [webhooks.<name>], or the \
                 console's [ui]",
            ),
        ),
        (
            "hmac_sha256",
            header(
                "X-Hub-Signature-256",
                "`kind = \"hmac-sha256\"`: `sha256=` and the hex HMAC-SHA256 of the raw body \
                 (GitHub's scheme)",
            ),
        ),
        (
            "standard_webhooks",
            header(
                "webhook-signature",
                "`kind = \"standard-webhooks\"`: `v1,<base64 HMAC-SHA256 of id.timestamp.body>` \
                 with `webhook-id` (seen once within 10 minutes) and `webhook-timestamp` \
                 (within 5 minutes of the server's clock)",
            ),
        ),
        (
            "slack_signature",
            header(
                "X-Slack-Signature",
                "Slack's `v0=` signature by a Slack channel's signing-secret, with \
                 `X-Slack-Request-Timestamp`",
            ),
        ),
        (
            "node_token",
            described(
                HttpAuthScheme::Bearer,
                "A fleet node's token ([fleet.nodes.<name>] token); it names the node the \
                 request must be for",
            ),
        ),
        (
            "node_certificate",
            SecurityScheme::MutualTls {
                description: Some(
                    "With [fleet] client-ca: a client certificate naming the node, beside its \
                     token"
                        .into(),
                ),
                extensions: None,
            },
        ),
    ]
}

fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> Vec<(&'static str, &mut utoipa::openapi::path::Operation)> {
    [
        ("get", item.get.as_mut()),
        ("post", item.post.as_mut()),
        ("put", item.put.as_mut()),
        ("delete", item.delete.as_mut()),
        ("patch", item.patch.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|op| (m, op)))
    .collect()
}

fn error_ref() -> RefOr<utoipa::openapi::schema::Schema> {
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name("Error"))
}

fn text() -> RefOr<utoipa::openapi::schema::Schema> {
    ObjectBuilder::new().schema_type(Type::String).into()
}

/// Adds a response, or adds its media types to the one already there.
fn add_response(
    op: &mut utoipa::openapi::path::Operation,
    status: u16,
    description: &str,
    content: &[(&str, RefOr<utoipa::openapi::schema::Schema>)],
    retry_after: bool,
) {
    let key = status.to_string();
    let mut builder = ResponseBuilder::new().description(description);
    if retry_after {
        builder = builder.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some("Seconds to wait before trying again"))
                .build(),
        );
    }
    let fresh = builder.build();
    let response = match op.responses.responses.entry(key).or_insert(RefOr::T(fresh)) {
        RefOr::T(response) => response,
        RefOr::Ref(_) => return,
    };
    for (media, schema) in content {
        response
            .content
            .entry(media.to_string())
            .or_insert_with(|| ContentBuilder::new().schema(Some(schema.clone())).build());
    }
}

/// The refusals axum and the gates answer before a handler's own: a path or query that does
/// not parse (400, text), a body over the cap (413, text), auth (401/403), the store not
/// answering (503 with Retry-After); on the API, a role below the route's (403).
fn shared_responses(path: &str, method: &str, op: &mut utoipa::openapi::path::Operation) {
    let tag = op
        .tags
        .as_ref()
        .and_then(|t| t.first().cloned())
        .unwrap_or_default();
    if tag == "health" || tag == "console" {
        return;
    }
    let json = || ("application/json", error_ref());
    let plain = || ("text/plain", text());
    if path.contains('{') || op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
        add_response(
            op,
            400,
            "A path or query that does not parse",
            &[plain()],
            false,
        );
    }
    add_response(op, 401, "No valid credentials", &[json()], false);
    if method == "post" {
        add_response(op, 413, "The body is over the cap", &[plain()], false);
    }
    let store_calls = tag != "hooks" || path != "/hooks/slack/interactive";
    if store_calls {
        add_response(
            op,
            503,
            "The run store does not answer, or the queue is full: try again",
            &[json()],
            true,
        );
    }
    if tag == "agent" {
        add_response(
            op,
            400,
            "Not an agent request of this kind",
            &[json()],
            false,
        );
        add_response(
            op,
            403,
            "The token is another node's, or the certificate does not name the node",
            &[json()],
            false,
        );
        if path.contains("/runs/") {
            add_response(
                op,
                409,
                "The run is no longer this agent's (lost, ended, or an earlier agent process's): \
                 stop it and write nothing more",
                &[json()],
                false,
            );
        }
        op.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "node_token",
            Vec::<String>::new(),
        )]);
    } else if tag != "hooks" {
        add_response(
            op,
            403,
            "The caller's role does not cover this route (see the route table: viewer reads, \
             operator starts and cancels, approver answers)",
            &[json()],
            false,
        );
        op.security = Some(api_security());
    }
}

/// `[webhooks.api]` takes any of the webhook kinds.
fn api_security() -> Vec<utoipa::openapi::security::SecurityRequirement> {
    ["bearer", "basic", "hmac_sha256", "standard_webhooks"]
        .into_iter()
        .map(|name| utoipa::openapi::security::SecurityRequirement::new(name, Vec::<String>::new()))
        .collect()
}

#[cfg(test)]
mod tests;
