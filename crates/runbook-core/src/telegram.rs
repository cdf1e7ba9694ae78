//! Telegram button presses: the `callback_data` our questions carry and whether a press was
//! made on the message a question was posted as. The update comes from the Bot API; its
//! `data` was ours but comes back through the client, so it is parsed, not believed.

use serde_json::Value;

use crate::records::ApprovalRecord;

/// `ap:<id>:y` / `ap:<id>:n`: within the Bot API's 64 bytes.
pub fn callback_data(id: &str, approve: bool) -> String {
    format!("ap:{id}:{}", if approve { "y" } else { "n" })
}

pub fn parse_callback(data: &str) -> Option<(&str, bool)> {
    let rest = data.strip_prefix("ap:")?;
    let (id, answer) = rest.rsplit_once(':')?;
    let approve = match answer {
        "y" => true,
        "n" => false,
        _ => return None,
    };
    (id.len() <= 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some((id, approve))
}

/// Whether `message` (a callback's) is one the question was posted as through one of
/// `channels`: same message id, and the same chat (by id, or by `@username` for a public
/// channel configured that way).
pub fn posted_on(record: &ApprovalRecord, channels: &[String], message: &Value) -> bool {
    let chat = &message["chat"];
    record.messages.iter().any(|posted| {
        let through = posted["channel"]
            .as_str()
            .is_some_and(|name| channels.iter().any(|c| c == name));
        let same_chat = match posted["chat_id"].as_str() {
            Some(name) if name.starts_with('@') => {
                chat["username"]
                    .as_str()
                    .map(|u| format!("@{u}"))
                    .as_deref()
                    == Some(name)
            }
            // A chat id on both sides, and the same: two missing ids are no match.
            Some(number) => number
                .parse::<i64>()
                .ok()
                .is_some_and(|n| chat["id"].as_i64() == Some(n)),
            None => posted["chat_id"]
                .as_i64()
                .is_some_and(|n| chat["id"].as_i64() == Some(n)),
        };
        through
            && posted["kind"] == "telegram"
            && posted["message_id"].as_i64().is_some()
            && posted["message_id"].as_i64() == message["message_id"].as_i64()
            && same_chat
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The invariant of `fuzz/` target `telegram` (a press counts only in a chat named on both
    /// sides): a question posted without a chat id matched any press on a message without one,
    /// since two missing ids compared equal.
    #[test]
    fn two_missing_chat_ids_are_no_match() {
        let mut record: ApprovalRecord = serde_json::from_value(json!({
            "id": "0", "run_id": "r", "playbook": "p", "group": "g", "title": "t", "body": "b",
            "actions": [], "state": "pending", "asked_at": "", "expires_at": "",
            "answered_by": null, "answered_via": null, "answered_at": null, "reason": null,
            "messages": [{"channel": "tg", "kind": "telegram", "message_id": 17}],
        }))
        .unwrap();
        let tg = ["tg".to_string()];
        assert!(!posted_on(&record, &tg, &json!({"message_id": 17})));
        assert!(!posted_on(
            &record,
            &tg,
            &json!({"message_id": 17, "chat": {}})
        ));
        record.messages[0]["chat_id"] = json!("not-a-number");
        assert!(!posted_on(&record, &tg, &json!({"message_id": 17})));
        record.messages[0]["chat_id"] = json!(-100123);
        assert!(posted_on(
            &record,
            &tg,
            &json!({"message_id": 17, "chat": {"id": -100123}})
        ));
        assert!(!posted_on(
            &record,
            &tg,
            &json!({"message_id": 17, "chat": {"id": 5}})
        ));
    }
}
