//! A run before it starts: new from a request, resumed from the store, or queued for a node;
//! its id, parameters, alert and dedup key fixed here.

use std::time::SystemTime;

use anyhow::{Context, Result};

use super::inputs::{UsageError, resolve_params};
use super::{Host, PendingRun, Prepared, RunRequest};
use crate::records::{Trigger, rfc3339};
use crate::severity::Priority;
use crate::store::{QueuedRun, UnfinishedRun};

impl Host {
    /// A run a previous host accepted and never started (status `queued` in the store), ready
    /// for `execute` under its original id, parameters, alert and dedup key.
    pub fn resume(&self, prepared: &Prepared, stored: &UnfinishedRun) -> Result<PendingRun> {
        let given: Vec<(String, String)> = match &stored.params {
            serde_json::Value::Object(map) => map
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), String::from),
                    )
                })
                .collect(),
            _ => Vec::new(),
        };
        // Checked again: the playbook may have changed since the run was accepted.
        let params = resolve_params(&prepared.description, &prepared.source.name, &given)?;
        let alert = match &stored.alert {
            Some(json) => {
                let mut alert = crate::incident::parse_alert(json.clone())?;
                if let Some(name) = json["name"].as_str() {
                    alert.name = name.to_string();
                }
                Some(alert)
            }
            None => None,
        };
        let trigger = match Trigger::parse(&stored.trigger) {
            Some(
                t @ (Trigger::Alert | Trigger::Webhook | Trigger::Schedule | Trigger::Console),
            ) => t,
            _ => anyhow::bail!("a {} run is not resumed by another host", stored.trigger),
        };
        let severity = Priority::parse(&stored.severity).unwrap_or(Priority::P3);
        Ok(PendingRun {
            run_id: stored.id.clone(),
            started_at: humantime::parse_rfc3339(&stored.started_at)
                .unwrap_or_else(|_| SystemTime::now()),
            alert_json: stored.alert.clone(),
            params: params.clone(),
            severity,
            request: RunRequest {
                params,
                alert,
                trigger,
                by: stored.by.clone(),
                dry_run: stored.dry_run,
                dedup_key: stored.dedup_key.clone(),
                severity: Some(severity),
            },
        })
    }

    /// Validates the parameters and records the run as running, held by this process: once
    /// this returns, the run exists in the store whatever happens to the host.
    pub async fn begin(&self, prepared: &Prepared, request: RunRequest) -> Result<PendingRun> {
        let pending = self.new_pending(prepared, request)?;
        if let Some(store) = &self.store {
            let row = self.queued_row(prepared, &pending);
            store
                .insert_running(row, crate::store::this_runner(), self.config.server.lease())
                .await
                .context("recording the run in the store")?;
        }
        Ok(pending)
    }

    /// Validates the parameters and gives the run its id; nothing is stored yet (the server
    /// stores it through its group-commit admission, see `queued_row`).
    pub fn new_pending(&self, prepared: &Prepared, request: RunRequest) -> Result<PendingRun> {
        let name = &prepared.source.name;
        let params = resolve_params(&prepared.description, name, &request.params)?;
        Ok(PendingRun {
            run_id: new_run_id(),
            started_at: SystemTime::now(),
            alert_json: request.alert.as_ref().map(crate::incident::alert_json),
            params,
            severity: request
                .severity
                .or_else(|| {
                    request
                        .alert
                        .as_ref()
                        .and_then(|a| Priority::from_labels(&a.labels))
                })
                .unwrap_or(Priority::P3),
            request,
        })
    }

    /// The store's row for a pending run.
    pub fn queued_row(&self, prepared: &Prepared, pending: &PendingRun) -> QueuedRun {
        let params: serde_json::Map<_, _> = pending
            .params
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        QueuedRun {
            id: pending.run_id.clone(),
            playbook: prepared.source.name.clone(),
            origin: prepared.source.origin.to_string(),
            trigger: pending.request.trigger.as_str().to_string(),
            by: pending.request.by.clone(),
            params: params.into(),
            alert: pending.alert_json.clone(),
            dry_run: pending.request.dry_run,
            dedup_key: pending.request.dedup_key.clone(),
            started_at: rfc3339(pending.started_at),
            severity: pending.severity.as_str().to_string(),
            node: None,
        }
    }

    /// The store's row for a run on a fleet node whose playbook this host does not have (or
    /// cannot load): the node checks the parameters against its own copy when it starts it.
    pub fn node_row(&self, playbook: &str, request: RunRequest, node: String) -> Result<QueuedRun> {
        crate::catalog::check_name(playbook).map_err(UsageError::from)?;
        let mut params = serde_json::Map::new();
        for (name, value) in request.params {
            if params.contains_key(&name) {
                return Err(UsageError::DuplicateParam(name).into());
            }
            params.insert(name, serde_json::Value::String(value));
        }
        let severity = request
            .severity
            .or_else(|| {
                request
                    .alert
                    .as_ref()
                    .and_then(|a| Priority::from_labels(&a.labels))
            })
            .unwrap_or(Priority::P3);
        Ok(QueuedRun {
            id: new_run_id(),
            playbook: playbook.to_string(),
            origin: format!("node {node}"),
            trigger: request.trigger.as_str().to_string(),
            by: request.by,
            params: params.into(),
            alert: request.alert.as_ref().map(crate::incident::alert_json),
            dry_run: request.dry_run,
            dedup_key: request.dedup_key,
            started_at: rfc3339(SystemTime::now()),
            severity: severity.as_str().to_string(),
            node: Some(node),
        })
    }
}

/// Sortable and unique enough across processes: time, pid and a counter.
fn new_run_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "r{:x}{:05x}{:03x}",
        now.as_millis(),
        std::process::id() & 0xfffff,
        COUNTER.fetch_add(1, Ordering::Relaxed) & 0xfff
    )
}
