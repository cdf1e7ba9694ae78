//! Two safety rails decided at admission, before the store is asked: maintenance windows
//! (config `[[maintenance]]` and operators' ad hoc windows in the store) suppress matching
//! runs, and a playbook's open circuit breaker holds its new runs. The decision travels to the
//! store on `Admit::gate`, which records the run `suppressed` or `held` with why; this module
//! never writes a run itself.
//!
//! Cost on the webhook path: config windows are in memory; ad hoc windows are read from the
//! store at most once a second (a cache of ≤ 1 s: a window started or ended elsewhere applies
//! within a second); a breaker is one indexed read per admission of a playbook that has one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::config::Config;
use crate::notify::{Message, Notification, Notifier};
use crate::records::Gate;
use crate::routing::Matcher;
use crate::store::{BreakerCheck, BreakerState, Store, WindowRecord};
use runbook_runtime::safety::{BreakerConfig, MaintenanceConfig};

/// How long ad hoc windows read from the store are used before reading them again.
const WINDOWS_FRESH: Duration = Duration::from_secs(1);

/// What the rails decided for one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Run,
    Held { playbook: String, reason: String },
    Suppressed { window: String, reason: String },
}

impl Decision {
    pub fn gate(&self) -> Gate {
        match self {
            Decision::Run => Gate::Run,
            Decision::Held { reason, .. } => Gate::Held(reason.clone()),
            Decision::Suppressed { reason, .. } => Gate::Suppressed(reason.clone()),
        }
    }
}

/// A run as the rails see it.
pub struct Subject<'a> {
    pub playbook: &'a str,
    /// The alert's labels; a scheduled run's are `schedule` and `playbook`; others have none.
    pub labels: &'a [(String, String)],
    pub node: Option<&'a str>,
    /// The run being admitted (a breaker's notice names the run that found it open).
    pub run_id: &'a str,
}

/// A window's scope, compiled.
struct Scope {
    matchers: Vec<Matcher>,
    nodes: Vec<String>,
}

impl Scope {
    fn compile(matchers: &[String], nodes: &[String]) -> anyhow::Result<Scope> {
        Ok(Scope {
            matchers: matchers
                .iter()
                .map(|m| Matcher::parse(m))
                .collect::<anyhow::Result<_>>()?,
            nodes: nodes.to_vec(),
        })
    }

    /// In the window: all its matchers match the labels (when it has any), or the run is for
    /// one of its nodes.
    fn covers(&self, subject: &Subject<'_>) -> bool {
        (!self.matchers.is_empty() && self.matchers.iter().all(|m| m.matches(subject.labels)))
            || subject
                .node
                .is_some_and(|n| self.nodes.iter().any(|w| w == n))
    }
}

type AdHoc = Arc<Vec<(WindowRecord, Scope)>>;

pub struct Safety {
    breakers: HashMap<String, BreakerConfig>,
    windows: Vec<(MaintenanceConfig, Scope)>,
    adhoc: tokio::sync::Mutex<Option<(Instant, AdHoc)>>,
}

