//! The console's routes in the document: HTML pages and forms listed with their media types
//! and no body schema (a browser, not a client library, is their caller), and the embedded
//! assets. Every one but the assets is behind the console's gate: `[ui]` credentials, or
//! `[webhooks.api]`'s; forms take the `[ui]` ones and a CSRF token bound to the form.

use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, ObjectBuilder, OpenApi as Document, PathItem, Required,
    ResponseBuilder, Type,
};

/// What a route answers with.
#[derive(Clone, Copy)]
enum Kind {
    /// An HTML page (and the forms' own pages).
    Page,
    /// A form's POST: 303 to the page that shows the result.
    Form,
    /// Server-sent events (a run's live timeline).
    Events,
    /// A file: its media type.
    File(&'static str),
    /// An embedded stylesheet or script, open to anyone (no data in it).
    Asset,
    /// A step of the identity provider's sign-in (`[ui.oidc]`): open, answers 303 onwards.
    SignIn,
    /// The sign-out page and its form: open (they act on the browser's own session).
    SignOut,
}

use Kind::*;

/// Every console route: (method, path, summary, kind).
const ROUTES: &[(HttpMethod, &str, &str, Kind)] = &[
    (HttpMethod::Get, "/ui", "The dashboard", Page),
    (HttpMethod::Get, "/ui/", "The dashboard", Page),
    (HttpMethod::Get, "/ui/runs", "Runs, filtered", Page),
    (HttpMethod::Get, "/ui/runs/{id}", "One run", Page),
    (
        HttpMethod::Get,
        "/ui/runs/{id}/cancel",
        "The form to stop a run",
        Page,
    ),
    (HttpMethod::Post, "/ui/runs/{id}/cancel", "Stop a run", Form),
    (
        HttpMethod::Get,
        "/ui/runs/{id}/events",
        "A run's timeline, live",
        Events,
    ),
    (
        HttpMethod::Get,
        "/ui/runs/{id}/artifacts/{n}",
        "One artifact of a run",
        File("text/plain"),
    ),
    (
        HttpMethod::Get,
        "/ui/runs/{id}/report",
        "A run's post-incident review",
        Page,
    ),
    (
        HttpMethod::Get,
        "/ui/runs/{id}/report.md",
        "A run's review as Markdown",
        File("text/markdown"),
    ),
    (HttpMethod::Get, "/ui/alerts", "Alerts and their fate", Page),
    (HttpMethod::Get, "/ui/playbooks", "The playbooks", Page),
    (
        HttpMethod::Get,
        "/ui/playbooks/{name}/run",
        "The form to run a playbook",
        Page,
    ),
    (
        HttpMethod::Post,
        "/ui/playbooks/{name}/run",
        "Run a playbook",
        Form,
    ),
    (HttpMethod::Get, "/ui/approvals", "Pending questions", Page),
    (
        HttpMethod::Get,
        "/ui/approvals/{id}",
        "The form to answer a question",
        Page,
    ),
    (
        HttpMethod::Post,
        "/ui/approvals/{id}",
        "Answer a question",
        Form,
    ),
    (HttpMethod::Get, "/ui/audit", "The audit trail", Page),
    (
        HttpMethod::Get,
        "/ui/outbox",
        "Notifications and their delivery",
        Page,
    ),
    (
        HttpMethod::Get,
        "/ui/outbox/{id}/retry",
        "The form to retry a notification",
        Page,
    ),
    (
        HttpMethod::Post,
        "/ui/outbox/{id}/retry",
        "Retry a notification",
        Form,
    ),
    (
        HttpMethod::Get,
        "/ui/maintenance",
        "Breakers and maintenance windows",
        Page,
    ),
    (
        HttpMethod::Post,
        "/ui/maintenance/breakers/{playbook}/reset",
        "Close a playbook's breaker",
        Form,
    ),
    (
        HttpMethod::Post,
        "/ui/maintenance/windows",
        "Start a maintenance window",
        Form,
    ),
    (
        HttpMethod::Post,
        "/ui/maintenance/windows/{id}/end",
        "End a maintenance window",
        Form,
    ),
    (
        HttpMethod::Get,
        "/ui/safety",
        "The freeze switch and budgets",
        Page,
    ),
    (
        HttpMethod::Post,
        "/ui/safety/freeze",
        "Freeze every mutating call",
        Form,
    ),
    (
        HttpMethod::Post,
        "/ui/safety/unfreeze",
        "Lift the freeze",
        Form,
    ),
    (
        HttpMethod::Get,
        "/ui/login",
        "Sign in with the identity provider (to it, and back to `next`)",
        SignIn,
    ),
    (
        HttpMethod::Get,
        "/ui/login/callback",
        "The identity provider's answer: a session, and back to the console",
        SignIn,
    ),
    (HttpMethod::Get, "/ui/logout", "The sign-out form", SignOut),
    (
        HttpMethod::Post,
        "/ui/logout",
        "Sign out (ends the session)",
        SignOut,
    ),
    (
        HttpMethod::Get,
        "/ui/static/{file}",
        "The console's stylesheet or script",
        Asset,
    ),
];

pub(super) fn add(doc: &mut Document) {
    for (method, path, summary, kind) in ROUTES {
        let op = match kind {
            SignIn | SignOut => open_operation(method, path, summary, *kind),
            _ => operation(path, summary, *kind),
        };
        let item = PathItem::new(method.clone(), op);
        match doc.paths.paths.get_mut(*path) {
            Some(existing) => existing.merge_operations(item),
            None => {
                doc.paths.paths.insert(path.to_string(), item);
            }
        }
    }
}

/// A form's fields: the console's own pages fill them, with the CSRF token among them.
fn form() -> utoipa::openapi::request_body::RequestBody {
    let fields = ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(ObjectBuilder::new().schema_type(Type::String)));
    RequestBodyBuilder::new()
        .content(
            "application/x-www-form-urlencoded",
            ContentBuilder::new().schema(Some(fields)).build(),
        )
        .required(Some(Required::True))
        .build()
}

