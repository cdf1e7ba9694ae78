//! Slots for a claim, in two statements whatever the number of runs claimed: lock free slots
//! (as many per playbook as it has candidates, skipping those another claimer is taking),
//! then hand them out to the candidates oldest first and mark slots and runs together.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use anyhow::Result;

use super::secs;
use super::sql::{execute, query};
use crate::backend::SlotLimits;
use crate::records::QueuedRun;

/// What a claim took: its runs, now `running` for `runner`, and the playbooks whose
/// candidates found no free slot (their slot rows may not exist yet).
pub(super) struct Taken {
    pub runs: Vec<QueuedRun>,
    pub short: Vec<String>,
}

pub(super) async fn take(
    tx: &super::sql::Tx<'_>,
    candidates: Vec<QueuedRun>,
    wanted: usize,
    limits: &SlotLimits,
    runner: &str,
    lease: Duration,
) -> Result<Taken> {
    let mut need: Vec<(String, i32, i32)> = Vec::new();
    for run in &candidates {
        match need.iter_mut().find(|(p, ..)| *p == run.playbook) {
            Some(entry) => entry.2 = (entry.2 + 1).min(wanted as i32),
            None => need.push((run.playbook.clone(), limits.of(&run.playbook) as i32, 1)),
        }
    }
    let playbooks: Vec<&str> = need.iter().map(|(p, ..)| p.as_str()).collect();
    let limit: Vec<i32> = need.iter().map(|n| n.1).collect();
    let count: Vec<i32> = need.iter().map(|n| n.2).collect();
    let rows = query(
        tx,
        "SELECT w.playbook, f.n
         FROM unnest($1::text[], $2::int[], $3::int[]) AS w(playbook, lim, wanted)
         CROSS JOIN LATERAL (
             SELECT s.n FROM slots s
             WHERE s.playbook = w.playbook AND s.n < w.lim
               AND (s.run_id IS NULL OR s.lease_until < now())
             ORDER BY s.n LIMIT w.wanted FOR UPDATE SKIP LOCKED) f",
        &[&playbooks, &limit, &count],
    )
    .await?;
    let mut free: HashMap<String, VecDeque<i32>> = HashMap::new();
    for row in &rows {
        free.entry(row.get(0)).or_default().push_back(row.get(1));
    }
    let (mut runs, mut short) = (Vec::new(), Vec::<String>::new());
    let (mut slot_playbooks, mut slot_ns, mut run_ids) = (Vec::new(), Vec::new(), Vec::new());
    for run in candidates {
        if runs.len() == wanted {
            break;
        }
        match free.get_mut(&run.playbook).and_then(|f| f.pop_front()) {
            Some(n) => {
                slot_playbooks.push(run.playbook.clone());
                slot_ns.push(n);
                run_ids.push(run.id.clone());
                runs.push(run);
            }
            None if !short.contains(&run.playbook) => short.push(run.playbook),
            None => {}
        }
    }
    if !runs.is_empty() {
        execute(
            tx,
            "WITH held AS (
                 UPDATE slots SET run_id = t.run_id,
                     lease_until = now() + $4::float8 * interval '1 second'
                 FROM unnest($1::text[], $2::int[], $3::text[]) AS t(playbook, n, run_id)
                 WHERE slots.playbook = t.playbook AND slots.n = t.n)
             UPDATE runs SET status = 'running', runner = $5,
                 lease_until = now() + $4::float8 * interval '1 second',
                 running_since = runbook_now_text()
             WHERE id = ANY($3)",
            &[&slot_playbooks, &slot_ns, &run_ids, &secs(lease), &runner],
        )
        .await?;
    }
    Ok(Taken { runs, short })
}
