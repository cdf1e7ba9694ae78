//! Every endpoint of `host serve`, in one table: its method, its path and the surface it
//! belongs to (which decides its auth and its layers). The router is built from the same
//! entries, so no route exists without a line here, and whatever must hold for every route
//! (the API description, who may call it) is checked by iterating [`table`].

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{MethodRouter, get, post};

use crate::app::Shared;
use crate::authz::Access;
use crate::door::{Door, require};
use crate::fleet::{agent, artifacts};
use crate::{api, approvals, cancel, health, hooks, openapi, respond, ui};
use runbook_core::access::Role;

/// Which door a route is behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    /// `/hooks/…`: each hook's own auth (bearer, basic, HMAC, Standard Webhooks, Slack's
    /// signature), checked by the handler on the capped body.
    Hook,
    /// The read and control API: the `[webhooks.api]` credentials.
    Api,
    /// `/healthz`, `/metrics` and `/openapi.json`: open, for probes, scrapers and clients
    /// (the document holds no secret).
    Health,
    /// `/agent/v1/…`: a node's token (and its client certificate under mutual TLS); a body
    /// limit of its own, for a finished run's report.
    Agent,
    /// `/ui/…`: behind the console's gate.
    Console,
    /// `/ui/static/…`: content-hashed script and stylesheet, open.
    Asset,
}

#[derive(Clone, Debug)]
pub struct Route {
    pub method: Method,
    /// axum's pattern, `{name}` for a segment: the same spelling as OpenAPI's.
    pub path: &'static str,
    pub surface: Surface,
    /// Who may call it: a role, or the surface's own auth (hooks, nodes), or anyone
    /// (door.rs enforces it in front of the route).
    pub access: Access,
}

/// Every route the server answers. A `GET` route also answers `HEAD`, as axum does.
pub fn table() -> Vec<Route> {
    entries().into_iter().map(|(route, _)| route).collect()
}

