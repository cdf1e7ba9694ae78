//! The escapers: the terminal's (`text::escape`, no control, bidi or invisible character
//! left; idempotent), the store's (no NUL), Slack mrkdwn's and Telegram HTML's (no raw `<`
//! or `>`, every `&` an entity we wrote; unescaping gives the text back), and the caps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runbook_core::text;

fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);

    let shown = text::escape(&raw);
    assert!(!shown.chars().any(is_unsafe), "{shown:?}");
    assert_eq!(
        text::escape(&shown),
        shown,
        "escaping twice changes nothing"
    );
    let lines = text::escape_keeping_lines(&raw);
    assert!(
        !lines
            .chars()
            .any(|c| is_unsafe(c) && c != '\n' && c != '\t')
    );
    assert_eq!(
        lines.matches('\n').count(),
        raw.matches('\n').count(),
        "the lines are kept"
    );
    assert!(!text::for_store(&raw).contains('\0'));
    assert!(!text::escape(&text::echo(&raw)).chars().any(is_unsafe));

    for escaped in [text::slack_escape(&raw), text::telegram_escape(&raw)] {
        assert!(!escaped.contains(['<', '>']), "{escaped:?}");
        let mut rest = escaped.as_str();
        while let Some(at) = rest.find('&') {
            rest = &rest[at..];
            let entity = ["&amp;", "&lt;", "&gt;"]
                .iter()
                .find(|e| rest.starts_with(**e));
            rest = &rest[entity.expect("a bare &").len()..];
        }
        let back = escaped
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        assert_eq!(back, raw);
    }

    for max in [0, 1, 7, 100] {
        let cut = text::truncate(&raw, max);
        if raw.len() <= max {
            assert_eq!(cut, raw);
        } else {
            // A prefix of at most `max` bytes, then how long the original was (text that is
            // already such a cut is left as it is).
            let (kept, note) = cut.rsplit_once('…').expect("the cut is marked");
            assert!(kept.len() <= max && raw.starts_with(kept));
            if cut != raw {
                assert_eq!(note, format!("[{} bytes in all]", raw.len()));
            }
            assert_eq!(
                text::truncate(&cut, max),
                cut,
                "cutting twice changes nothing"
            );
        }
    }
});