impl Safety {
    /// The rails of a config; an error names a window whose matcher does not parse.
    pub fn new(config: &Config) -> anyhow::Result<Safety> {
        let windows = config
            .maintenance
            .iter()
            .map(|w| {
                Scope::compile(&w.matchers, &w.nodes)
                    .map(|scope| (w.clone(), scope))
                    .map_err(|e| anyhow::anyhow!("[[maintenance]] {}: {e:#}", w.name))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Safety {
            breakers: config
                .plugins
                .iter()
                .filter_map(|(name, p)| Some((name.clone(), p.breaker.clone()?)))
                .collect(),
            windows,
            adhoc: tokio::sync::Mutex::new(None),
        })
    }

    /// Maintenance first (a suppressed run is no failure for a breaker to count), then the
    /// playbook's breaker. An error: the store did not answer; nothing was admitted.
    pub async fn decide(
        &self,
        store: &Arc<Store>,
        notifier: &Notifier,
        subject: &Subject<'_>,
    ) -> anyhow::Result<Decision> {
        if let Some(suppressed) = self.window_for(store, subject).await? {
            return Ok(suppressed);
        }
        let Some(breaker) = self.breakers.get(subject.playbook) else {
            return Ok(Decision::Run);
        };
        let state = match store
            .breaker_check(subject.playbook, &breaker.rule())
            .await?
        {
            BreakerCheck::Closed => return Ok(Decision::Run),
            BreakerCheck::Open(state) => state,
            BreakerCheck::Opened(state) => {
                tell_opened(notifier, breaker, &state, subject.run_id).await;
                state
            }
        };
        Ok(Decision::Held {
            playbook: subject.playbook.to_string(),
            reason: runbook_core::safety::held_reason(subject.playbook, &state),
        })
    }

    async fn window_for(
        &self,
        store: &Arc<Store>,
        subject: &Subject<'_>,
    ) -> anyhow::Result<Option<Decision>> {
        let now = Timestamp::now();
        for (config, scope) in &self.windows {
            if let Some(until) = config.active_until(now)
                && scope.covers(subject)
            {
                let name = format!("{} (until {until})", config.name);
                return Ok(Some(Decision::Suppressed {
                    window: config.name.clone(),
                    reason: runbook_core::safety::suppressed_reason(&name),
                }));
            }
        }
        let adhoc = self.adhoc_windows(store).await?;
        let now_ms = now.as_millisecond();
        for (window, scope) in adhoc.iter() {
            if window.ends_ms > now_ms && scope.covers(subject) {
                let name = format!("{} (until {})", window.id, window.ends_at);
                return Ok(Some(Decision::Suppressed {
                    window: window.id.clone(),
                    reason: runbook_core::safety::suppressed_reason(&name),
                }));
            }
        }
        Ok(None)
    }

    async fn adhoc_windows(&self, store: &Arc<Store>) -> anyhow::Result<AdHoc> {
        let mut cached = self.adhoc.lock().await;
        if let Some((read, windows)) = &*cached
            && read.elapsed() < WINDOWS_FRESH
        {
            return Ok(windows.clone());
        }
        let windows: AdHoc = Arc::new(
            store
                .windows(false)
                .await?
                .into_iter()
                .filter_map(|w| {
                    // Stored by `host maintenance start`, which checked them: one that no longer
                    // parses (a newer host's syntax) is skipped, not a refused webhook.
                    let scope = Scope::compile(&w.matchers, &w.nodes).ok()?;
                    Some((w, scope))
                })
                .collect(),
        );
        *cached = Some((Instant::now(), windows.clone()));
        Ok(windows)
    }

    /// The config windows in force or upcoming (name, start, end), for the console.
    pub fn config_windows(&self) -> Vec<(&MaintenanceConfig, Option<(Timestamp, Timestamp)>)> {
        let now = Timestamp::now();
        self.windows
            .iter()
            .map(|(config, _)| (config, config.occurrence_at(now)))
            .collect()
    }

    pub fn breaker_of(&self, playbook: &str) -> Option<&BreakerConfig> {
        self.breakers.get(playbook)
    }

    /// Forgets the cached ad hoc windows (one was started or ended here).
    pub async fn forget_windows(&self) {
        *self.adhoc.lock().await = None;
    }
}

/// Ops hears once per opening: only the admission that opened it gets here (the store's key),
/// and the outbox's once-key keeps a retried notice single.
async fn tell_opened(
    notifier: &Notifier,
    breaker: &BreakerConfig,
    state: &BreakerState,
    run: &str,
) {
    let playbook = &state.playbook;
    let message = Message {
        title: format!("Circuit breaker open: {playbook}"),
        body: format!(
            "{} runs of {playbook} ended failed or escalated within {}. New runs are held (recorded, \
             not executed) until {}. Close it sooner with `host breaker reset {playbook}` or the \
             console's maintenance page.",
            state.failures,
            humantime::format_duration(breaker.within),
            state.until
        ),
        severity: "warning".into(),
        fields: vec![
            ("playbook".into(), playbook.clone()),
            ("open until".into(), state.until.clone()),
            ("first held run".into(), run.into()),
        ],
    };
    let notification = Notification::new(message, playbook, run, None);
    let once = format!("breaker:{playbook}:{}", state.opened_ms);
    if let Err(e) = notifier
        .submit_once(breaker.channel(), &notification, Some(once))
        .await
    {
        tracing::warn!(
            "telling that the breaker of {} opened: {e}",
            crate::text::escape(playbook)
        );
    }
}

/// An operator's ad hoc window (CLI or console), checked whole before anything is stored: the
/// duration (`90m`, `2h`; 1 s to 30 days), the matchers (as routes parse them), the nodes and
/// the reason, all capped. The error says which and how to write it.
pub fn new_window(
    duration: &str,
    matchers: Vec<String>,
    nodes: Vec<String>,
    reason: Option<String>,
    by: String,
) -> Result<crate::store::NewWindow, String> {
    use runbook_runtime::safety::{MAX_WINDOW, check_scope};
    let duration_text = crate::text::echo(duration.trim()).into_owned();
    let parsed = humantime::parse_duration(duration.trim())
        .map_err(|e| format!("duration {duration_text:?}: {e} (like 90m, 2h, 1d)"))?;
    if parsed < Duration::from_secs(1) || parsed > MAX_WINDOW {
        return Err(format!("duration {duration_text:?}: from 1s to 30 days"));
    }
    let reason = reason.filter(|r| !r.trim().is_empty());
    check_scope(&matchers, &nodes, reason.as_deref())?;
    for matcher in &matchers {
        Matcher::parse(matcher).map_err(|e| format!("{e:#}"))?;
    }
    if let Some(node) = nodes
        .iter()
        .find(|n| n.is_empty() || n.contains(|c: char| c.is_control() || c.is_whitespace()))
    {
        return Err(format!(
            "node {:?}: not a node name",
            crate::text::echo(node)
        ));
    }
    if reason
        .as_deref()
        .is_some_and(|r| r.contains(|c: char| c.is_control() && c != '\n'))
    {
        return Err("the reason may not hold control characters".into());
    }
    Ok(crate::store::NewWindow {
        matchers,
        nodes,
        reason,
        by,
        duration: parsed,
    })
}