fn entries() -> Vec<(Route, MethodRouter<Shared>)> {
    use Access::{Hook as OwnAuth, Node, Open, Role as R};
    use Role::{Admin, Approver, Operator, Viewer};
    use Surface::*;
    let route = |method: Method, path: &'static str, surface: Surface, access, handler| {
        let entry = Route {
            method,
            path,
            surface,
            access,
        };
        (entry, handler)
    };
    let (get_, post_) = (Method::GET, Method::POST);
    vec![
        route(
            post_.clone(),
            "/hooks/alertmanager",
            Hook,
            OwnAuth,
            post(hooks::alertmanager_hook),
        ),
        route(
            post_.clone(),
            "/hooks/run/{playbook}",
            Hook,
            OwnAuth,
            post(hooks::run_hook),
        ),
        route(
            post_.clone(),
            "/hooks/slack/interactive",
            Hook,
            OwnAuth,
            post(approvals::slack_interactive),
        ),
        route(get_.clone(), "/runs", Api, R(Viewer), get(api::list_runs)),
        route(
            get_.clone(),
            "/runs/{id}",
            Api,
            R(Viewer),
            get(api::show_run),
        ),
        route(
            get_.clone(),
            "/runs/{id}/report",
            Api,
            R(Viewer),
            get(api::run_report),
        ),
        route(
            post_.clone(),
            "/runs/{id}/cancel",
            Api,
            R(Operator),
            post(cancel::cancel),
        ),
        route(
            get_.clone(),
            "/alerts",
            Api,
            R(Viewer),
            get(api::list_alerts),
        ),
        route(
            get_.clone(),
            "/approvals",
            Api,
            R(Viewer),
            get(approvals::list_approvals),
        ),
        route(
            get_.clone(),
            "/nodes",
            Api,
            R(Viewer),
            get(agent::list_nodes),
        ),
        route(get_.clone(), "/healthz", Health, Open, get(health::healthz)),
        route(
            get_.clone(),
            "/metrics",
            Health,
            Open,
            get(health::metrics_text),
        ),
        route(
            get_.clone(),
            "/openapi.json",
            Health,
            Open,
            get(openapi::serve),
        ),
        route(
            post_.clone(),
            "/agent/v1/poll",
            Agent,
            Node,
            post(agent::poll),
        ),
        route(
            post_.clone(),
            "/agent/v1/heartbeat",
            Agent,
            Node,
            post(agent::heartbeat),
        ),
        route(
            post_.clone(),
            "/agent/v1/runs/{id}/events",
            Agent,
            Node,
            post(agent::events),
        ),
        route(
            post_.clone(),
            "/agent/v1/runs/{id}/finish",
            Agent,
            Node,
            post(agent::finish),
        ),
        route(
            post_.clone(),
            "/agent/v1/runs/{id}/act",
            Agent,
            Node,
            post(agent::act),
        ),
        route(
            post_.clone(),
            "/agent/v1/artifacts/{digest}",
            Agent,
            Node,
            post(artifacts::manifest),
        ),
        route(
            post_.clone(),
            "/agent/v1/artifacts/{digest}/component",
            Agent,
            Node,
            post(artifacts::component),
        ),
        route(
            get_.clone(),
            "/ui",
            Console,
            R(Viewer),
            get(ui::dashboard::dashboard),
        ),
        route(
            get_.clone(),
            "/ui/",
            Console,
            R(Viewer),
            get(ui::dashboard::dashboard),
        ),
        route(
            get_.clone(),
            "/ui/runs",
            Console,
            R(Viewer),
            get(ui::pages::runs),
        ),
        route(
            get_.clone(),
            "/ui/runs/{id}",
            Console,
            R(Viewer),
            get(ui::pages::run),
        ),
        route(
            get_.clone(),
            "/ui/runs/{id}/cancel",
            Console,
            R(Operator),
            get(ui::cancel::form),
        ),
        route(
            post_.clone(),
            "/ui/runs/{id}/cancel",
            Console,
            R(Operator),
            post(ui::cancel::submit),
        ),
        route(
            get_.clone(),
            "/ui/runs/{id}/events",
            Console,
            R(Viewer),
            get(ui::live::events),
        ),
        route(
            get_.clone(),
            "/ui/runs/{id}/artifacts/{n}",
            Console,
            R(Viewer),
            get(ui::pages::artifact),
        ),
        route(
            get_.clone(),
            "/ui/runs/{id}/report",
            Console,
            R(Viewer),
            get(ui::report::html),
        ),
        route(
            get_.clone(),
            "/ui/runs/{id}/report.md",
            Console,
            R(Viewer),
            get(ui::report::markdown),
        ),
        route(
            get_.clone(),
            "/ui/alerts",
            Console,
            R(Viewer),
            get(ui::pages::alerts),
        ),
        route(
            get_.clone(),
            "/ui/playbooks",
            Console,
            R(Viewer),
            get(ui::pages::playbooks),
        ),
        route(
            get_.clone(),
            "/ui/playbooks/{name}/run",
            Console,
            R(Operator),
            get(ui::forms::run_form),
        ),
        route(
            post_.clone(),
            "/ui/playbooks/{name}/run",
            Console,
            R(Operator),
            post(ui::forms::run_submit),
        ),
        route(
            get_.clone(),
            "/ui/approvals",
            Console,
            R(Viewer),
            get(ui::approvals::pending),
        ),
        route(
            get_.clone(),
            "/ui/approvals/{id}",
            Console,
            R(Approver),
            get(ui::approvals::answer_form),
        ),
        route(
            post_.clone(),
            "/ui/approvals/{id}",
            Console,
            R(Approver),
            post(ui::approvals::answer_submit),
        ),
        route(
            get_.clone(),
            "/ui/outbox",
            Console,
            R(Viewer),
            get(ui::pages::outbox),
        ),
        route(
            get_.clone(),
            "/ui/outbox/{id}/retry",
            Console,
            R(Operator),
            get(ui::forms::retry_form),
        ),
        route(
            post_.clone(),
            "/ui/outbox/{id}/retry",
            Console,
            R(Operator),
            post(ui::forms::retry_submit),
        ),
        route(
            get_.clone(),
            "/ui/maintenance",
            Console,
            R(Admin),
            get(ui::maintenance::page),
        ),
        route(
            post_.clone(),
            "/ui/maintenance/breakers/{playbook}/reset",
            Console,
            R(Admin),
            post(ui::maintenance::reset),
        ),
        route(
            post_.clone(),
            "/ui/maintenance/windows",
            Console,
            R(Admin),
            post(ui::maintenance::start),
        ),
        route(
            post_.clone(),
            "/ui/maintenance/windows/{id}/end",
            Console,
            R(Admin),
            post(ui::maintenance::end),
        ),
        route(
            get_.clone(),
            "/ui/safety",
            Console,
            R(Admin),
            get(ui::safety::page),
        ),
        route(
            post_.clone(),
            ui::safety::FREEZE,
            Console,
            R(Admin),
            post(ui::safety::freeze),
        ),
        route(
            post_,
            ui::safety::UNFREEZE,
            Console,
            R(Admin),
            post(ui::safety::unfreeze),
        ),
        route(
            get_,
            "/ui/static/{file}",
            Asset,
            Open,
            get(ui::assets::serve),
        ),
        route(
            Method::POST,
            "/approvals/{id}",
            Api,
            R(Approver),
            post(approvals::answer),
        ),
        route(
            Method::GET,
            "/ui/audit",
            Console,
            R(Admin),
            get(ui::audit::page),
        ),
        // Sign-in and sign-out are open: they are how a browser gets (or drops) an identity;
        // the callback checks the provider's answer, sign-out its session and CSRF token.
        route(
            Method::GET,
            "/ui/login",
            Console,
            Open,
            get(ui::login::login),
        ),
        route(
            Method::GET,
            "/ui/login/callback",
            Console,
            Open,
            get(ui::login::callback),
        ),
        route(
            Method::GET,
            ui::login::LOGOUT,
            Console,
            Open,
            get(ui::login::logout_form),
        ),
        route(
            Method::POST,
            ui::login::LOGOUT,
            Console,
            Open,
            post(ui::login::logout),
        ),
    ]
}

