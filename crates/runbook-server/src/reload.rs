//! SIGHUP: `host serve` reads host.toml again. Every key that decides who may do what takes
//! effect: routes, webhook auth, the console's `[ui]` auth (its old credentials and their CSRF
//! tokens stop working), fleet node tokens, approver groups, playbooks' grants and limits
//! (from the next run on; running runs keep theirs), schedules (a removed one stops, an
//! added one starts) and the digests host.lock pins (`host lock --update`: a registry
//! playbook whose digest changed is loaded again, as pinned now, at its next run). Everything is built and checked first (secrets loaded, matchers and
//! templates compiled, schedules' playbooks found); on any error nothing changes and the
//! reason is logged.
//!
//! What a running server cannot apply is never passed over in silence. A change to a key
//! that decides access but cannot be swapped live (`[notify]`: its channels carry the
//! questions and vouch for the answers) refuses the whole reload, naming it; a change to one
//! that only a restart applies and that grants nothing (listen address, store, cache,
//! `[server]`, `[fleet]` timings, `max-concurrent`, breakers, `[[maintenance]]`) is named in
//! the "reloaded" line.

use std::sync::Arc;

use anyhow::{Context, Result};

use crate::app::{Live, Shared};
use crate::auth::Verifier;
use crate::config::{Config, FleetConfig, PluginConfig};
use crate::nodes::Fleet;

pub async fn on_sighup(app: Shared) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("SIGHUP cannot be caught: host.toml is reloaded only by a restart");
        return;
    };
    while hangups.recv().await.is_some() {
        // Certificates rotate on disk: new connections get the new one, open ones keep theirs.
        if let Some(certificates) = &app.tls {
            match certificates.reload() {
                Ok(()) => tracing::info!(
                    "TLS certificate reloaded from {:?}",
                    certificates.files().cert
                ),
                Err(e) => tracing::error!(
                    "TLS certificate not reloaded, the served one stays: {}",
                    crate::text::escape(&format!("{e:#}"))
                ),
            }
        }
        let reloaded = reload(&app).await;
        if let Ok(Reloaded { summary, .. }) = &reloaded {
            // Whoever sent the signal: a person or their deploy tool, on this machine.
            let event = runbook_core::access::NewAudit {
                act: runbook_core::access::AuditAct::ConfigReloaded,
                actor: "sighup".into(),
                proof: "signal".into(),
                source: format!("local@{}", runbook_runtime::notify::hostname()),
                target: None,
                detail: Some(summary.clone()),
            };
            crate::authz::record(&app, event).await;
        }
        match reloaded {
            Ok(Reloaded { summary, restart }) if restart.is_empty() => {
                tracing::info!("host.toml reloaded: {summary}")
            }
            Ok(Reloaded { summary, restart }) => {
                let keys = restart.join(", ");
                tracing::warn!(
                    "host.toml: {keys} changed; that takes a restart (the rest is applied)"
                );
                tracing::warn!(
                    "host.toml reloaded except {keys} (not applied until a restart): {summary}"
                )
            }
            Err(e) => tracing::error!(
                "host.toml not reloaded, the running config stays: {}",
                crate::text::escape(&format!("{e:#}"))
            ),
        }
    }
}

/// A reload that was applied: what it holds, and the changed keys a restart applies.
struct Reloaded {
    summary: String,
    restart: Vec<&'static str>,
}

