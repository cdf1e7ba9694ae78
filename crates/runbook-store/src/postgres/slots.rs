//! Claims. A claim is one statement (its own transaction, one round trip) whatever the number
//! of runs it takes: lock the oldest queued runs not locked by another claimer, lock as many
//! free slots of each playbook as it has candidates (skipping those another claimer takes),
//! match the k-th candidate of a playbook with its k-th free slot, keep the oldest `wanted`
//! of those matched, and mark slots and runs together. The greedy "oldest first, each takes a
//! free slot of its playbook if one is left" is what the matching computes.

use std::sync::LazyLock;
use std::time::Duration;

use anyhow::Result;

use super::runs::{QUEUED_COLUMNS, queued_run};
use super::sql::{Db, execute, query};
use super::{Postgres, secs};
use crate::backend::SlotLimits;
use crate::records::QueuedRun;

/// What a claim took: its runs, now `running` for `runner`, oldest first, and the playbooks
/// whose candidates found no free slot (their slot rows may not exist yet).
pub(super) struct Taken {
    pub runs: Vec<QueuedRun>,
    pub short: Vec<String>,
}

static FOR_REPLICA: LazyLock<String> = LazyLock::new(|| statement(false));
static FOR_NODE: LazyLock<String> = LazyLock::new(|| statement(true));

