//! What a host that stopped left unfinished: runs cut off mid-run become `lost`, runs never
//! started stay `queued` for the next host, and both kinds of cut-off run (`interrupted`,
//! `lost`) are left out of dedup. The queries behind `host serve`'s start-up rescue
//! (server/rescue.rs), which assumes one host per store.

use anyhow::Result;
use rusqlite::params;

use super::Store;

/// This process as a runner of runs: host name, pid and the process's start time (so a pid
/// reused after a restart, pid 1 in a container say, is not taken for the same process).
pub(super) fn this_runner() -> &'static str {
    static RUNNER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    RUNNER.get_or_init(|| {
        let pid = std::process::id().to_string();
        let started = start_time(&pid).unwrap_or_default();
        format!("{}/{pid}/{started}", host_name())
    })
}

fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// Field 22 of /proc/PID/stat, in clock ticks since boot.
fn start_time(pid: &str) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(19).map(String::from)
}

/// Whether `runner` is another process on this machine that is still running.
fn is_alive_elsewhere(runner: &str) -> bool {
    let mut parts = runner.rsplitn(3, '/');
    let (Some(started), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    runner != this_runner()
        && host == host_name()
        && !started.is_empty()
        && start_time(pid).as_deref() == Some(started)
}

/// Why a run is `lost`: the host died while it executed.
pub const LOST_REASON: &str = "the host stopped (crash or kill) while the run was executing; \
     not re-run, as its actions may have happened";

/// Statuses of runs that ended without a result: they never count for dedup, so the alert's
/// next delivery starts a new run.
pub(super) const CUT_OFF: &str = "('interrupted', 'lost')";

/// A run that has not ended as the store has it: enough to start it again or to tell about it.
#[derive(Debug, Clone)]
pub struct UnfinishedRun {
    pub id: String,
    pub playbook: String,
    pub trigger: String,
    pub params: serde_json::Value,
    pub alert: Option<serde_json::Value>,
    pub dry_run: bool,
    pub dedup_key: Option<String>,
    pub severity: String,
    pub started_at: String,
}

impl Store {
    /// Marks `running` runs `lost` and returns how many: those of a host process that is
    /// gone. A live process on this machine (a `host run` next to `host serve`) keeps its
    /// runs. Only for a host's start-up rescue: it assumes no other `host serve`, here or on
    /// another machine, executes runs from this store.
    pub fn mark_lost(&self, at: &str) -> Result<usize> {
        let mut conn = self.conn.lock().unwrap();
        let tx = conn.transaction()?;
        let running: Vec<(String, Option<String>)> = tx
            .prepare("SELECT id, runner FROM runs WHERE status = 'running'")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut lost = 0;
        for (id, runner) in running {
            if runner.as_deref().is_some_and(is_alive_elsewhere) {
                continue;
            }
            lost += tx.execute(
                "UPDATE runs SET status = 'lost', ended_at = ?2, reason = ?3, summary = ?4
                 WHERE id = ?1 AND status = 'running'",
                params![id, at, LOST_REASON, format!("run lost: {LOST_REASON}")],
            )?;
        }
        tx.commit()?;
        Ok(lost)
    }

    /// Lost runs ops have not been told about yet, oldest first.
    pub fn lost_unnotified(&self) -> Result<Vec<UnfinishedRun>> {
        self.unfinished_where("status = 'lost' AND lost_notified_at IS NULL")
    }

    pub fn mark_lost_notified(&self, id: &str, at: &str) -> Result<()> {
        let conn = self.conn.lock().unwrap();
        conn.execute(
            "UPDATE runs SET lost_notified_at = ?2 WHERE id = ?1",
            params![id, at],
        )?;
        Ok(())
    }

    /// Runs accepted and never started, oldest first.
    pub fn queued(&self) -> Result<Vec<UnfinishedRun>> {
        self.unfinished_where("status = 'queued'")
    }

    fn unfinished_where(&self, condition: &str) -> Result<Vec<UnfinishedRun>> {
        let conn = self.conn.lock().unwrap();
        let mut stmt = conn.prepare(&format!(
            "SELECT id, playbook, trigger, params, alert, dry_run, dedup_key, severity,
                    started_at
             FROM runs WHERE {condition} ORDER BY started_at, id"
        ))?;
        let rows = stmt.query_map([], |r| {
            let json = |i: usize| -> rusqlite::Result<Option<serde_json::Value>> {
                let text: Option<String> = r.get(i)?;
                Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
            };
            Ok(UnfinishedRun {
                id: r.get(0)?,
                playbook: r.get(1)?,
                trigger: r.get(2)?,
                params: json(3)?.unwrap_or_default(),
                alert: json(4)?,
                dry_run: r.get(5)?,
                dedup_key: r.get(6)?,
                severity: r.get(7)?,
                started_at: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Ends a run that is still `queued` or `running` with `status` (failed, interrupted) and
    /// `reason`; false when it had already ended.
    pub fn end_unfinished(&self, id: &str, status: &str, reason: &str, at: &str) -> Result<bool> {
        let conn = self.conn.lock().unwrap();
        let updated = conn.execute(
            "UPDATE runs SET status = ?2, reason = ?3, summary = ?4, ended_at = ?5
             WHERE id = ?1 AND status IN ('queued', 'running')",
            params![id, status, reason, format!("run {status}: {reason}"), at],
        )?;
        Ok(updated == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewRun;

    fn queued(store: &Store, id: &str, dedup_key: Option<&str>) {
        let params = serde_json::json!({ "case": "x" });
        store
            .insert_queued(&NewRun {
                id,
                playbook: "bot-down",
                origin: "built-in",
                trigger: "alert",
                params: &params,
                alert: None,
                dry_run: false,
                dedup_key,
                started_at: "2026-11-25T10:00:00Z",
                severity: "P3",
            })
            .unwrap();
    }

    #[test]
    fn running_runs_become_lost_and_queued_ones_stay_to_be_started() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("runs.sqlite3")).unwrap();
        queued(&store, "r1", None);
        queued(&store, "r2", None);
        store.mark_running("r1").unwrap();
        assert_eq!(store.mark_lost("2026-11-25T10:05:00Z").unwrap(), 1);
        assert_eq!(store.get("r1").unwrap().unwrap().run.status, "lost");
        let waiting = store.queued().unwrap();
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].id, "r2");
        assert_eq!(waiting[0].params["case"], "x");
        assert_eq!(store.mark_lost("later").unwrap(), 0);

        let untold: Vec<String> = store
            .lost_unnotified()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(untold, ["r1"]);
        store.mark_lost_notified("r1", "now").unwrap();
        assert!(store.lost_unnotified().unwrap().is_empty());
    }

    #[test]
    fn a_run_of_a_live_process_is_not_lost() {
        let store = Store::open_in_memory().unwrap();
        queued(&store, "mine", None);
        queued(&store, "theirs", None);
        queued(&store, "gone", None);
        for id in ["mine", "theirs", "gone"] {
            store.mark_running(id).unwrap();
        }
        // Our parent is alive: its run is its own. A pid with another start time is gone.
        let parent = std::os::unix::process::parent_id().to_string();
        let live = format!("{}/{parent}/{}", host_name(), start_time(&parent).unwrap());
        let conn = store.conn.lock().unwrap();
        conn.execute("UPDATE runs SET runner = ?1 WHERE id = 'theirs'", [&live])
            .unwrap();
        let dead = format!("{}/{parent}/1", host_name());
        conn.execute("UPDATE runs SET runner = ?1 WHERE id = 'gone'", [&dead])
            .unwrap();
        drop(conn);
        assert!(is_alive_elsewhere(&live));
        assert!(!is_alive_elsewhere(this_runner()));
        assert_eq!(store.mark_lost("now").unwrap(), 2);
        let status = |id: &str| store.get(id).unwrap().unwrap().run.status;
        assert_eq!(
            (status("mine"), status("theirs"), status("gone")),
            ("lost".into(), "running".into(), "lost".into())
        );
    }

    #[test]
    fn cut_off_runs_do_not_count_for_dedup() {
        let store = Store::open_in_memory().unwrap();
        for (id, status) in [("lost", "lost"), ("cut", "interrupted"), ("done", "failed")] {
            let key = format!("key-{id}");
            queued(&store, id, Some(&key));
            store.mark_running(id).unwrap();
            if status == "lost" {
                store.mark_lost("now").unwrap();
            } else {
                assert!(store.end_unfinished(id, status, "why", "now").unwrap());
            }
        }
        let since = "2026-11-25T09:00:00Z";
        assert_eq!(store.find_dedup("key-lost", since).unwrap(), None);
        assert_eq!(store.find_dedup("key-cut", since).unwrap(), None);
        assert_eq!(
            store.find_dedup("key-done", since).unwrap().as_deref(),
            Some("done")
        );
        // An ended run is never ended again.
        assert!(
            !store
                .end_unfinished("done", "interrupted", "late", "now")
                .unwrap()
        );
    }
}
