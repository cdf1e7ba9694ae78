//! `host check`: every problem with the config and the plugins, one clear line each, so an
//! operator fixes them before an alert fires rather than during one.

use anstream::{eprintln, println};
use clap::Args;
use serde::Serialize;

use super::Globals;
use crate::bindings::Capability;
use crate::catalog;
use crate::commands::{Context, EXIT_FAILED};
use crate::config::{AuthConfig, Config};
use crate::run::Host;
use crate::style;

#[derive(Args)]
#[command(after_help = "Example:\n  host check --config host.toml")]
pub struct CheckArgs {
    #[arg(long)]
    json: bool,
}

impl CheckArgs {
    pub async fn run(self, globals: Globals) -> anyhow::Result<u8> {
        let ctx = Context::load(globals)?;
        let mut report = check(&ctx.host).await;
        if let Some(location) = &ctx.store {
            let store = check_store(location, ctx.connections).await;
            if !store.ok {
                report
                    .problems
                    .push(format!("run store {}: {}", store.location, store.detail));
            }
            report.warnings.extend(store.warning.clone());
            report.store = Some(store);
        }
        if self.json {
            println!("{}", crate::text::json_for_terminal(&report)?);
        } else {
            print_report(&report);
        }
        Ok(if report.problems.is_empty() {
            0
        } else {
            EXIT_FAILED
        })
    }
}

/// The report for a terminal: playbooks on stdout, problems and warnings on stderr.
fn print_report(report: &CheckReport) {
    println!(
        "config: {}",
        report
            .config
            .as_deref()
            .unwrap_or("(none: built-in defaults)")
    );
    if let Some(store) = &report.store {
        println!(
            "store: {} {} · {}",
            store.backend, store.location, store.detail
        );
    }
    println!("serve: {}", report.serve);
    for p in &report.playbooks {
        println!(
            "  {} {:<14} {} · {}",
            if p.ok { style::ok() } else { style::err() },
            crate::text::escape(&p.name),
            crate::text::escape(&p.origin),
            crate::text::escape(&p.detail)
        );
    }
    for problem in &report.problems {
        eprintln!("problem: {problem}");
    }
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    if report.problems.is_empty() && report.warnings.is_empty() {
        println!("all good");
    }
}

