//! The agent API's bodies as the server reads them from a node (`/agent/v1/poll`, heartbeat,
//! events, finish): each parses into its type, serialises back to what parses the same, and
//! every event passes the timeline's gate (capped, kept as JSON that reads back).
#![no_main]

use libfuzzer_sys::fuzz_target;
use runbook_core::fleet::{
    EventsUpload, FinishUpload, HeartbeatRequest, PollRequest, check_session,
};
use runbook_core::timeline::{Event, admit};
use serde::Serialize;
use serde::de::DeserializeOwned;

fuzz_target!(|body: &[u8]| {
    round_trip::<PollRequest>(body);
    round_trip::<HeartbeatRequest>(body);
    if let Some(upload) = round_trip::<EventsUpload>(body) {
        upload.events.into_iter().for_each(gate);
    }
    if let Some(upload) = round_trip::<FinishUpload>(body) {
        if check_session(&upload.agent.session).is_ok() {
            assert_eq!(upload.agent.session.len(), 32);
        }
        upload.events.into_iter().for_each(gate);
    }
});

/// Parses `body` as `T`; what parsed serialises to JSON that parses to the same JSON again.
fn round_trip<T: Serialize + DeserializeOwned>(body: &[u8]) -> Option<T> {
    let parsed: T = serde_json::from_slice(body).ok()?;
    let once = serde_json::to_value(&parsed).expect("serialises");
    let again: T = serde_json::from_value(once.clone()).expect("its own JSON parses");
    assert_eq!(serde_json::to_value(&again).unwrap(), once);
    Some(parsed)
}

fn gate(event: Event) {
    let (kept, json) = admit(event);
    let read: Event = serde_json::from_str(&json).expect("a kept event reads back");
    // Capping is done once: a kept event passes the gate unchanged.
    let (_, again) = admit(read);
    assert_eq!(again, json);
    assert_eq!(serde_json::to_string(&kept).unwrap(), json);
}
