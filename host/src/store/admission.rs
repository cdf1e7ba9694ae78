//! The server's writes through the group-commit writer (writer.rs): admitting a webhook run —
//! dedup, cooldown, the run itself and the alert's record decided and written in one request
//! of a batch, so identical deliveries start exactly one run without any lock in the server —
//! and a run's start and end. Each returns once its batch is on disk.

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, params};

use super::recovery::CUT_OFF;
use super::writer::Writer;
use super::{AlertRecord, NewRun, Store};
use crate::run::RunRecord;

/// A run to record as queued, owned (it crosses to the writer thread).
#[derive(Debug, Clone)]
pub struct QueuedRun {
    pub id: String,
    pub playbook: String,
    pub origin: String,
    pub trigger: String,
    pub params: serde_json::Value,
    pub alert: Option<serde_json::Value>,
    pub dry_run: bool,
    pub dedup_key: Option<String>,
    pub started_at: String,
    pub severity: String,
}

impl QueuedRun {
    fn as_new(&self) -> NewRun<'_> {
        NewRun {
            id: &self.id,
            playbook: &self.playbook,
            origin: &self.origin,
            trigger: &self.trigger,
            params: &self.params,
            alert: self.alert.as_ref(),
            dry_run: self.dry_run,
            dedup_key: self.dedup_key.as_deref(),
            started_at: &self.started_at,
            severity: &self.severity,
        }
    }
}

/// One webhook run to admit.
pub struct Admit {
    pub run: QueuedRun,
    /// A run with the same dedup key accepted since then (RFC 3339) answers instead.
    pub dedup_since: Option<String>,
    /// (key, since): a run of the same playbook with this cooldown key accepted since then
    /// means this one is skipped.
    pub cooldown: Option<(String, String)>,
    /// The alert's record; its disposition and run id are filled in here.
    pub alert: Option<AlertRecord>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Admitted {
    Started,
    Deduplicated(String),
    Cooldown,
}

impl Store {
    fn writer(&self) -> &Writer {
        self.writer.get_or_init(|| {
            Writer::start(self.conn.clone()).expect("starting the run store's writer thread")
        })
    }

    /// Decides and records one admission; returns once it is committed.
    pub async fn admit(&self, admit: Admit) -> Result<Admitted> {
        self.writer().write(move |tx| admit_in(tx, admit)).await
    }

    /// Records alerts (those that started nothing); returns once committed.
    pub async fn record_alerts(&self, alerts: Vec<AlertRecord>) -> Result<()> {
        self.writer()
            .write(move |tx| {
                alerts
                    .iter()
                    .try_for_each(|alert| super::insert_alert(tx, alert))
            })
            .await
    }

    /// `mark_running` through the writer: committed with whatever else is waiting.
    pub async fn mark_running_batched(&self, id: String) -> Result<()> {
        self.writer()
            .write(move |tx| super::set_running(tx, &id))
            .await
    }

