//! SIGHUP: `host serve` reads host.toml again and applies routes, webhook auth, fleet node
//! tokens, and playbooks' grants and limits (from the next run on; running runs keep theirs).
//! Everything is built and checked first (secrets loaded, matchers and templates compiled);
//! on any error nothing changes and the reason is logged. What only a restart changes (listen
//! address, store, plugin dirs, cache, `[server]`, `[fleet]` timings, notification channels) is
//! named in a warning when it differs.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::auth::Verifier;
use super::routing::Router as AlertRouter;
use super::{Shared, fleet::Fleet};
use crate::config::Config;

/// What a reload swaps for the webhook handlers.
pub struct Live {
    pub router: AlertRouter,
    pub verifiers: HashMap<String, Verifier>,
}

impl Live {
    pub fn from_config(config: &Config) -> Result<Live> {
        let router = AlertRouter::new(&config.routes)?;
        let mut verifiers = HashMap::new();
        for (name, hook) in &config.webhooks {
            let verifier =
                Verifier::from_config(&hook.auth).with_context(|| format!("[webhooks.{name}]"))?;
            verifiers.insert(name.clone(), verifier);
        }
        Ok(Live { router, verifiers })
    }
}

pub async fn on_sighup(app: Shared) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("SIGHUP cannot be caught: host.toml is reloaded only by a restart");
        return;
    };
    while hangups.recv().await.is_some() {
        match reload(&app) {
            Ok(summary) => tracing::info!("host.toml reloaded: {summary}"),
            Err(e) => tracing::error!(
                "host.toml not reloaded, the running config stays: {}",
                crate::text::escape(&format!("{e:#}"))
            ),
        }
    }
}

fn reload(app: &Shared) -> Result<String> {
    let host = app.dispatcher.host();
    let path = host
        .config
        .source
        .clone()
        .context("the server started without a config file: nothing to reload")?;
    let config = Config::load(&path)?;
    let live = Live::from_config(&config)?;
    let tokens = Fleet::tokens_of(&config.fleet)?;
    let restart_only = host.with_policy(|old| needs_restart(old, &config));
    if !restart_only.is_empty() {
        tracing::warn!(
            "host.toml: {} changed; that takes a restart (the rest is applied)",
            restart_only.join(", ")
        );
    }
    let summary = format!(
        "{} routes, {} webhook endpoints, {} fleet nodes, {} playbooks configured",
        config.routes.len(),
        live.verifiers.len(),
        tokens.len(),
        config.plugins.len()
    );
    *app.live.write().unwrap() = Arc::new(live);
    app.fleet.set_tokens(tokens);
    host.reload_policy(Arc::new(config));
    Ok(summary)
}

/// The keys whose new values a running server does not apply.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let differs =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    let mut changed = Vec::new();
    for (key, a, b) in [
        (
            "plugin-dirs",
            &old.plugin_dirs as &dyn std::fmt::Debug,
            &new.plugin_dirs as &dyn std::fmt::Debug,
        ),
        ("store", &old.store, &new.store),
        (
            "store-connections",
            &old.store_connections,
            &new.store_connections,
        ),
        ("cache-dir", &old.cache_dir, &new.cache_dir),
        (
            "max-component-mib",
            &old.max_component_mib,
            &new.max_component_mib,
        ),
        ("[server]", &old.server, &new.server),
        ("[notify]", &old.notify, &new.notify),
    ] {
        if differs(a, b) {
            changed.push(key);
        }
    }
    if old.fleet.node_wait_secs != new.fleet.node_wait_secs
        || old.fleet.poll_secs != new.fleet.poll_secs
    {
        changed.push("[fleet] node-wait-secs / poll-secs");
    }
    changed
}