fn html() -> ContentBuilder {
    ContentBuilder::new()
}

fn response(description: &str, media: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(media, html().build())
        .build()
}

fn operation(path: &str, summary: &str, kind: Kind) -> utoipa::openapi::path::Operation {
    let mut op = OperationBuilder::new()
        .summary(Some(summary))
        .tag("console")
        .operation_id(Some(operation_id(path, kind)));
    for name in path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
    {
        op = op.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        );
    }
    let page = |d: &str| response(d, "text/html");
    op = match kind {
        Page => op.response("200", page("The page")),
        Form => op.request_body(Some(form())).response(
            "303",
            ResponseBuilder::new()
                .description("Done: to the page that shows it")
                .header(
                    "Location",
                    HeaderBuilder::new()
                        .schema(ObjectBuilder::new().schema_type(Type::String))
                        .build(),
                )
                .build(),
        ),
        Events => op.response(
            "200",
            response("The timeline as it grows", "text/event-stream"),
        ),
        File(media) => op.response("200", response("The file", media)),
        Asset => op.response("200", {
            ResponseBuilder::new()
                .description("The file (cached for good: its name is its content's hash)")
                .content("text/css", html().build())
                .content("text/javascript", html().build())
                .build()
        }),
        // Described by `open_operation` (add() sends them there).
        SignIn | SignOut => op,
    };
    if matches!(kind, Asset) {
        return op
            .response("404", response("No such file", "text/plain"))
            .security(SecurityRequirement::default())
            .build();
    }
    // A run that is not there is said as the run API says it (JSON); anything else, a page.
    let missing = ResponseBuilder::new()
        .description("No such run, playbook, question, file …")
        .content("text/html", html().build())
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(super::error_ref()))
                .build(),
        )
        .build();
    op = op.response("404", missing);
    let bad = ResponseBuilder::new()
        .description("A path, query or form that does not parse")
        .content("text/html", html().build())
        .content("text/plain", html().build())
        .build();
    op = op
        .response("400", bad)
        .response("401", page("Sign in: the console's credentials are needed"))
        .response(
            "403",
            page("These credentials may read but not use the forms, or the form's token is stale"),
        )
        .response("503", page("The run store does not answer: try again"));
    if matches!(kind, Form) {
        op = op
            .response(
                "409",
                page("Already done (the run ended, the question was answered …)"),
            )
            .response("413", response("The form is over the cap", "text/plain"))
            .response(
                "415",
                response(
                    "Not a form (`application/x-www-form-urlencoded`)",
                    "text/plain",
                ),
            )
            .response("422", page("The form's values do not fit"));
    }
    for scheme in ["basic", "bearer", "hmac_sha256", "standard_webhooks"] {
        op = op.security(SecurityRequirement::new(scheme, Vec::<String>::new()));
    }
    op.build()
}

/// Sign-in and sign-out: open to anyone, each answers with a page or a redirect.
fn open_operation(
    method: &HttpMethod,
    path: &str,
    summary: &str,
    kind: Kind,
) -> utoipa::openapi::path::Operation {
    let post = matches!(method, HttpMethod::Post);
    let id = operation_id(path, if post { Form } else { Page });
    let page = |d: &str| response(d, "text/html");
    let mut op = OperationBuilder::new()
        .summary(Some(summary))
        .tag("console")
        .operation_id(Some(id))
        .security(SecurityRequirement::default());
    op = match kind {
        SignIn => op
            .response(
                "303",
                ResponseBuilder::new()
                    .description("To the identity provider, or back to the console signed in")
                    .header(
                        "Location",
                        HeaderBuilder::new()
                            .schema(ObjectBuilder::new().schema_type(Type::String))
                            .build(),
                    )
                    .build(),
            )
            .response(
                "400",
                page(
                    "A state or code that is missing, malformed, stale, used or not this browser's",
                ),
            )
            .response(
                "401",
                page("The provider refused, or its ID token did not pass"),
            )
            .response("403", page("Signed in, but no group gives a role here"))
            .response("404", page("No identity provider is configured"))
            .response("502", page("The provider did not answer as expected")),
        _ => {
            if post {
                op = op
                    .request_body(Some(form()))
                    .response("403", page("The form's CSRF token is missing or stale"))
                    .response("400", response("A form that does not parse", "text/plain"))
                    .response("413", response("The form is over the cap", "text/plain"))
                    .response(
                        "415",
                        response(
                            "Not a form (`application/x-www-form-urlencoded`)",
                            "text/plain",
                        ),
                    );
            }
            op.response("200", page("The sign-out form, or: signed out"))
        }
    };
    op.response("503", page("The run store does not answer: try again"))
        .build()
}

/// `GET /ui/runs/{id}` → `console_get_ui_runs_id`: unique, as the (method, path) pairs are.
fn operation_id(path: &str, kind: Kind) -> String {
    let method = if matches!(kind, Form) { "post" } else { "get" };
    let mut id = format!("console_{method}");
    for part in path.split('/').filter(|p| !p.is_empty()) {
        id.push('_');
        id.extend(
            part.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .map(|c| c.to_ascii_lowercase()),
        );
    }
    if path.ends_with('/') {
        id.push_str("_index");
    }
    id
}
