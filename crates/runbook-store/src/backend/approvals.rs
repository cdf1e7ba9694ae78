//! Approvals: questions runs asked people (`approval.ask`), decided once.

use anyhow::Result;

use crate::records::{ApprovalRecord, Decision};

/// Owns approvals: questions, where they were posted, and their first decision.
#[async_trait::async_trait]
pub trait ApprovalStore: Send + Sync {
    /// Records a question, `pending` (its `state` and answer fields are ignored).
    async fn open_approval(&self, approval: ApprovalRecord) -> Result<()>;

    /// Where the question was posted, replacing what was recorded.
    async fn set_approval_messages(&self, id: &str, messages: Vec<serde_json::Value>)
    -> Result<()>;

    /// Ends a `pending` approval with `decision`, atomically across every process: the first
    /// decision wins. Returns the approval as decided, or `None` when it was not pending (or
    /// does not exist).
    async fn decide_approval(&self, id: &str, decision: Decision)
    -> Result<Option<ApprovalRecord>>;

    async fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>>;

    /// Pending approvals, oldest first; with `run_id`, that run's approvals in any state.
    async fn approvals(&self, run_id: Option<&str>) -> Result<Vec<ApprovalRecord>>;

    /// Pending approvals whose run is no longer `running` (its process died and the run was
    /// marked `lost`, or it ended otherwise) end `lost`; returns them, each to one caller.
    async fn orphaned_approvals(&self, at: &str) -> Result<Vec<ApprovalRecord>>;
}
