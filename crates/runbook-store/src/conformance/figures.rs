//! `FigureStore`: figures of a store seeded with known runs equal hand-computed values, on
//! every backend; a run finished through the real path records its first mutating action.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{LONG, Subject, admit, claimed_ids, limits, queued};
use crate::figures::{Bucket, Counted, Percentiles, SeededRun, Window};
use crate::records::{ApprovalRecord, Decision, RunOutcome};

fn day() -> Window {
    Window {
        since: "2026-12-01T00:00:00.000Z".into(),
        until: "2026-12-02T00:00:00.000Z".into(),
        bucket: Bucket::Hour,
    }
}

fn alert(name: &str, starts_at: Option<&str>, instance: Option<&str>) -> Option<Value> {
    let mut alert = json!({ "labels": { "alertname": name } });
    if let Some(at) = starts_at {
        alert["startsAt"] = json!(at);
    }
    if let Some(instance) = instance {
        alert["labels"]["instance"] = json!(instance);
    }
    Some(alert)
}

/// Times on 2026-12-01 as `HH:MM:SS.mmm`.
fn at(time: &str) -> String {
    format!("2026-12-01T{time}Z")
}

#[allow(clippy::too_many_arguments)]
fn run(
    id: &str,
    playbook: &str,
    status: &str,
    alert: Option<Value>,
    node: Option<&str>,
    [started, running, first, ended]: [Option<&str>; 4],
    actions: &[(&str, u64)],
) -> SeededRun {
    SeededRun {
        id: id.into(),
        playbook: playbook.into(),
        status: status.into(),
        alert,
        node: node.map(String::from),
        started_at: started.map(at).unwrap(),
        running_since: running.map(at),
        first_action_at: first.map(at),
        ended_at: ended.map(at),
        actions: actions.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
    }
}

fn seeded() -> Vec<SeededRun> {
    let bot = |t| alert("BotDown", Some(t), Some("n1"));
    vec![
        // 12 s to start, 20 s to act, 60 s to resolve.
        run(
            "r1",
            "bot-restart",
            "resolved",
            bot("2026-12-01T10:00:00Z"),
            None,
            [
                Some("10:00:10.000"),
                Some("10:00:12.000"),
                Some("10:00:20.000"),
                Some("10:01:00.000"),
            ],
            &[("docker.restart", 1), ("notify.send", 1)],
        ),
        run(
            "r2",
            "bot-restart",
            "mitigated",
            bot("2026-12-01T11:00:00.000Z"),
            None,
            [
                Some("11:00:05.000"),
                Some("11:00:06.000"),
                Some("11:00:30.000"),
                Some("11:05:00.000"),
            ],
            &[("docker.restart", 2)],
        ),
        run(
            "r3",
            "bot-restart",
            "escalated",
            bot("2026-12-01T11:30:00.000Z"),
            None,
            [
                Some("11:30:01.000"),
                Some("11:30:02.000"),
                None,
                Some("11:31:00.000"),
            ],
            &[],
        ),
        // Lost: its start counts, its end is no outcome.
        run(
            "r4",
            "bot-restart",
            "lost",
            bot("2026-12-01T12:00:00.000Z"),
            None,
            [
                Some("12:00:01.000"),
                Some("12:00:03.000"),
                None,
                Some("12:10:00.000"),
            ],
            &[],
        ),
        // Still running; startsAt with nanoseconds counts to the millisecond.
        run(
            "r5",
            "disk-full",
            "running",
            alert("DiskFull", Some("2026-12-01T12:00:00.000999999Z"), None),
            Some("node-b"),
            [Some("12:00:00.500"), Some("12:00:01.000"), None, None],
            &[],
        ),
        // No alert: detected when accepted.
        run(
            "r6",
            "disk-full",
            "no-action",
            None,
            None,
            [
                Some("13:00:00.000"),
                Some("13:00:00.250"),
                None,
                Some("13:00:02.250"),
            ],
            &[],
        ),
        // An alert without startsAt: detected when accepted.
        run(
            "r7",
            "disk-full",
            "failed",
            alert("DiskFull", None, Some("n2")),
            None,
            [
                Some("14:00:00.000"),
                Some("14:00:01.000"),
                Some("14:00:02.000"),
                Some("14:00:03.000"),
            ],
            &[("docker.restart", 1)],
        ),
        run(
            "r8",
            "bot-restart",
            "queued",
            None,
            None,
            [Some("15:00:00.000"), None, None, None],
            &[],
        ),
        // The next day: outside the window.
        SeededRun {
            started_at: "2026-12-02T00:00:00.000Z".into(),
            ..run(
                "r9",
                "bot-restart",
                "resolved",
                bot("2026-12-01T23:59:00.000Z"),
                None,
                [
                    Some("00:00:00.000"),
                    Some("00:00:01.000"),
                    None,
                    Some("00:00:02.000"),
                ],
                &[("docker.restart", 5)],
            )
        },
    ]
}