    /// `finish` through the writer; gives the record back.
    pub async fn finish_batched(&self, record: RunRecord) -> Result<RunRecord> {
        self.writer()
            .write(move |tx| super::write_outcome(tx, &record).map(|()| record))
            .await
    }
}

fn admit_in(conn: &Connection, admit: Admit) -> Result<Admitted> {
    let Admit {
        run,
        dedup_since,
        cooldown,
        mut alert,
    } = admit;
    let admitted = match (&run.dedup_key, &dedup_since) {
        (Some(key), Some(since)) => super::dedup_run(conn, key, since)?.map(Admitted::Deduplicated),
        _ => None,
    };
    let admitted = match (admitted, &cooldown) {
        (Some(admitted), _) => admitted,
        (None, Some((key, since))) if in_cooldown(conn, &run.playbook, key, since)? => {
            Admitted::Cooldown
        }
        (None, _) => {
            let key = cooldown.as_ref().map(|(key, _)| key.as_str());
            super::insert_run(conn, &run.as_new(), key)?;
            Admitted::Started
        }
    };
    if let Some(alert) = &mut alert {
        (alert.disposition, alert.run_id) = match &admitted {
            Admitted::Started => ("started".into(), Some(run.id.clone())),
            Admitted::Deduplicated(id) => ("deduplicated".into(), Some(id.clone())),
            Admitted::Cooldown => ("cooldown".into(), None),
        };
        super::insert_alert(conn, alert)?;
    }
    Ok(admitted)
}

/// Whether a run of `playbook` with this cooldown key was accepted since `since`; runs cut
/// off by a host stopping do not count (the alert must be able to run again).
fn in_cooldown(conn: &Connection, playbook: &str, key: &str, since: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT 1 FROM runs WHERE playbook = ?1 AND cooldown_key = ?2 AND started_at >= ?3
               AND status NOT IN {CUT_OFF} LIMIT 1"
        ))?
        .query_row(params![playbook, key, since], |_| Ok(()))
        .optional()?
        .is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, dedup: Option<&str>) -> QueuedRun {
        QueuedRun {
            id: id.into(),
            playbook: "noop".into(),
            origin: "plugin-dir".into(),
            trigger: "alert".into(),
            params: serde_json::json!({}),
            alert: None,
            dry_run: false,
            dedup_key: dedup.map(String::from),
            started_at: "2026-11-25T10:00:00.000Z".into(),
            severity: "P3".into(),
        }
    }

    fn admit(id: &str, dedup: Option<&str>, cooldown: Option<&str>) -> Admit {
        Admit {
            run: run(id, dedup),
            dedup_since: Some("2026-11-25T09:00:00.000Z".into()),
            cooldown: cooldown.map(|k| (k.into(), "2026-11-25T09:00:00.000Z".into())),
            alert: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn identical_admissions_at_once_start_exactly_one_run() {
        let store = std::sync::Arc::new(Store::open_in_memory().unwrap());
        let admissions: Vec<_> = (0..200)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .admit(admit(&format!("r{i}"), Some("same-alert"), None))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut started = Vec::new();
        let mut deduplicated = Vec::new();
        for (i, admission) in admissions.into_iter().enumerate() {
            match admission.await.unwrap() {
                Admitted::Started => started.push(format!("r{i}")),
                Admitted::Deduplicated(id) => deduplicated.push(id),
                Admitted::Cooldown => panic!("no cooldown asked"),
            }
        }
        assert_eq!(started.len(), 1, "{started:?}");
        assert_eq!(deduplicated.len(), 199);
        assert!(deduplicated.iter().all(|id| *id == started[0]));
    }

    #[tokio::test]
    async fn a_cooldown_key_skips_later_runs_of_the_same_playbook_only() {
        let store = Store::open_in_memory().unwrap();
        let first = store.admit(admit("a", None, Some("fp1"))).await.unwrap();
        let again = store.admit(admit("b", None, Some("fp1"))).await.unwrap();
        let other = store.admit(admit("c", None, Some("fp2"))).await.unwrap();
        assert_eq!(
            (first, again, other),
            (Admitted::Started, Admitted::Cooldown, Admitted::Started)
        );
    }

    #[tokio::test]
    async fn a_failing_write_leaves_the_rest_of_its_batch_committed() {
        let store = std::sync::Arc::new(Store::open_in_memory().unwrap());
        // The same id twice: the second insert fails on the primary key, alone.
        let writes: Vec<_> = ["x", "x", "y"]
            .into_iter()
            .map(|id| {
                let store = store.clone();
                tokio::spawn(async move { store.admit(admit(id, None, None)).await })
            })
            .collect();
        let mut failed = 0;
        for write in writes {
            failed += usize::from(write.await.unwrap().is_err());
        }
        assert_eq!(failed, 1);
        assert!(store.get("x").unwrap().is_some() && store.get("y").unwrap().is_some());
    }
}
