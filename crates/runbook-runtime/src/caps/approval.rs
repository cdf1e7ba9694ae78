//! The `approval` capability: the grant check (the group is in the playbook's `approval`
//! grants and in host.toml), bounds on the question, then `crate::approval` records it,
//! posts it and waits. The wait is paused on the run's clock: it does not count against the
//! deadline, and ends at the question's timeout (capped by the group's `max-wait-secs`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use crate::approval::{Approvals, decision_line, new_id, without_controls};
use crate::bindings::CapError;
use crate::bindings::runbook::host::approval::{self, Answer, Question, Rejection};
use crate::calls::seam::{Gate, arg, taped, untargeted};
use crate::records::{ApprovalRecord, rfc3339};

/// The `approval` interface's view of a run: the run's `Calls` and the host's approvals, if any.
pub struct ApprovalView<'a> {
    pub(crate) calls: &'a mut crate::calls::Calls,
    pub(crate) approvals: &'a Option<Arc<crate::approval::Approvals>>,
}
crate::calls::view_of_calls!(ApprovalView);

/// Links the interface to `ApprovalView` (`add_to_linker_instance::<_, Approval>`).
pub struct Approval;
impl wasmtime::component::HasData for Approval {
    type Data<'a> = ApprovalView<'a>;
}

pub const MAX_TITLE_BYTES: usize = 256;
pub const MAX_BODY_BYTES: usize = 8 << 10;
pub const MAX_ACTIONS: usize = 20;
pub const MAX_ACTION_BYTES: usize = 256;
pub const MAX_GROUP_BYTES: usize = 64;

impl approval::Host for ApprovalView<'_> {
    async fn ask(
        &mut self,
        group: String,
        question: Question,
    ) -> wasmtime::Result<Result<Answer, CapError>> {
        let gate: Gate<Self> = {
            let group = group.clone();
            let question = question.clone();
            untargeted(move |state: &Self| {
                state.group_granted(&group)?;
                check_question(&question)
            })
        };
        taped!(
            self,
            "approval",
            "ask",
            Answer,
            json!({ "group": arg(&group), "question": arg(&question) }),
            gate,
            { self.live_ask(group, question).await }
        )
    }
}

fn check_question(q: &Question) -> Result<(), CapError> {
    let over = |what: &str, len: usize, max: usize| {
        CapError::Invalid(format!("approval {what} is {len} bytes; at most {max}"))
    };
    if q.title.trim().is_empty() {
        return Err(CapError::Invalid("approval title is empty".into()));
    }
    if q.title.len() > MAX_TITLE_BYTES {
        return Err(over("title", q.title.len(), MAX_TITLE_BYTES));
    }
    if q.body.len() > MAX_BODY_BYTES {
        return Err(over("body", q.body.len(), MAX_BODY_BYTES));
    }
    if q.actions.len() > MAX_ACTIONS {
        return Err(CapError::Invalid(format!(
            "{} proposed actions; at most {MAX_ACTIONS}",
            q.actions.len()
        )));
    }
    if let Some(a) = q.actions.iter().find(|a| a.len() > MAX_ACTION_BYTES) {
        return Err(over("action", a.len(), MAX_ACTION_BYTES));
    }
    if q.timeout_secs == 0 {
        return Err(CapError::Invalid("approval timeout-secs is 0".into()));
    }
    Ok(())
}