fn p(count: u64, p50: i64, p90: i64) -> Percentiles {
    Percentiles {
        count,
        p50_ms: Some(p50),
        p90_ms: Some(p90),
    }
}

fn counted(pairs: &[(&str, u64)]) -> Vec<Counted> {
    pairs
        .iter()
        .map(|(n, c)| Counted {
            name: n.to_string(),
            count: *c,
        })
        .collect()
}

fn outcomes(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(n, c)| (n.to_string(), *c)).collect()
}

fn question(id: &str, run_id: &str, asked: &str) -> ApprovalRecord {
    ApprovalRecord {
        id: id.into(),
        run_id: run_id.into(),
        playbook: "bot-restart".into(),
        group: "oncall".into(),
        title: "Restart?".into(),
        body: String::new(),
        actions: vec!["restart".into()],
        state: "pending".into(),
        asked_at: at(asked),
        expires_at: at("23:00:00.000"),
        answered_by: None,
        answered_via: None,
        answered_at: None,
        reason: None,
        messages: Vec::new(),
    }
}

pub(crate) async fn figures_of_seeded_runs_equal_hand_computed_values(s: Subject) {
    let b = s.backend.clone();
    b.seed_runs(seeded()).await.unwrap();
    let mut received = Vec::new();
    for (name, time) in [
        ("BotDown", "10:00:01.000"),
        ("BotDown", "11:00:01.000"),
        ("DiskFull", "12:00:00.100"),
    ] {
        let mut a = super::alert(name, "started");
        a.received_at = at(time);
        received.push(a);
    }
    let mut late = super::alert("BotDown", "started");
    late.received_at = "2026-12-02T00:00:01.000Z".into();
    received.push(late);
    b.record_alerts(received).await.unwrap();
    for (id, run, asked, answer) in [
        (
            "a1",
            "r1",
            "10:00:30.000",
            Some(("approved", "10:00:45.000")),
        ),
        (
            "a2",
            "r2",
            "11:00:10.000",
            Some(("rejected", "11:01:10.000")),
        ),
        (
            "a3",
            "r3",
            "11:30:10.000",
            Some(("expired", "11:35:10.000")),
        ),
        ("a4", "r5", "12:00:02.000", None),
    ] {
        b.open_approval(question(id, run, asked)).await.unwrap();
        if let Some((state, when)) = answer {
            let decision = Decision {
                state,
                by: Some("alice".into()),
                via: "cli".into(),
                reason: None,
                at: at(when),
            };
            b.decide_approval(id, decision).await.unwrap().expect(id);
        }
    }

    let f = b.figures(&day()).await.unwrap();
    let t = &f.total;
    assert_eq!(t.runs, 8);
    assert_eq!(
        t.outcomes,
        outcomes(&[
            ("escalated", 1),
            ("failed", 1),
            ("lost", 1),
            ("mitigated", 1),
            ("no-action", 1),
            ("queued", 1),
            ("resolved", 1),
            ("running", 1)
        ])
    );
    assert_eq!((t.automatic, t.escalated), (2, 1));
    // [250, 1000, 1000, 2000, 3000, 6000, 12000]: ranks 4 and 7.
    assert_eq!(t.to_start, p(7, 2000, 12000));
    // [2000, 20000, 30000]: ranks 2 and 3.
    assert_eq!(t.to_first_action, p(3, 20000, 30000));
    // [2250, 3000, 60000, 60000, 300000]: ranks 3 and 5; the lost run's end is no outcome.
    assert_eq!(t.to_outcome, p(5, 60000, 300000));

    let names: Vec<_> = f
        .playbooks
        .iter()
        .map(|g| (g.name.as_str(), g.runs))
        .collect();
    assert_eq!(names, [("bot-restart", 5), ("disk-full", 3)]);
    let bot = &f.playbooks[0];
    assert_eq!(bot.to_start, p(4, 3000, 12000));
    assert_eq!(bot.to_outcome, p(3, 60000, 300000));
    assert_eq!(bot.success_rate(), Some(50.0), "2 good of 4 ended");
    let disk = &f.playbooks[1];
    assert_eq!(disk.to_start, p(3, 1000, 1000));
    assert_eq!(disk.to_first_action, p(1, 2000, 2000));
    assert_eq!(disk.to_outcome, p(2, 2250, 3000));

    let alerts: Vec<_> = f
        .alert_runs
        .iter()
        .map(|g| (g.name.as_str(), g.runs))
        .collect();
    assert_eq!(alerts, [("BotDown", 4), ("DiskFull", 2)]);
    assert_eq!(f.top_alerts, counted(&[("BotDown", 2), ("DiskFull", 1)]));
    assert_eq!(f.alerts_received, 3);
    assert_eq!(f.nodes, counted(&[("n1", 4), ("n2", 1), ("node-b", 1)]));
    let buckets: Vec<_> = f
        .buckets
        .iter()
        .map(|b| (b.start.as_str(), b.outcomes.values().sum::<u64>()))
        .collect();
    assert_eq!(
        buckets,
        [
            ("2026-12-01T10", 1),
            ("2026-12-01T11", 2),
            ("2026-12-01T12", 2),
            ("2026-12-01T13", 1),
            ("2026-12-01T14", 1),
            ("2026-12-01T15", 1)
        ]
    );
    assert_eq!(
        f.buckets[1].outcomes,
        outcomes(&[("escalated", 1), ("mitigated", 1)])
    );
    // r1 took 60 s (1–5 min), r2 300 s (5–15 min).
    assert_eq!(f.to_mitigate, [0, 1, 1, 0, 0, 0]);
    assert_eq!(
        f.actions,
        counted(&[("docker.restart", 4), ("notify.send", 1)])
    );
    assert_eq!(f.approvals.asked, 4);
    assert_eq!(
        f.approvals.states,
        outcomes(&[
            ("approved", 1),
            ("expired", 1),
            ("pending", 1),
            ("rejected", 1)
        ])
    );
    assert_eq!(f.approvals.to_answer, p(2, 15000, 60000));

    // By day: one bucket; an empty window has no figures.
    let by_day = b
        .figures(&Window {
            bucket: Bucket::Day,
            ..day()
        })
        .await
        .unwrap();
    assert_eq!(by_day.buckets.len(), 1);
    assert_eq!(by_day.buckets[0].start, "2026-12-01");
    let empty = b
        .figures(&Window {
            since: "2025-01-01T00:00:00.000Z".into(),
            until: "2025-01-02T00:00:00.000Z".into(),
            bucket: Bucket::Hour,
        })
        .await
        .unwrap();
    assert_eq!((empty.total.runs, empty.total.to_start.p50_ms), (0, None));
}

