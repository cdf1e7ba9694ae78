//! Asks `group` one question and ends by the answer: approved → resolved (action "acted"),
//! rejected → no-action, expired → escalated (the fallback). The approval tests drive it
//! through every channel people answer in.

use runbook_sdk::bindings::runbook::host::approval::{self, Answer, Question};
use runbook_sdk::prelude::*;

fn describe() -> Description {
    Description::new(
        "asks",
        "Asks an approver group one question (approval tests)",
    )
    .param("group", "approver group to ask", Some("oncall"))
    .param("title", "the question", Some("Restart web-1?"))
    .param("timeout", "seconds to wait", Some("30"))
    .wants(Capability::Approval)
}

fn run(incident: Incident) -> Result<Outcome, Error> {
    let group = incident.param("group").unwrap_or("oncall").to_string();
    let timeout: u32 = incident.param_as("timeout")?.unwrap_or(30);
    let question = Question {
        title: incident
            .param("title")
            .unwrap_or("Restart web-1?")
            .to_string(),
        body: "web-1 stopped answering its health check 3 times in a row.".into(),
        actions: vec!["restart web-1".into()],
        timeout_secs: timeout,
    };
    Ok(match approval::ask(&group, &question)? {
        Answer::Approved(by) => Outcome::resolved(format!("approved by {by}")).action("acted"),
        Answer::Rejected(r) => Outcome::no_action(format!("rejected by {}: {}", r.by, r.reason)),
        Answer::Expired => Outcome::escalated("expired: nobody answered; escalating"),
    })
}

runbook_sdk::export_playbook!(describe, run);
