//! Record a run's capability calls as a fixture, and replay a playbook against one (`host test`).
//!
//! The seam is the WIT boundary: every capability host function runs through `taped!`
//! (`crate::calls::seam`), which (recording) keeps the call's arguments and full result or
//! error, or (replaying) answers the call from the fixture instead of the world. A replayed
//! call still passes this host's grant check first, done on what the fixture says the call
//! reached (container name and labels, path, origin, channel): a fixture never turns a call
//! this host denies into a success. The tape and the fixture format are `crate::tape`, below
//! the capabilities; this module runs playbooks against fixtures, above `crate::run`.

pub mod cli;
#[cfg(test)]
mod forged;
pub mod test;

pub use crate::tape::{
    ANY, BadFixture, Expect, ExpectedNotification, FIXTURE_ARTIFACT, Fixture, FixtureCall,
    FixtureIncident, Mismatch, RUN_ID, ReplayMismatch, Replayer, Tape, args_match,
};
pub use test::{TestReport, run_fixture};