async fn reload(app: &Shared) -> Result<Reloaded> {
    let host = app.dispatcher.host();
    let path = host
        .config
        .source
        .clone()
        .context("the server started without a config file: nothing to reload")?;
    let config = Config::load(&path)?;
    let changed = host.with_policy(|old| changed_keys(old, &config));
    let refused: Vec<&str> = changed
        .iter()
        .copied()
        .filter(|key| on_reload(key) == OnReload::Refused)
        .collect();
    anyhow::ensure!(
        refused.is_empty(),
        "{} changed, which decides who may do what and takes a restart to apply; nothing was \
         reloaded (restart `host serve`, or undo the change and send SIGHUP again)",
        refused.join(", ")
    );
    let live = Live::from_config(&config)?;
    // host.lock next to it: `host lock --update` takes effect with this reload.
    let pins = host.read_lock()?;
    let console = live.ui.as_ref().map_or("closed", Verifier::kind);
    let tokens = Fleet::tokens_of(&config.fleet)?;
    app.schedules.check(&config.schedules).await?;

    // Checked: now applied, all of it.
    *app.live.write().unwrap() = Arc::new(live);
    app.fleet.set_tokens(tokens);
    let schedules = app.schedules.replace(config.schedules.clone());
    let config = Arc::new(config);
    host.reload_policy(config.clone());
    let repinned = host.reload_pins(pins);
    app.dispatcher.forget(&repinned);
    if let Some(approvals) = host.approvals() {
        // A group may now post to a Telegram channel nobody polled.
        approvals.listen();
    }
    let mut summary = format!(
        "{} routes, {} webhook endpoints, console forms {console}, {} fleet nodes, {} approver \
         groups, {} playbooks configured, {} schedules",
        config.routes.len(),
        config.webhooks.len(),
        config.fleet.nodes.len(),
        config.approvers.len(),
        config.plugins.len(),
        config.schedules.len(),
    );
    if !repinned.is_empty() {
        summary.push_str(&format!(
            "; host.lock pins changed (loaded again at their next run): {}",
            repinned.join(", ")
        ));
    }
    for (what, names) in [
        ("started", &schedules.started),
        ("stopped", &schedules.stopped),
        ("restarted", &schedules.restarted),
    ] {
        if !names.is_empty() {
            summary.push_str(&format!("; schedules {what}: {}", names.join(", ")));
        }
    }
    let restart = changed
        .into_iter()
        .filter(|key| on_reload(key) == OnReload::Restart)
        .collect();
    Ok(Reloaded { summary, restart })
}

/// What a SIGHUP does with a key of host.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnReload {
    /// Takes effect at once.
    Applied,
    /// Decides who may do what but cannot be swapped in a running server: a change refuses
    /// the whole reload.
    Refused,
    /// Grants nothing; applied by a restart, and named when it changed.
    Restart,
}

/// Every key of host.toml as `changed_keys` names it, and what a reload does with it.
pub const KEYS: &[(&str, OnReload)] = &[
    ("[[route]]", OnReload::Applied),
    ("[webhooks]", OnReload::Applied),
    ("[ui]", OnReload::Applied),
    ("[roles]", OnReload::Applied),
    // Read at each audited act (the host's reloaded config).
    ("[audit]", OnReload::Applied),
    ("[fleet.nodes]", OnReload::Applied),
    ("[approvers]", OnReload::Applied),
    ("[plugins] grants and limits", OnReload::Applied),
    ("[[schedule]]", OnReload::Applied),
    ("[notify]", OnReload::Refused),
    ("[fleet] client-ca", OnReload::Refused),
    ("[fleet] node-auth", OnReload::Refused),
    // Checked when a playbook is loaded, and a server keeps its loaded playbooks: a key
    // removed must not leave a playbook it signed running until a restart.
    ("[trust]", OnReload::Refused),
    ("[plugins] trust-keys", OnReload::Refused),
    // Which bytes a name runs: pinned at load, like plugin-dirs.
    ("[plugins] source", OnReload::Restart),
    ("[registries]", OnReload::Restart),
    ("plugin-dirs", OnReload::Restart),
    ("cache-dir", OnReload::Restart),
    ("max-component-mib", OnReload::Restart),
    ("[digest]", OnReload::Restart),
    ("store", OnReload::Restart),
    ("store-connections", OnReload::Restart),
    ("admission-batch", OnReload::Restart),
    // Read once into the host's safety rails (runbook_runtime::safety).
    ("[[budget]]", OnReload::Restart),
    ("[server]", OnReload::Restart),
    ("[fleet] node-wait-secs / poll-secs", OnReload::Restart),
    (
        "[fleet] queue-limit / queue-limit-per-node",
        OnReload::Restart,
    ),
    ("[plugins] max-concurrent", OnReload::Restart),
    // The rails are built once at start (server/safety.rs); ad hoc windows need no reload.
    ("[[maintenance]]", OnReload::Restart),
    ("[plugins] breaker", OnReload::Restart),
];

