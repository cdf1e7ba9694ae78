//! Slack interactivity payloads (`payload=<JSON>`, form-encoded) into a button click: only a
//! click on one of our buttons is one, and what it names is short and plain.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runbook_core::slack::parse_click;

fuzz_target!(|body: &[u8]| {
    let Some(click) = parse_click(body) else {
        return;
    };
    let id = &click.approval_id;
    assert!(!id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_hexdigit()));
    let user = &click.user_id;
    assert!(
        !user.is_empty() && user.len() <= 32 && user.bytes().all(|b| b.is_ascii_alphanumeric())
    );
    assert!(
        click
            .user_name
            .as_ref()
            .is_none_or(|n| n.chars().count() <= 80)
    );
});