/// The router of every entry, each surface under its layers. The body limit covers all but
/// the agent API, which has its own.
pub(crate) fn router(app: Shared, max_body: usize) -> Router {
    let (mut open, mut agents, mut console) = (Router::new(), Router::new(), Router::new());
    for (route, handler) in entries() {
        let surface = match route.surface {
            Surface::Hook | Surface::Api | Surface::Health => &mut open,
            Surface::Agent => &mut agents,
            Surface::Console | Surface::Asset => &mut console,
        };
        // Before the handler: the access this entry names (so no route is without one).
        let door = Door {
            app: app.clone(),
            access: route.access,
            console: matches!(route.surface, Surface::Console | Surface::Asset),
        };
        let handler = handler.route_layer(axum::middleware::from_fn_with_state(door, require));
        // Two entries on one path (GET form, POST submit) merge into one method router.
        *surface = std::mem::take(surface).route(route.path, handler);
    }
    open.merge(ui::layered(console, app.clone()))
        .layer(DefaultBodyLimit::max(max_body))
        .merge(agents.layer(DefaultBodyLimit::max(agent::MAX_FINISH_BYTES)))
        .layer(axum::middleware::from_fn(respond::refuse_nul))
        .layer(axum::middleware::from_fn(respond::log_request))
        .with_state(app)
}

#[cfg(test)]
mod documented;

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn each_method_and_path_is_listed_once() {
        let mut seen = HashSet::new();
        for route in table() {
            assert!(
                seen.insert((route.method.clone(), route.path)),
                "{} {} is listed twice",
                route.method,
                route.path
            );
        }
    }

    #[test]
    fn a_routes_surface_follows_from_its_path() {
        for route in table() {
            let expected = match route.path {
                p if p.starts_with("/hooks/") => Surface::Hook,
                p if p.starts_with("/agent/") => Surface::Agent,
                p if p.starts_with("/ui/static/") => Surface::Asset,
                p if p == "/ui" || p.starts_with("/ui/") => Surface::Console,
                "/healthz" | "/metrics" | "/openapi.json" => Surface::Health,
                _ => Surface::Api,
            };
            assert_eq!(route.surface, expected, "{} {}", route.method, route.path);
        }
    }
}