#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub config: Option<String>,
    /// The run store and whether it answers (filled in by the caller, which knows where it is).
    pub store: Option<StoreCheck>,
    /// How `host serve` is reached: its listen address, HTTP or HTTPS (and mutual TLS).
    pub serve: String,
    pub playbooks: Vec<PlaybookCheck>,
    pub problems: Vec<String>,
    /// What works but not as an operator would expect (a file named otherwise than its
    /// playbook, the console closed to browsers): the exit status stays 0, but `host check`
    /// does not say "all good" while there is one.
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct PlaybookCheck {
    pub name: String,
    pub origin: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct StoreCheck {
    /// sqlite or postgres.
    pub backend: &'static str,
    /// The file, or the URL with its password masked.
    pub location: String,
    pub ok: bool,
    /// The round trip's time, or why the store cannot be used.
    pub detail: String,
    /// How the link to a database server is protected (TLS, verified), once it answered.
    pub link: Option<String>,
    pub encrypted: Option<bool>,
    pub verified: Option<bool>,
    #[serde(skip)]
    warning: Option<String>,
}

/// Opens the store (creating and migrating it like any command that stores runs) and times a
/// round trip.
pub async fn check_store(
    location: &crate::store::Location,
    connections: Option<usize>,
) -> StoreCheck {
    let backend = match location {
        crate::store::Location::Sqlite(_) => "sqlite",
        crate::store::Location::Postgres(_) => "postgres",
    };
    let answer = async {
        let store = crate::store::open(location, connections).await?;
        let took = store.ping().await?;
        anyhow::Ok((took, store.link_security()))
    };
    let (ok, detail, link) = match answer.await {
        Ok((took, link)) => (
            true,
            format!("answers in {:.1} ms", took.as_secs_f64() * 1e3),
            link,
        ),
        Err(e) => (false, format!("{e:#}"), None),
    };
    StoreCheck {
        backend,
        location: location.describe(),
        ok,
        detail: match &link {
            Some(link) => format!("{detail} · {link}"),
            None => detail,
        },
        encrypted: link.as_ref().map(|l| l.encrypted),
        verified: link.as_ref().map(|l| l.verified),
        warning: link.as_ref().and_then(|l| l.warning()),
        link: link.map(|l| l.to_string()),
    }
}

pub async fn check(host: &Host) -> CheckReport {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for dir in host.catalog.dirs() {
        match catalog::wasm_files(dir) {
            Err(e) => problems.push(format!("plugin dir {}: {e}", dir.display())),
            Ok(files) => {
                for file in files {
                    let stem = file.file_stem().unwrap_or_default().to_string_lossy();
                    if let Err(e) = catalog::check_name(&stem) {
                        problems.push(format!("{}: not loaded: {e}", file.display()));
                    }
                }
            }
        }
    }

    let mut playbooks = Vec::new();
    let named = host.named_files().await;
    let entries = host.catalog.index(named.clone(), host.registry_entries());
    // Every file under the name it describes, to say which ones a name's winner hides. Files
    // that cannot be described are reported below, with the entry that failed to load.
    let mut files_by_name: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (file, name) in named {
        let Some(name) = name.filter(|n| catalog::check_name(n).is_ok()) else {
            continue;
        };
        let stem = catalog::stem(&file);
        if name != stem {
            warnings.push(format!(
                "{}: the file is named {stem:?} but describe() names the playbook {name:?}; \
                 grants, routes and `host run` use {name:?} (rename the file to {name}.wasm to \
                 avoid the confusion)",
                file.display()
            ));
        }
        files_by_name
            .entry(name)
            .or_default()
            .push(file.display().to_string());
    }
    for (name, files) in &files_by_name {
        if files.len() > 1 {
            problems.push(format!(
                "{} files describe the playbook {name:?}: {}; only the last one is used",
                files.len(),
                files.join(", ")
            ));
        }
    }
    for entry in &entries {
        let (ok, detail) = match host.prepare_entry(entry).await {
            Ok(prepared) => {
                let d = &prepared.description;
                if d.name != entry.name && catalog::check_name(&d.name).is_ok() {
                    problems.push(format!(
                        "{}: describe() says its name is {:?} but it is installed as {:?}",
                        entry.origin, d.name, entry.name
                    ));
                } else if d.name != entry.name {
                    problems.push(format!(
                        "{}: describe() says its name is {:?}, which is not a playbook name \
                         (1 to {} ASCII letters, digits, '-' or '_'); it is installed as {:?}",
                        entry.origin,
                        d.name,
                        catalog::MAX_NAME_LEN,
                        entry.name
                    ));
                }
                let wants: Vec<&str> = d.capabilities.iter().map(Capability::as_str).collect();
                (true, format!("{} · wants {}", d.summary, wants.join(", ")))
            }
            Err(e) => {
                let reason = format!("{e:#}");
                problems.push(reason.clone());
                (false, reason)
            }
        };
        playbooks.push(PlaybookCheck {
            name: entry.name.clone(),
            origin: entry.origin.to_string(),
            ok,
            detail,
        });
    }

    let channels = host.notifier();
    for (channel, problem) in channels.problems() {
        problems.push(format!("[notify.{channel}]: {problem}"));
    }
    for (name, plugin) in &host.config.plugins {
        if !entries.iter().any(|e| &e.name == name) {
            problems.push(format!(
                "[plugins.{name}]: no playbook named {name:?} is installed"
            ));
        }
        let Some(grants) = &plugin.grants else {
            continue;
        };
        for channel in &grants.notify {
            if !channels.names().contains(&channel.as_str()) {
                problems.push(format!(
                    "[plugins.{name}.grants] notify: channel {channel:?} is not configured (configured: {})",
                    channels.names().join(", ")
                ));
            }
        }
        for origin in &grants.http {
            if let Err(e) = crate::caps::http::OriginGrant::parse(origin) {
                problems.push(format!("[plugins.{name}.grants] http: {e}"));
            }
        }
        for host in &grants.http_private {
            let named = grants
                .http
                .iter()
                .filter_map(|o| crate::caps::http::OriginGrant::parse(o).ok())
                .any(|o| o.host().eq_ignore_ascii_case(host.trim_end_matches('.')));
            if !named {
                problems.push(format!(
                    "[plugins.{name}.grants] http-private: {host:?} is not the host of any granted http origin"
                ));
            }
        }
        for rule in &grants.docker {
            for glob in &rule.containers {
                if let Err(e) = globset::Glob::new(glob) {
                    problems.push(format!(
                        "[plugins.{name}.grants] docker containers {glob:?}: {e}"
                    ));
                }
            }
        }
        let roots = grants.fs_read.iter().map(|r| ("fs-read", r));
        for (key, root) in roots.chain(grants.fs_meta.iter().map(|r| ("fs-meta", r))) {
            if let Err(e) = root.canonicalize() {
                problems.push(format!(
                    "[plugins.{name}.grants] {key}: {}: {e}",
                    root.display()
                ));
            }
        }
    }

    for (i, route) in host.config.routes.iter().enumerate() {
        let at = format!("[[route]] #{} ({})", i + 1, route.playbook);
        for matcher in &route.matchers {
            if let Err(e) = crate::server::Matcher::parse(matcher) {
                problems.push(format!("{at}: {e}"));
            }
        }
        match entries.iter().find(|e| e.name == route.playbook) {
            // Runs on a node with the node's playbooks: the server need not have it.
            None if route.node.is_some() => {}
            None => problems.push(format!(
                "{at}: no playbook named {:?} is installed",
                route.playbook
            )),
            Some(_) => {
                if let Ok(prepared) = host.prepare(&route.playbook).await {
                    for key in route.params.keys() {
                        if !prepared.description.params.iter().any(|p| &p.name == key) {
                            problems
                                .push(format!("{at}: {} has no parameter {key:?}", route.playbook));
                        }
                    }
                }
            }
        }
    }
    for schedule in &host.config.schedules {
        let at = format!("[[schedule]] {}", schedule.name());
        if !entries.iter().any(|e| e.name == schedule.playbook) {
            problems.push(format!(
                "{at}: no playbook named {:?} is installed",
                schedule.playbook
            ));
        } else if let Ok(prepared) = host.prepare(&schedule.playbook).await {
            for key in schedule.params.keys() {
                if !prepared.description.params.iter().any(|p| &p.name == key) {
                    problems.push(format!(
                        "{at}: {} has no parameter {key:?}",
                        schedule.playbook
                    ));
                }
            }
        }
    }
    // Routes are reached only through /hooks/alertmanager, which answers 401 to everything
    // while it has no auth configured.
    if !host.config.routes.is_empty() && !host.config.webhooks.contains_key("alertmanager") {
        problems.push(format!(
            "[[route]]: {} route(s) but no [webhooks.alertmanager] auth, so every alert gets \
             401; add [webhooks.alertmanager] with auth = {{ kind = \"bearer\", token = {{ file = \"…\" }} }} \
             (what Alertmanager's http_config sends), or auth = {{ kind = \"none\" }} on a \
             trusted network",
            host.config.routes.len()
        ));
    }
    for (name, hook) in &host.config.webhooks {
        if !matches!(name.as_str(), "alertmanager" | "run" | "api") {
            problems.push(format!(
                "[webhooks.{name}]: unknown endpoint (alertmanager, run or api)"
            ));
        }
        if let Err(e) = crate::server::Verifier::from_config(&hook.auth) {
            problems.push(format!("[webhooks.{name}]: {e:#}"));
        }
    }

    if let Err(e) = crate::server::check_fleet(&host.config.fleet) {
        problems.push(format!("{e:#}"));
    }
    if let Err(e) = crate::server::check_ui(&host.config.ui) {
        problems.push(format!("[ui]: {e:#}"));
    }
    warnings.extend(console_closed(&host.config));
    let listen = &host.config.server.listen;
    let serve = match crate::server::check_tls(&host.config) {
        Some(Err(e)) => {
            problems.push(format!("[server] tls: {e:#}"));
            format!("{listen}: HTTPS, but its certificate does not load")
        }
        Some(Ok(how)) => format!("{listen}: {how}"),
        None => {
            warnings.extend(plain_listen(&host.config.server));
            format!("{listen}: plain HTTP")
        }
    };
    if let Err(e) = crate::server::AlertRouter::new(&host.config.routes) {
        problems.push(format!("{e:#}"));
    }

    CheckReport {
        config: host.config.source.as_ref().map(|p| p.display().to_string()),
        store: None,
        serve,
        playbooks,
        problems,
        warnings,
    }
}

/// Why a browser cannot use the console (`/ui` of `host serve`), naming the section that keeps
/// it closed and what to set; `None` when it can, or when the config says nothing about the
/// server's auth (a host used from the CLI only). A page is read with the `[ui]` or the
/// `[webhooks.api]` credentials, a form needs `[ui]`'s; a browser sends basic auth (or none),
/// never a bearer token or a signature.
pub fn console_closed(config: &Config) -> Option<String> {
    if config.ui.auth.is_none() && config.webhooks.is_empty() {
        return None;
    }
    let browser = |auth: Option<&AuthConfig>| {
        matches!(auth, Some(AuthConfig::None | AuthConfig::Basic { .. }))
    };
    let ui = config.ui.auth.as_ref();
    let api = config.webhooks.get("api").map(|w| &w.auth);
    if browser(ui) {
        return None;
    }
    let fix = "set [ui] auth = { kind = \"basic\", username = \"…\", password = { env = \"…\" } } \
               (a browser asks for it)";
    let ui_says = match ui {
        None => "there is no [ui] auth".to_string(),
        Some(auth) => format!(
            "[ui] uses {} auth, which a browser cannot send",
            auth_kind(auth)
        ),
    };
    Some(if browser(api) {
        format!(
            "the console's forms (run, retry, approve) are closed to browsers: {ui_says}; {fix}"
        )
    } else {
        let api_says = match api {
            None => "there is no [webhooks.api] auth".to_string(),
            Some(auth) => format!(
                "[webhooks.api] uses {} auth, which a browser cannot send",
                auth_kind(auth)
            ),
        };
        format!("the console (/ui) is closed to browsers: {api_says}, and {ui_says}; {fix}")
    })
}

fn auth_kind(auth: &AuthConfig) -> &'static str {
    match auth {
        AuthConfig::None => "none",
        AuthConfig::Bearer { .. } => "bearer",
        AuthConfig::Basic { .. } => "basic",
        AuthConfig::HmacSha256 { .. } => "hmac-sha256",
        AuthConfig::StandardWebhooks { .. } => "standard-webhooks",
    }
}

