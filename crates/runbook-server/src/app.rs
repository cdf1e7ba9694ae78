//! The server's state, shared by every handler: the dispatcher and the run store, the fleet's
//! node tokens, the console's keys, the schedules firing, and what decides who may call as
//! host.toml last (re)loaded it. State only: the handlers import it, it imports none of them.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::auth::Verifier;
use crate::config::Config;
use crate::console::Console;
use crate::dispatch::Dispatcher;
use crate::nodes::Fleet;
use crate::routing::Router as AlertRouter;
use crate::schedule::Schedules;
use crate::store::Store as RunStore;

pub(crate) struct App {
    pub(crate) dispatcher: Arc<Dispatcher>,
    /// The run store: the server always has one (`serve` refuses to start without).
    pub(crate) store: Arc<RunStore>,
    pub(crate) fleet: Fleet,
    /// Routes, webhook auth and the console's `[ui]` auth as host.toml last (re)loaded them
    /// (SIGHUP).
    pub(crate) live: std::sync::RwLock<Arc<Live>>,
    pub(crate) console: Console,
    /// The `[[schedule]]`s firing, as host.toml last (re)loaded them.
    pub(crate) schedules: Schedules,
    /// `[server] tls`: the certificate served, re-read on SIGHUP.
    pub(crate) tls: Option<Arc<crate::tls::Certificates>>,
}

impl App {
    pub(crate) fn live(&self) -> Arc<Live> {
        self.live.read().unwrap().clone()
    }
}

pub(crate) type Shared = Arc<App>;

/// What a reload swaps for the request handlers: everything that decides who may call.
pub struct Live {
    pub router: AlertRouter,
    pub verifiers: HashMap<String, Verifier>,
    /// `[ui]`: who may use the console's forms (and read it); `None` closes the forms.
    pub ui: Option<Verifier>,
    /// The role `[ui]`'s credentials hold (default admin) and `[webhooks.api]`'s (viewer).
    pub ui_role: crate::config::Role,
    pub api_role: crate::config::Role,
    /// `[ui.oidc]`: sign-in with the identity provider; sessions count only while it is set.
    pub(crate) oidc: Option<Arc<crate::oidc::Oidc>>,
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
        let ui = crate::console::verifier(&config.ui).context("[ui]")?;
        let api_role = config.webhooks.get("api").and_then(|hook| hook.role);
        let oidc = match &config.ui.oidc {
            Some(oidc) => Some(Arc::new(crate::oidc::Oidc::new(oidc)?)),
            None => None,
        };
        Ok(Live {
            router,
            verifiers,
            ui,
            ui_role: config.ui.role.unwrap_or(crate::config::Role::Admin),
            api_role: api_role.unwrap_or(crate::config::Role::Viewer),
            oidc,
        })
    }
}