impl ApprovalView<'_> {
    fn group_granted(&self, group: &str) -> Result<(), CapError> {
        if group.len() > MAX_GROUP_BYTES || !self.grants.approval.iter().any(|g| g == group) {
            return Err(CapError::Denied(format!(
                "approver group {:?} is not granted to this playbook (granted: [{}])",
                crate::text::echo(group),
                self.grants.approval.join(", ")
            )));
        }
        Ok(())
    }

    async fn live_ask(
        &mut self,
        group: String,
        question: Question,
    ) -> wasmtime::Result<Result<Answer, CapError>> {
        self.begin_call()?;
        let started = Instant::now();
        let args = json!({
            "group": crate::text::echo(&group),
            "title": crate::text::echo(&question.title),
            "actions": question.actions.len(),
            "timeout_secs": question.timeout_secs,
        });
        // The wait is the people's time, not the playbook's: the run's clock stops.
        let paused = self.clock.pause();
        let result = self.ask_and_wait(&group, question).await;
        drop(paused);
        let waited = started.elapsed();
        let dry_run = self.dry_run;
        self.record_call(
            "approval",
            "ask",
            args,
            &result,
            |answer| answer_detail(answer, dry_run),
            waited,
        );
        Ok(result)
    }

    async fn ask_and_wait(&mut self, group: &str, question: Question) -> Result<Answer, CapError> {
        self.group_granted(group)?;
        check_question(&question)?;
        let service: Arc<Approvals> = self.approvals.clone().ok_or_else(|| {
            CapError::Unavailable(
                "approvals are not available here (a fleet agent's runs cannot ask yet)".into(),
            )
        })?;
        let Some(config) = service.group(group) else {
            return Err(CapError::NotFound(format!(
                "no approver group {:?} in host.toml (configured: [{}])",
                crate::text::echo(group),
                service.group_names().join(", ")
            )));
        };
        let timeout = Duration::from_secs(question.timeout_secs.into()).min(config.max_wait());
        if self.dry_run {
            self.timeline.log(
                "info",
                format!(
                    "would ask {group}: {} (a dry run asks nobody)",
                    crate::text::echo(&question.title)
                ),
            );
            return Ok(Answer::Expired);
        }
        let now = SystemTime::now();
        let record = ApprovalRecord {
            id: new_id(),
            run_id: self.context.run_id.clone(),
            playbook: self.context.playbook.clone(),
            group: group.to_string(),
            title: without_controls(&question.title, false),
            body: without_controls(&question.body, true),
            actions: question
                .actions
                .iter()
                .map(|a| without_controls(a, false))
                .collect(),
            state: "pending".into(),
            asked_at: rfc3339(now),
            expires_at: rfc3339(now + timeout),
            answered_by: None,
            answered_via: None,
            answered_at: None,
            reason: None,
            messages: Vec::new(),
        };
        let until = tokio::time::Instant::now() + timeout;
        let (record, problems) = service
            .open(record, &config)
            .await
            .map_err(|e| CapError::Failed(format!("recording the question: {e:#}")))?;
        for problem in &problems {
            self.timeline
                .log("warn", format!("the question did not reach {problem}"));
        }
        if record.messages.is_empty() && config.users.is_empty() && config.groups.is_empty() {
            // Nobody can see it (no message went out, no one answers in the console or the
            // CLI): end it now rather than wait for nothing.
            let _ = service
                .store()
                .decide_approval(
                    &record.id,
                    crate::records::Decision {
                        state: "expired",
                        by: None,
                        via: "timeout".into(),
                        reason: Some("no channel could carry the question".into()),
                        at: rfc3339(SystemTime::now()),
                    },
                )
                .await;
            return Err(CapError::Unavailable(format!(
                "no channel of group {group} could carry the question: {}",
                problems.join("; ")
            )));
        }
        self.timeline.log(
            "info",
            format!(
                "asked {group}: {} (approval {}; waiting until {}; answer with `host approve {}`)",
                record.title, record.id, record.expires_at, record.run_id
            ),
        );
        let decided = service
            .wait(&record.id, until)
            .await
            .map_err(|e| CapError::Failed(format!("waiting for the answer: {e:#}")))?;
        self.timeline.log("info", decision_line(&decided));
        Ok(match decided.state.as_str() {
            "approved" => Answer::Approved(decided.answered_by.unwrap_or_default()),
            "rejected" => Answer::Rejected(Rejection {
                by: decided.answered_by.unwrap_or_default(),
                reason: decided.reason.unwrap_or_default(),
            }),
            _ => Answer::Expired,
        })
    }
}

/// The answer as the timeline shows it; a rejection without a reason has no dangling ": ".
fn answer_detail(answer: &Answer, dry_run: bool) -> String {
    match answer {
        Answer::Approved(by) => format!("approved by {by}"),
        Answer::Rejected(r) if r.reason.trim().is_empty() => format!("rejected by {}", r.by),
        Answer::Rejected(r) => format!("rejected by {}: {}", r.by, r.reason),
        Answer::Expired if dry_run => "would ask; a dry run answers expired".into(),
        Answer::Expired => "expired".into(),
    }
}

#[cfg(test)]
mod answer_tests {
    use super::*;

    #[test]
    fn a_rejection_reads_with_its_reason_or_without_a_dangling_colon() {
        let rejected = |reason: &str| {
            Answer::Rejected(Rejection {
                by: "cli:root".into(),
                reason: reason.into(),
            })
        };
        assert_eq!(answer_detail(&rejected(""), false), "rejected by cli:root");
        assert_eq!(
            answer_detail(&rejected("not during the release"), false),
            "rejected by cli:root: not during the release"
        );
        assert_eq!(
            answer_detail(&Answer::Approved("cli:root".into()), false),
            "approved by cli:root"
        );
    }
}
