//! An approval as people read it: the question for channels without buttons and for
//! `host approvals`, and the one line on how it ended.

use crate::records::ApprovalRecord;

/// The question as plain text, for channels without buttons and for `host approvals`.
pub fn question_text(record: &ApprovalRecord) -> String {
    let mut text = String::new();
    if !record.body.is_empty() {
        text.push_str(&record.body);
        text.push_str("\n\n");
    }
    if !record.actions.is_empty() {
        text.push_str("If approved:\n");
        for action in &record.actions {
            text.push_str(&format!("• {action}\n"));
        }
        text.push('\n');
    }
    text.push_str(&format!(
        "Asked by run {} ({}) of group {}; expires {}.\nAnswer: host approve {} [--reject --reason …]",
        record.run_id, record.playbook, record.group, record.expires_at, record.run_id
    ));
    text
}

/// One line on how the approval ended, for edited messages, the timeline and the CLI.
pub fn decision_line(record: &ApprovalRecord) -> String {
    let by = record.answered_by.as_deref().unwrap_or("nobody");
    let at = record.answered_at.as_deref().unwrap_or("");
    match record.state.as_str() {
        "approved" => format!("✅ Approved by {by} at {at}"),
        "rejected" => format!(
            "❌ Rejected by {by} at {at}: {}",
            record
                .reason
                .as_deref()
                .filter(|r| !r.trim().is_empty())
                .unwrap_or("no reason given")
        ),
        "expired" => format!("⌛ Expired at {at}: nobody answered in time"),
        "lost" => format!("⚠️ Run lost at {at}: the host running it stopped while it waited"),
        other => format!("{other} at {at}"),
    }
}