/// The statement, for the runs of no node (a replica's) or of the node given as `$8`.
fn statement(for_node: bool) -> String {
    let queued = if for_node {
        // The condition as runs_node_queued spells it.
        "status = 'queued' AND node IS NOT NULL AND node = $8"
    } else {
        "status = 'queued' AND node IS NULL"
    };
    let short_columns = QUEUED_COLUMNS
        .split(',')
        .map(|c| {
            if c.trim() == "playbook" {
                "r.playbook"
            } else {
                "NULL"
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        // $1 candidates, $2 wanted, $3 default limit, $4/$5 playbooks' own limits, $6 lease
        // seconds, $7 runner.
        "WITH cand AS (
             SELECT id, playbook, started_at FROM runs WHERE {queued}
             ORDER BY started_at, id LIMIT $1 FOR UPDATE SKIP LOCKED),
         ranked AS (
             SELECT id, playbook, started_at,
                    row_number() OVER (PARTITION BY playbook ORDER BY started_at, id) AS k
             FROM cand),
         need AS (
             SELECT c.playbook, least(count(*), $2::int)::int AS wanted,
                    greatest(COALESCE(min(l.lim), $3::int), 1) AS lim
             FROM cand c LEFT JOIN unnest($4::text[], $5::int[]) AS l(playbook, lim)
                  ON l.playbook = c.playbook
             GROUP BY c.playbook),
         free AS (
             SELECT w.playbook, f.n, row_number() OVER (PARTITION BY w.playbook ORDER BY f.n) AS k
             FROM need w CROSS JOIN LATERAL (
                 SELECT s.n FROM slots s
                 WHERE s.playbook = w.playbook AND s.n < w.lim
                   AND (s.run_id IS NULL OR s.lease_until < now())
                 ORDER BY s.n LIMIT w.wanted FOR UPDATE SKIP LOCKED) f),
         pick AS (
             SELECT r.id AS pick_id, f.playbook AS pick_playbook, f.n AS pick_n FROM ranked r
             JOIN free f ON f.playbook = r.playbook AND f.k = r.k
             ORDER BY r.started_at, r.id LIMIT $2),
         held AS (
             UPDATE slots SET run_id = p.pick_id,
                 lease_until = now() + $6::float8 * interval '1 second'
             FROM pick p WHERE slots.playbook = p.pick_playbook AND slots.n = p.pick_n),
         taken AS (
             UPDATE runs SET status = 'running', runner = $7,
                 lease_until = now() + $6::float8 * interval '1 second',
                 running_since = runbook_now_text()
             FROM pick p WHERE runs.id = p.pick_id
             RETURNING {QUEUED_COLUMNS})
         SELECT {QUEUED_COLUMNS}, false AS short FROM taken
         UNION ALL
         SELECT {short_columns}, true FROM ranked r
         WHERE NOT EXISTS (SELECT 1 FROM free f WHERE f.playbook = r.playbook AND f.k = r.k)
         GROUP BY r.playbook"
    )
}

async fn take(
    c: &impl Db,
    node: Option<&str>,
    wanted: usize,
    limits: &SlotLimits,
    runner: &str,
    lease: Duration,
) -> Result<Taken> {
    // More candidates than wanted: runs of a full playbook must not hide the others.
    let window = (wanted * 8).clamp(64, 1024) as i64;
    let (own, own_limits): (Vec<&str>, Vec<i32>) = limits
        .per_playbook
        .iter()
        .map(|(playbook, limit)| (playbook.as_str(), (*limit).min(i32::MAX as usize) as i32))
        .unzip();
    let default = limits.default.min(i32::MAX as usize) as i32;
    let wanted = wanted.min(i32::MAX as usize) as i32;
    let lease = secs(lease);
    let rows = match node {
        None => {
            query(
                c,
                &FOR_REPLICA,
                &[
                    &window,
                    &wanted,
                    &default,
                    &own,
                    &own_limits,
                    &lease,
                    &runner,
                ],
            )
            .await?
        }
        Some(node) => {
            query(
                c,
                &FOR_NODE,
                &[
                    &window,
                    &wanted,
                    &default,
                    &own,
                    &own_limits,
                    &lease,
                    &runner,
                    &node,
                ],
            )
            .await?
        }
    };
    let short_at = QUEUED_COLUMNS.split(',').count();
    let (mut runs, mut short) = (Vec::new(), Vec::new());
    for row in &rows {
        if row.get::<_, bool>(short_at) {
            short.push(row.get::<_, String>(1));
        } else {
            runs.push(queued_run(row));
        }
    }
    runs.sort_by(|a: &QueuedRun, b| (&a.started_at, &a.id).cmp(&(&b.started_at, &b.id)));
    Ok(Taken { runs, short })
}

/// Claims queued runs, oldest first, each with a free slot of its playbook. `node`: the runs
/// for that fleet node only; None: the runs for no node (a replica's). Slots count every
/// holder, node or replica.
pub(super) async fn claim(
    pg: &Postgres,
    runner: &str,
    node: Option<&str>,
    max: usize,
    limits: &SlotLimits,
    lease: Duration,
) -> Result<Vec<QueuedRun>> {
    let mut claimed = Vec::new();
    // A second pass only when the first met playbooks whose slot rows did not exist yet.
    for _ in 0..2 {
        let wanted = max - claimed.len();
        if wanted == 0 {
            break;
        }
        let mut unmade = Vec::new();
        let client = pg.client().await?;
        let taken = take(&client, node, wanted, limits, runner, lease).await?;
        for playbook in taken.short {
            let limit = limits.of(&playbook);
            let made = pg.slots_made.lock().unwrap().get(&playbook).copied();
            if made.is_none_or(|made| made < limit) {
                unmade.push((playbook, limit));
            }
        }
        claimed.extend(taken.runs);
        if unmade.is_empty() {
            break;
        }
        // Outside the claim's transaction, one playbook per statement: slot rows in the making
        // never wait on run rows another claimer holds (no deadlock), and they are made once.
        for (playbook, limit) in unmade {
            execute(
                &client,
                "INSERT INTO slots (playbook, n) SELECT $1, n FROM generate_series(0, $2 - 1) n
                 ON CONFLICT DO NOTHING",
                &[&playbook, &(limit as i32)],
            )
            .await?;
            pg.slots_made.lock().unwrap().insert(playbook, limit);
        }
    }
    Ok(claimed)
}