/// A listen address other machines reach, without TLS: every token and password crosses the
/// network readable.
fn plain_listen(server: &crate::config::ServerConfig) -> Option<String> {
    let addr: std::net::SocketAddr = server.listen.parse().ok()?;
    (!addr.ip().is_loopback()).then(|| {
        format!(
            "[server] listen = {:?} is reachable from other machines in plain HTTP: webhook \
             and agent tokens, console passwords and timelines cross the network readable; \
             set [server] tls = {{ cert = \"…\", key = \"…\" }} (or keep a TLS proxy in front)",
            server.listen
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        toml::from_str(text).unwrap()
    }

    const BEARER: &str = "{ kind = \"bearer\", token = { env = \"T\" } }";
    const BASIC: &str = "{ kind = \"basic\", username = \"u\", password = { env = \"P\" } }";

    #[test]
    fn the_section_that_keeps_the_console_closed_is_named() {
        // Nothing about the server: a CLI host, nothing to say.
        assert_eq!(console_closed(&config("")), None);
        // [ui] basic alone opens it (pages and forms).
        assert_eq!(
            console_closed(&config(&format!("[ui]\nauth = {BASIC}"))),
            None
        );
        let none = "{ kind = \"none\" }";
        assert_eq!(
            console_closed(&config(&format!("[ui]\nauth = {none}"))),
            None
        );
        // The README's bearer API and no [ui]: closed, and why.
        let closed = console_closed(&config(&format!("[webhooks.api]\nauth = {BEARER}"))).unwrap();
        assert!(
            closed.contains("closed to browsers")
                && closed.contains("[webhooks.api] uses bearer auth, which a browser cannot send")
                && closed.contains("there is no [ui] auth")
                && closed.contains("set [ui] auth = { kind = \"basic\""),
            "{closed}"
        );
        // [ui] bearer: the forms are closed even where pages open.
        let forms = console_closed(&config(&format!(
            "[webhooks.api]\nauth = {BASIC}\n[ui]\nauth = {BEARER}"
        )))
        .unwrap();
        assert!(
            forms.contains("forms") && forms.contains("[ui] uses bearer auth"),
            "{forms}"
        );
        // A hook configured, no api and no [ui]: closed.
        let hooks = console_closed(&config(&format!("[webhooks.run]\nauth = {BEARER}"))).unwrap();
        assert!(hooks.contains("there is no [webhooks.api] auth"), "{hooks}");
    }
}
