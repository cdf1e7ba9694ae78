//! A recorded run as a fixture (`host run --record`, `host runs export --fixture`): the run's
//! calls with its run id abstracted, and what the run came to as the expectation.

use crate::run::RunRecord;
use crate::tape::{Expect, ExpectedNotification, Fixture, FixtureCall, FixtureIncident};

impl Fixture {
    /// A run and its recorded calls as a fixture; `expect` is what the run came to (the
    /// summary and titles as exact patterns).
    pub fn recorded(record: &RunRecord, mut calls: Vec<FixtureCall>) -> Self {
        for call in &mut calls {
            crate::tape::abstract_run_id(&mut call.args, &record.run_id);
        }
        let alert = record.alert.clone().and_then(|json| {
            let mut alert = crate::incident::parse_alert(json.clone()).ok()?;
            if let Some(name) = json["name"].as_str() {
                alert.name = name.to_string();
            }
            Some(alert)
        });
        let notifications = record
            .timeline
            .iter()
            .filter_map(|e| match &e.kind {
                crate::timeline::EventKind::Notification {
                    channel,
                    severity,
                    title,
                    ..
                } => Some(ExpectedNotification {
                    channel: channel.clone(),
                    title: Some(exact(title)),
                    severity: Some(severity.clone()),
                }),
                _ => None,
            })
            .collect();
        Self {
            playbook: Some(record.playbook.clone()),
            incident: FixtureIncident {
                trigger: Some(record.trigger.to_string()),
                params: record.params.clone(),
                alert,
                dry_run: record.dry_run,
                wall_clock_ms: humantime::parse_rfc3339(&record.started_at)
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_millis() as u64),
            },
            calls,
            expect: Expect {
                status: Some(record.status.to_string()),
                summary: Some(exact(&record.summary)),
                actions: Some(record.actions.clone()),
                notifications: Some(notifications),
            },
        }
    }
}

/// A pattern matching exactly this text.
fn exact(text: &str) -> String {
    format!("^{}$", regex::escape(text))
}
