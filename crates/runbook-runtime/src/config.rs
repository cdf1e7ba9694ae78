//! `host.toml`: where plugins live, the compile cache, notification channels, and per-plugin
//! grants and limits. Unknown keys are errors (with line and column) so a typo never silently
//! widens or narrows a grant.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::notify::ChannelConfig;
use crate::policy::{Grants, Limits};
/// Secrets are their own module, below `config`: notify and approval name them too.
pub use crate::secret::Secret;
pub use runbook_core::access::{Role, Roles};

mod fleet;
mod ui;
pub use fleet::{FleetConfig, NodeAuth, NodeConfig};
pub use ui::{OidcConfig, RolesConfig, UiConfig};

/// Largest `memory-mib` a plugin may be given (1 TiB).
pub const MAX_MEMORY_MIB: usize = 1 << 20;

/// Looked up when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "host.toml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Directories of `*.wasm` playbooks; a file named like a built-in overrides it.
    #[serde(default)]
    pub plugin_dirs: Vec<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    /// Largest component file loaded, in MiB (default 128: Python components are ~40 MB).
    pub max_component_mib: Option<u64>,
    /// The run store: a SQLite file, or a PostgreSQL URL (`postgres://user@host/db`).
    pub store: Option<String>,
    /// Connections one host keeps to a PostgreSQL store. More than the database's cores
    /// across all replicas only adds queueing inside the database (its tail latency).
    pub store_connections: Option<usize>,
    /// Most admissions one PostgreSQL transaction decides together (group commit): larger
    /// batches give more runs per second, at the cost of the batch's time in p99.
    pub admission_batch: Option<usize>,
    #[serde(default)]
    pub notify: BTreeMap<String, ChannelConfig>,
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginConfig>,
    #[serde(default)]
    pub server: ServerConfig,
    /// Auth per webhook endpoint: `alertmanager` (/hooks/alertmanager), `run` (/hooks/run/…).
    #[serde(default)]
    pub webhooks: BTreeMap<String, WebhookConfig>,
    /// Nodes whose agents may take runs (`host agent`), and how long a run waits for one.
    #[serde(default)]
    pub fleet: FleetConfig,
    /// The console's auth (`/ui`): its credentials read every page and use the forms (run,
    /// retry, answer); `[webhooks.api]`'s read it too.
    #[serde(default)]
    pub ui: UiConfig,
    /// Who may answer a playbook's questions (`approval.ask`), per group, and where the
    /// questions go.
    #[serde(default)]
    pub approvers: BTreeMap<String, crate::approval::ApproverGroup>,
    /// Alert label matchers → playbook, in order.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    /// Playbooks run on a cron expression by `host serve` (schedule.rs).
    #[serde(default, rename = "schedule")]
    pub schedules: Vec<crate::schedule::ScheduleConfig>,
    /// Windows in which matching alerts and scheduled runs are recorded `suppressed`.
    #[serde(default, rename = "maintenance")]
    pub maintenance: Vec<crate::safety::MaintenanceConfig>,
    /// The end-of-day report and weekly summary `host serve` sends (digest.rs).
    pub digest: Option<crate::digest::DigestConfig>,
    /// Action budgets (`[[budget]]`, crate::safety): how many mutating calls of some kinds per
    /// container, node, playbook or overall within a window, across playbooks and replicas.
    #[serde(default, rename = "budget")]
    pub budgets: Vec<crate::safety::BudgetConfig>,
    /// Which role each identity-provider group gives (`viewer = ["sre-all"]`).
    #[serde(default)]
    pub roles: RolesConfig,
    /// Where audit events are shipped besides the store (`sinks = ["audit-file"]`).
    #[serde(default)]
    pub audit: crate::audit::AuditConfig,
    /// Public keys (cosign's PEM format, `host keygen`) that must have signed every playbook
    /// that is not built in: registry playbooks without their own `trust-keys`, and plugin-dir
    /// files, which carry no signature and are then refused.
    #[serde(default)]
    pub trust: TrustConfig,
    /// How to reach each registry (`[registries."127.0.0.1:5000"] insecure = true`).
    #[serde(default)]
    pub registries: BTreeMap<String, crate::oci::RegistryOptions>,
    /// The file this was read from, for messages and relative paths.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TrustConfig {
    #[serde(default)]
    pub keys: Vec<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ServerConfig {
    pub listen: String,
    /// Runs executing at once, over all playbooks; the rest wait in the queue.
    pub max_concurrent_runs: usize,
    /// Runs waiting for this server and its replicas beyond this are refused with 503 and
    /// Retry-After (runs waiting for a fleet node count against `[fleet]` queue-limit).
    pub queue_limit: usize,
    /// The same alert (fingerprint + startsAt) for the same playbook within this window gets
    /// the existing run.
    pub dedup_window_secs: u64,
    /// Resolved alerts are recorded; with this they also start their route's playbook.
    pub run_resolved: bool,
    /// On SIGTERM, how long running runs may take to finish before they are marked interrupted.
    pub shutdown_grace_secs: u64,
    pub max_body_bytes: usize,
    /// A running run is held under a lease its process renews every sixth of it; a process
    /// that stops renewing (killed, cut off from the store) loses its runs to `lost` after it.
    pub lease_secs: u64,
    /// Where people reach this server (`https://runbooks.example.com`): run ids in
    /// notifications link to `<public-url>/ui/runs/<id>`.
    pub public_url: Option<String>,
    /// `tls = { cert = "server.pem", key = "server.key" }`: serve HTTPS (HTTP/1.1 and
    /// HTTP/2); the files are read again on SIGHUP.
    pub tls: Option<ServerTls>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServerTls {
    /// PEM: the server's certificate, then any intermediates.
    pub cert: PathBuf,
    /// PEM: its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl ServerConfig {
    pub fn lease(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.lease_secs.max(1))
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9095".into(),
            max_concurrent_runs: 8,
            queue_limit: 256,
            dedup_window_secs: 3600,
            run_resolved: false,
            shutdown_grace_secs: 30,
            max_body_bytes: 1 << 20,
            lease_secs: 30,
            public_url: None,
            tls: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WebhookConfig {
    pub auth: AuthConfig,
    /// `[webhooks.api]` only: the role its credentials hold on the API and the console
    /// [default: viewer, a read token]; hooks answer to their own auth, not to roles.
    pub role: Option<Role>,
}

/// How a webhook proves who sent it. Secrets are named (env var or file), never inlined.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AuthConfig {
    /// Accept anything: only for a listener nobody else can reach.
    None,
    Bearer {
        token: Secret,
    },
    Basic {
        username: String,
        password: Secret,
    },
    /// GitHub's `X-Hub-Signature-256: sha256=<hex HMAC of the body>`.
    HmacSha256 {
        secret: Secret,
    },
    /// standardwebhooks.com: webhook-id, webhook-timestamp, webhook-signature (v1,<base64>).
    StandardWebhooks {
        secret: Secret,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RouteConfig {
    /// Alertmanager matchers: `name="value"`, `name!="value"`, `name=~"regex"`, `name!~"regex"`.
    #[serde(default)]
    pub matchers: Vec<String>,
    pub playbook: String,
    /// Parameters; `{{ labels.x }}` and `{{ annotations.x }}` are filled from the alert.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// No second run for the same playbook and alert within this many seconds.
    pub cooldown_secs: Option<u64>,
    /// Keep matching later routes after this one.
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    #[serde(default)]
    pub dry_run: bool,
    /// P1–P4 for runs of this route, over the alert's `severity` label.
    pub severity: Option<String>,
    /// The node whose agent runs it: a name, or `{{ labels.instance | host }}` (the label
    /// without its port). Absent: the server runs it.
    pub node: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PluginConfig {
    /// Runs of this playbook executing at once (default 2).
    pub max_concurrent: Option<usize>,
    /// Replaces the built-in default grants entirely.
    pub grants: Option<Grants>,
    pub deadline_secs: Option<u64>,
    pub memory_mib: Option<usize>,
    pub max_notifications: Option<u64>,
    pub max_http_calls: Option<u64>,
    /// Opens after repeated failed or escalated runs: new runs are recorded `held`.
    pub breaker: Option<crate::safety::BreakerConfig>,
    /// `oci://REGISTRY/REPO:TAG` (or `@sha256:…`): the playbook comes from a registry, pinned
    /// in host.lock to the digest the tag had when first resolved.
    pub source: Option<String>,
    /// Keys one of which must have signed this playbook (replaces `[trust] keys` for it).
    pub trust_keys: Option<Vec<PathBuf>>,
}

impl Config {
    /// Reads `path`; relative paths inside are taken relative to the file's directory.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        Config::parse(&text, path)
    }

    /// `text` as the file `path` would be read: relative paths inside are taken relative to
    /// `path`'s directory, and every check `load` makes is made.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        // Errors quote the input (a TOML error shows the offending line): the message goes to
        // a terminal, so no control character of the file's may ride in it.
        Self::parse_raw(text, path).map_err(|e| {
            anyhow::anyhow!("{}", crate::text::escape_keeping_lines(&format!("{e:#}")))
        })
    }

    fn parse_raw(text: &str, path: &Path) -> Result<Config> {
        let mut config: Config =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for dir in &mut config.plugin_dirs {
            *dir = base.join(&*dir);
        }
        if let Some(path) = &mut config.cache_dir {
            *path = base.join(&*path);
        }
        if let Some(tls) = &mut config.server.tls {
            tls.cert = base.join(&tls.cert);
            tls.key = base.join(&tls.key);
        }
        if let Some(ca) = &mut config.fleet.client_ca {
            *ca = base.join(&*ca);
            anyhow::ensure!(
                config.server.tls.is_some(),
                "{}: [fleet] client-ca needs [server] tls: client certificates travel in TLS",
                path.display()
            );
        }
        // A database URL stays as it is; a file is relative to the config.
        if let Some(store) = &mut config.store
            && let crate::store::Location::Sqlite(file) = crate::store::Location::parse(store)
        {
            *store = base.join(file).to_string_lossy().into_owned();
        }
        for key in &mut config.trust.keys {
            *key = base.join(&*key);
        }
        for options in config.registries.values_mut() {
            if let Some(ca) = &mut options.ca_file {
                *ca = base.join(&*ca);
            }
        }
        for (name, plugin) in config.plugins.iter_mut() {
            for key in plugin.trust_keys.iter_mut().flatten() {
                *key = base.join(&*key);
            }
            if let Some(source) = &plugin.source {
                crate::catalog::check_name(name)
                    .map_err(|e| anyhow::anyhow!("{}: [plugins.{name}]: {e}", path.display()))?;
                crate::oci::ArtifactRef::parse(source).map_err(|e| {
                    anyhow::anyhow!("{}: [plugins.{name}] source: {e}", path.display())
                })?;
            }
            if let Some(grants) = &mut plugin.grants {
                for root in grants.fs_read.iter_mut().chain(&mut grants.fs_meta) {
                    *root = base.join(&*root);
                }
            }
        }
        // A route names a playbook; a path there would run a file outside every plugin dir.
        for (i, route) in config.routes.iter().enumerate() {
            crate::catalog::check_name(&route.playbook).map_err(|e| {
                anyhow::anyhow!("{}: [[route]] #{}: playbook {e}", path.display(), i + 1)
            })?;
        }
        let mut names = std::collections::HashSet::new();
        for (i, schedule) in config.schedules.iter().enumerate() {
            let at = || format!("{}: [[schedule]] #{}", path.display(), i + 1);
            schedule
                .check()
                .map_err(|e| anyhow::anyhow!("{}: {e}", at()))?;
            // The name keys the schedule's firings in the store: two alike would share them.
            if !names.insert(schedule.name()) {
                anyhow::bail!(
                    "{}: another schedule is named {:?}; give each its own `name`",
                    at(),
                    schedule.name()
                );
            }
        }
        let mut windows = std::collections::HashSet::new();
        for (i, window) in config.maintenance.iter().enumerate() {
            let at = || format!("{}: [[maintenance]] #{}", path.display(), i + 1);
            window
                .check()
                .map_err(|e| anyhow::anyhow!("{}: {e}", at()))?;
            if !windows.insert(window.name.as_str()) {
                anyhow::bail!("{}: another window is named {:?}", at(), window.name);
            }
        }
        for (name, plugin) in &config.plugins {
            let name = crate::text::escape(name);
            // In bytes it must fit a u64 exactly: a wrapped shift would cap far below it.
            if let Some(mib) = plugin.memory_mib
                && mib > MAX_MEMORY_MIB
            {
                anyhow::bail!(
                    "{}: [plugins.{name}] memory-mib = {mib}: at most {MAX_MEMORY_MIB} (1 TiB)",
                    path.display()
                );
            }
            if let Some(breaker) = &plugin.breaker {
                breaker.check().map_err(|e| {
                    anyhow::anyhow!("{}: [plugins.{name}] breaker: {e}", path.display())
                })?;
            }
        }
        if let Some(digest) = &config.digest {
            let channels: Vec<&str> = config.notify.keys().map(String::as_str).collect();
            digest
                .check(&channels)
                .map_err(|e| anyhow::anyhow!("{}: [digest]: {e}", path.display()))?;
        }
        if let Some(oidc) = &config.ui.oidc {
            oidc.check()
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        }
        crate::approval::check_groups(&config.approvers, &config.notify)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        for name in config.fleet.nodes.keys() {
            crate::node::check_node_name(name).map_err(|e| {
                let name = crate::text::escape(name);
                anyhow::anyhow!("{}: [fleet.nodes.{name}]: {e}", path.display())
            })?;
        }
        config
            .fleet
            .check_node_auth()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        crate::safety::effective(&config.budgets)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// `--config` if given, else `./host.toml` if present, else built-in defaults.
    pub fn discover(explicit: Option<&Path>) -> Result<Config> {
        match explicit {
            Some(path) => Config::load(path),
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                Config::load(Path::new(DEFAULT_CONFIG_FILE))
            }
            None => Ok(Config::default()),
        }
    }

    /// The config file, every secret file it names and the files notification channels write
    /// (every run's messages): state of the host that no fs-read grant may reach.
    pub fn host_files(&self) -> Vec<PathBuf> {
        use crate::notify::ChannelConfig as C;
        let mut secrets: Vec<&Secret> = Vec::new();
        let mut written = Vec::new();
        secrets.extend(self.fleet.nodes.values().filter_map(|n| n.token.as_ref()));
        secrets.extend(self.ui.oidc.as_ref().map(|o| &o.client_secret));
        for hook in self.webhooks.values() {
            match &hook.auth {
                AuthConfig::None => {}
                AuthConfig::Bearer { token: s }
                | AuthConfig::Basic { password: s, .. }
                | AuthConfig::HmacSha256 { secret: s }
                | AuthConfig::StandardWebhooks { secret: s } => secrets.push(s),
            }
        }
        for channel in self.notify.values() {
            match channel {
                C::Slack {
                    webhook_url,
                    signing_secret,
                    ..
                } => {
                    secrets.push(webhook_url);
                    secrets.extend(signing_secret);
                }
                C::Telegram { bot_token: s, .. } | C::Pagerduty { routing_key: s, .. } => {
                    secrets.push(s)
                }
                C::Webhook { signing_secret, .. } => secrets.extend(signing_secret),
                C::Email { password, .. } => secrets.extend(password),
                C::File { path } => written.push(path.clone()),
                C::Stdout | C::Stderr => {}
            }
        }
        self.source
            .iter()
            .cloned()
            .chain(secrets.into_iter().filter_map(|s| s.file.clone()))
            .chain(written)
            .collect()
    }

    /// The operator's grants for a plugin, else the built-in defaults (built-ins only).
    pub fn grants_for(&self, name: &str, builtin: bool) -> Grants {
        if let Some(grants) = self.plugins.get(name).and_then(|p| p.grants.clone()) {
            return grants;
        }
        if builtin {
            Grants::builtin_default(name).unwrap_or_default()
        } else {
            Grants::default()
        }
    }

    /// Keys one of which must have signed the non-built-in playbook `name` (none: no
    /// signature required).
    pub fn trust_keys_for(&self, name: &str) -> &[PathBuf] {
        match self.plugins.get(name).and_then(|p| p.trust_keys.as_deref()) {
            Some(keys) => keys,
            None => &self.trust.keys,
        }
    }

    /// `[plugins.X] source` of every registry playbook.
    pub fn registry_sources(&self) -> Vec<(String, crate::oci::ArtifactRef)> {
        self.plugins
            .iter()
            .filter_map(|(name, p)| {
                let source = crate::oci::ArtifactRef::parse(p.source.as_deref()?).ok()?;
                Some((name.clone(), source))
            })
            .collect()
    }

    /// host.lock beside the config file (`None` without one: nothing to pin).
    pub fn lock_path(&self) -> Option<PathBuf> {
        self.source
            .as_deref()
            .map(crate::oci::lock::LockFile::path_for)
    }

    pub fn max_component_mib(&self) -> u64 {
        self.max_component_mib
            .unwrap_or(crate::catalog::DEFAULT_MAX_COMPONENT_MIB)
    }

    pub fn limits_for(&self, name: &str) -> Limits {
        let mut limits = Limits::default();
        if let Some(plugin) = self.plugins.get(name) {
            if let Some(secs) = plugin.deadline_secs {
                limits.deadline = Duration::from_secs(secs);
            }
            if let Some(mib) = plugin.memory_mib {
                limits.memory_bytes = mib << 20;
            }
            if let Some(n) = plugin.max_notifications {
                limits.max_notifications = n;
            }
            if let Some(n) = plugin.max_http_calls {
                limits.max_http_calls = n;
            }
        }
        limits
    }
}
