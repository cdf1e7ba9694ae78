//! `host approvals` and `host approve`: the terminal as one more place people answer. The
//! answerer is this process's login name (from the user database, not `$USER`), checked
//! against the group's `users`.

use std::sync::Arc;

use anyhow::Result;

use super::{Answered, Approvals, Approver, decision_line, question_text};
use crate::records::ApprovalRecord;
use crate::text::escape;

/// Exit codes: 0 recorded, 1 refused (not listed, already decided), 2 no such question.
pub const REFUSED: u8 = 1;
pub const UNKNOWN: u8 = 2;

/// The login name of the user running this process.
pub fn login_name() -> String {
    let uid = rustix::process::getuid().as_raw();
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let entry_uid: u32 = fields.nth(1)?.parse().ok()?;
                (entry_uid == uid).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| format!("uid-{uid}"))
}

pub fn table(pending: &[ApprovalRecord]) -> String {
    if pending.is_empty() {
        return "no questions waiting for an answer\n".into();
    }
    let mut out = format!(
        "{:<22} {:<16} {:<10} {:<24} {}\n",
        "RUN", "APPROVAL", "GROUP", "EXPIRES", "QUESTION"
    );
    for a in pending {
        out.push_str(&format!(
            "{:<22} {:<16} {:<10} {:<24} {}\n",
            escape(&a.run_id),
            escape(&a.id),
            escape(&a.group),
            escape(&a.expires_at),
            escape(&a.title)
        ));
    }
    out.push_str("\nAnswer with: host approve RUN [--reject --reason TEXT]\n");
    out
}

/// `target` is a run id (its one pending question) or an approval id.
pub async fn approve(
    approvals: &Arc<Approvals>,
    target: &str,
    reject: bool,
    reason: Option<String>,
) -> Result<(u8, String)> {
    let store = approvals.store();
    let id = match store.approval(target).await? {
        Some(record) => record.id,
        None => {
            let asked = store.approvals(Some(target)).await?;
            let pending: Vec<_> = asked.iter().filter(|a| a.state == "pending").collect();
            match pending.as_slice() {
                [one] => one.id.clone(),
                [] if asked.is_empty() => {
                    return Ok((
                        UNKNOWN,
                        format!(
                            "no run or approval {:?} has asked anything (`host approvals` lists the waiting ones)",
                            crate::text::echo(target)
                        ),
                    ));
                }
                [] => {
                    let last = asked.last().expect("not empty");
                    return Ok((REFUSED, format!("already decided: {}", decision_line(last))));
                }
                many => {
                    let ids: Vec<&str> = many.iter().map(|a| a.id.as_str()).collect();
                    return Ok((
                        REFUSED,
                        format!(
                            "run {target} waits on {} questions; name one: {}",
                            many.len(),
                            ids.join(", ")
                        ),
                    ));
                }
            }
        }
    };
    let who = Approver::Cli(login_name());
    Ok(match approvals.answer(&id, &who, !reject, reason).await? {
        Answered::Recorded(record) => (0, decision_line(&record)),
        Answered::Closed(record) => (
            REFUSED,
            format!("already decided: {}", decision_line(&record)),
        ),
        Answered::NotAllowed(why) => (
            REFUSED,
            format!(
                "{why}: add `users = [\"{}\"]` to that group in host.toml",
                login_name()
            ),
        ),
        Answered::NotFound => (UNKNOWN, format!("no approval {id:?}")),
    })
}

/// One question in full, for `host approvals --show`.
pub fn show(record: &ApprovalRecord) -> String {
    format!(
        "{}\n\n{}\n",
        escape(&record.title),
        crate::text::escape_keeping_lines(&question_text(record))
    )
}