pub(crate) async fn a_finished_run_records_its_first_performed_mutating_call(s: Subject) {
    let b = s.backend.clone();
    let mut q = queued("f1", "bot-restart", 0);
    q.alert = Some(
        json!({ "labels": { "alertname": "BotDown" }, "startsAt": "2026-11-25T09:59:55.000Z" }),
    );
    b.admit(admit(q)).await.unwrap();
    assert_eq!(
        claimed_ids(&b, "me", 1, &limits(10, &[]), LONG).await,
        ["f1"]
    );
    let call = |at: &str, function: &str, result: &str| {
        json!({ "at": at, "offset_ms": 1.0, "event": "call", "interface": "docker",
            "function": function, "args": {}, "result": result, "duration_ms": 1.0 })
        .to_string()
    };
    let outcome = RunOutcome {
        events: vec![
            call("2026-11-25T10:00:01.000Z", "inspect", "ok"),
            call("2026-11-25T10:00:02.000Z", "restart", "denied"),
            call("2026-11-25T10:00:05.000Z", "restart", "ok"),
            call("2026-11-25T10:00:06.000Z", "restart", "ok"),
        ],
        ..super::outcome("f1", "resolved")
    };
    b.finish(outcome).await.unwrap();
    let window = Window {
        since: "2026-11-25T00:00:00.000Z".into(),
        until: "2026-11-26T00:00:00.000Z".into(),
        bucket: Bucket::Day,
    };
    let f = b.figures(&window).await.unwrap();
    assert_eq!(f.total.runs, 1);
    // Detected 09:59:55 (startsAt), first performed restart 10:00:05; ended 10:00:02 (the
    // fixture's end) is 7 s after detection.
    assert_eq!(f.total.to_first_action, p(1, 10000, 10000));
    assert_eq!(f.total.to_outcome, p(1, 7000, 7000));
    assert_eq!(f.actions, counted(&[("docker.restart", 2)]));
    assert_eq!(f.alert_runs[0].name, "BotDown");
}
