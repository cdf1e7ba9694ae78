//! Telegram updates (`getUpdates`' results): the press's `callback_data` and whether it was
//! made on the message a question was posted as. Input: `{"update": <update>, "posted":
//! [<messages as the record keeps them>], "channels": [..]}`, or a bare update.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runbook_core::records::ApprovalRecord;
use runbook_core::telegram::{callback_data, parse_callback, posted_on};
use serde_json::{Value, json};

fuzz_target!(|body: &[u8]| {
    let Ok(input) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let update = input.get("update").unwrap_or(&input);
    let query = &update["callback_query"];
    if let Some(data) = query["data"].as_str()
        && let Some((id, approve)) = parse_callback(data)
    {
        // Only our own buttons' data: an id of ≤ 32 hex digits, and it is what we would send.
        assert!(id.len() <= 32 && id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(callback_data(id, approve), data);
        assert!(data.len() <= 64, "within the Bot API's callback_data");
    }
    let mut record: ApprovalRecord = serde_json::from_value(json!({
        "id": "0", "run_id": "r", "playbook": "p", "group": "g", "title": "t", "body": "b",
        "actions": [], "state": "pending", "asked_at": "", "expires_at": "",
        "answered_by": null, "answered_via": null, "answered_at": null, "reason": null,
        "messages": [],
    }))
    .expect("a record");
    record.messages = input["posted"].as_array().cloned().unwrap_or_default();
    let channels: Vec<String> = input["channels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(String::from))
        .collect();
    let message = &query["message"];
    if posted_on(&record, &channels, message) {
        // A press counts only on a message with an id, in a chat named by id or @username,
        // posted through one of the bot's channels as a Telegram message.
        let id = message["message_id"].as_i64().expect("a message id");
        let chat = &message["chat"];
        assert!(chat["id"].as_i64().is_some() || chat["username"].as_str().is_some());
        assert!(record.messages.iter().any(|m| {
            m["message_id"].as_i64() == Some(id)
                && m["kind"] == "telegram"
                && m["channel"]
                    .as_str()
                    .is_some_and(|c| channels.iter().any(|o| o == c))
        }));
    }
    assert!(!posted_on(&record, &[], message), "no channel, no press");
});