fn on_reload(key: &str) -> OnReload {
    KEYS.iter()
        .find(|(k, _)| *k == key)
        .map(|(_, on)| *on)
        // A key without a place is refused rather than passed over.
        .unwrap_or(OnReload::Refused)
}

/// The keys whose value differs between the running config and the new one. Every field of
/// `Config` is taken apart here: a key added to the config does not compile until it is
/// compared (and `KEYS` says what a reload does with it).
fn changed_keys(old: &Config, new: &Config) -> Vec<&'static str> {
    let differs =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    let Config {
        plugin_dirs,
        cache_dir,
        max_component_mib,
        store,
        store_connections,
        admission_batch,
        notify,
        plugins,
        server,
        webhooks,
        fleet:
            FleetConfig {
                node_wait_secs,
                poll_secs,
                nodes,
                queue_limit,
                queue_limit_per_node,
                client_ca,
                node_auth,
            },
        ui,
        approvers,
        routes,
        schedules,
        maintenance,
        digest,
        budgets,
        roles,
        audit,
        trust,
        registries,
        source: _,
    } = new;
    let mut changed = Vec::new();
    let mut compare = |key: &'static str, a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| {
        if differs(a, b) {
            changed.push(key);
        }
    };
    compare("[[route]]", &old.routes, routes);
    compare("[webhooks]", &old.webhooks, webhooks);
    compare("[ui]", &old.ui, ui);
    compare("[roles]", &old.roles, roles);
    compare("[audit]", &old.audit, audit);
    compare("[fleet.nodes]", &old.fleet.nodes, nodes);
    compare("[fleet] client-ca", &old.fleet.client_ca, client_ca);
    // As written: what it implies when unset moves only with client-ca, refused above.
    compare("[fleet] node-auth", &old.fleet.node_auth, node_auth);
    compare("[approvers]", &old.approvers, approvers);
    compare("[[schedule]]", &old.schedules, schedules);
    compare("[[maintenance]]", &old.maintenance, maintenance);
    compare("[digest]", &old.digest, digest);
    compare("[trust]", &old.trust, trust);
    compare("[registries]", &old.registries, registries);
    compare("[notify]", &old.notify, notify);
    compare("[[budget]]", &old.budgets, budgets);
    compare("plugin-dirs", &old.plugin_dirs, plugin_dirs);
    compare("cache-dir", &old.cache_dir, cache_dir);
    compare(
        "max-component-mib",
        &old.max_component_mib,
        max_component_mib,
    );
    compare("store", &old.store, store);
    compare(
        "store-connections",
        &old.store_connections,
        store_connections,
    );
    compare("admission-batch", &old.admission_batch, admission_batch);
    compare("[server]", &old.server, server);
    compare(
        "[fleet] node-wait-secs / poll-secs",
        &(old.fleet.node_wait_secs, old.fleet.poll_secs),
        &(node_wait_secs, poll_secs),
    );
    compare(
        "[fleet] queue-limit / queue-limit-per-node",
        &(old.fleet.queue_limit, old.fleet.queue_limit_per_node),
        &(queue_limit, queue_limit_per_node),
    );
    let split = |plugins: &std::collections::BTreeMap<String, PluginConfig>| {
        let mut policy = Vec::new();
        let mut concurrency = Vec::new();
        let mut breakers = Vec::new();
        let mut sources = Vec::new();
        let mut trust = Vec::new();
        for (name, plugin) in plugins {
            let PluginConfig {
                max_concurrent,
                grants,
                deadline_secs,
                memory_mib,
                max_notifications,
                max_http_calls,
                breaker,
                source,
                trust_keys,
            } = plugin;
            breakers.push(format!("{name}: {breaker:?}"));
            sources.push(format!("{name}: {source:?}"));
            trust.push(format!("{name}: {trust_keys:?}"));
            policy.push(format!(
                "{name}: {grants:?} {deadline_secs:?} {memory_mib:?} {max_notifications:?} \
                 {max_http_calls:?}"
            ));
            concurrency.push(format!("{name}: {max_concurrent:?}"));
        }
        (policy, concurrency, breakers, sources, trust)
    };
    let (old_policy, old_concurrency, old_breakers, old_sources, old_trust) = split(&old.plugins);
    let (new_policy, new_concurrency, new_breakers, new_sources, new_trust) = split(plugins);
    compare("[plugins] source", &old_sources, &new_sources);
    compare("[plugins] trust-keys", &old_trust, &new_trust);
    compare("[plugins] breaker", &old_breakers, &new_breakers);
    compare("[plugins] grants and limits", &old_policy, &new_policy);
    compare(
        "[plugins] max-concurrent",
        &old_concurrency,
        &new_concurrency,
    );
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// host.toml text → Config, as `Config::load` parses it (without the file checks).
    fn parse(text: &str) -> Config {
        toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    const BASE: &str = r#"
plugin-dirs = ["plugins"]
[notify.pager]
kind = "webhook"
url = "http://127.0.0.1:1/in"
[webhooks.run]
auth = { kind = "bearer", token = { env = "A" } }
[ui]
auth = { kind = "basic", username = "oncall", password = { file = "ui-password" } }
[fleet.nodes.web01]
token = { env = "NODE" }
[approvers.oncall]
users = ["alice"]
[plugins.disk-full]
max-concurrent = 1
[plugins.disk-full.grants]
fs-meta = ["/"]
[[route]]
playbook = "disk-full"
[[schedule]]
cron = "@daily"
playbook = "disk-full"
"#;

    /// One edit per key of `KEYS`: the key it changes and the new host.toml text.
    fn edits() -> Vec<(&'static str, String)> {
        let edit = |from: &str, to: &str| {
            assert!(BASE.contains(from), "{from}");
            BASE.replacen(from, to, 1)
        };
        vec![
            (
                "[[route]]",
                edit(
                    "playbook = \"disk-full\"\n[[schedule]]",
                    "playbook = \"health-check\"\n[[schedule]]",
                ),
            ),
            ("[webhooks]", edit("env = \"A\"", "env = \"B\"")),
            (
                "[ui]",
                edit("file = \"ui-password\"", "file = \"new-password\""),
            ),
            ("[fleet.nodes]", edit("env = \"NODE\"", "env = \"NODE2\"")),
            (
                "[approvers]",
                edit("users = [\"alice\"]", "users = [\"bob\"]"),
            ),
            (
                "[plugins] grants and limits",
                edit("fs-meta = [\"/\"]", "fs-meta = [\"/var\"]"),
            ),
            (
                "[[schedule]]",
                edit("cron = \"@daily\"", "cron = \"@hourly\""),
            ),
            ("[notify]", edit("127.0.0.1:1", "127.0.0.1:2")),
            ("plugin-dirs", edit("[\"plugins\"]", "[\"other\"]")),
            ("cache-dir", format!("cache-dir = \"c\"\n{BASE}")),
            (
                "max-component-mib",
                format!("max-component-mib = 9\n{BASE}"),
            ),
            ("store", format!("store = \"x.sqlite3\"\n{BASE}")),
            (
                "[digest]",
                format!("{BASE}[digest]\nchannel = \"pager\"\ndaily-at = \"07:00\"\n"),
            ),
            (
                "store-connections",
                format!("store-connections = 3\n{BASE}"),
            ),
            ("admission-batch", format!("admission-batch = 3\n{BASE}")),
            ("[server]", format!("{BASE}[server]\nqueue-limit = 7\n")),
            (
                "[fleet] node-wait-secs / poll-secs",
                edit(
                    "[fleet.nodes.web01]",
                    "[fleet]\npoll-secs = 5\n[fleet.nodes.web01]",
                ),
            ),
            (
                "[fleet] queue-limit / queue-limit-per-node",
                edit(
                    "[fleet.nodes.web01]",
                    "[fleet]\nqueue-limit = 5\n[fleet.nodes.web01]",
                ),
            ),
            (
                "[plugins] max-concurrent",
                edit("max-concurrent = 1", "max-concurrent = 2"),
            ),
            (
                "[fleet] node-auth",
                edit(
                    "[fleet.nodes.web01]",
                    "[fleet]\nnode-auth = \"token\"\n[fleet.nodes.web01]",
                ),
            ),
            (
                "[fleet] client-ca",
                edit(
                    "[fleet.nodes.web01]",
                    "[fleet]\nclient-ca = \"nodes-ca.pem\"\n[fleet.nodes.web01]",
                ),
            ),
            (
                "[[maintenance]]",
                format!(
                    "{BASE}[[maintenance]]\nname = \"m\"\nnodes = [\"web01\"]\n\
                     cron = \"0 2 * * 6\"\nduration = \"2h\"\n"
                ),
            ),
            (
                "[plugins] breaker",
                edit(
                    "max-concurrent = 1",
                    "max-concurrent = 1\nbreaker = { failures = 3, within = \"15m\", \
                     cool-down = \"30m\" }",
                ),
            ),
            (
                "[roles]",
                format!("{BASE}\n[roles]\nviewer = [\"sre-all\"]\n"),
            ),
            ("[audit]", format!("{BASE}\n[audit]\nsinks = [\"pager\"]\n")),
            (
                "[trust]",
                format!("{BASE}\n[trust]\nkeys = [\"release.pub\"]\n"),
            ),
            (
                "[registries]",
                format!("{BASE}\n[registries.\"127.0.0.1:5000\"]\ninsecure = true\n"),
            ),
            (
                "[plugins] source",
                edit(
                    "max-concurrent = 1",
                    "max-concurrent = 1\nsource = \"oci://registry.example.com/p/disk-full:1\"",
                ),
            ),
            (
                "[plugins] trust-keys",
                edit(
                    "max-concurrent = 1",
                    "max-concurrent = 1\ntrust-keys = [\"release.pub\"]",
                ),
            ),
            (
                "[[budget]]",
                format!(
                    "{BASE}\n[[budget]]\nname = \"b\"\nactions = [\"docker.stop\"]\n\
                     per = \"global\"\nmax = 1\nwithin = \"1h\"\n"
                ),
            ),
        ]
    }

    #[test]
    fn every_key_is_placed_and_each_change_is_named_as_the_key_it_is() {
        let base = parse(BASE);
        assert_eq!(changed_keys(&base, &parse(BASE)), Vec::<&str>::new());
        let edits = edits();
        // The table and the edits cover each other: no key without a case, no case without a key.
        let mut placed: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
        let mut tried: Vec<&str> = edits.iter().map(|(k, _)| *k).collect();
        placed.sort();
        tried.sort();
        assert_eq!(placed, tried);
        for (key, text) in edits {
            assert_eq!(changed_keys(&base, &parse(&text)), [key], "{text}");
        }
    }

    #[test]
    fn what_decides_access_applies_or_refuses_the_reload_never_waits_for_a_restart() {
        // The keys that decide who may do what: each is applied, or refuses the reload.
        for key in [
            "[[route]]",
            "[webhooks]",
            "[ui]",
            "[fleet.nodes]",
            "[approvers]",
            "[plugins] grants and limits",
            "[[schedule]]",
            "[notify]",
        ] {
            assert_ne!(on_reload(key), OnReload::Restart, "{key}");
        }
        assert_eq!(on_reload("[notify]"), OnReload::Refused);
        assert_eq!(on_reload("a key nobody placed"), OnReload::Refused);
    }
}
