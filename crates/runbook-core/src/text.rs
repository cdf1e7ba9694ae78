//! Text a playbook or a webhook chose, made safe to keep and to show: capped in size (keeping
//! the original length, so the audit log says what was cut) and with control characters escaped
//! before it reaches a terminal, a report or an error message.

use std::borrow::Cow;

use serde_json::Value;

/// Longest piece of someone else's input quoted back in an error message.
pub const ECHO_CHARS: usize = 100;

/// Characters that make a terminal do something instead of showing something: C0 and C1
/// controls, DEL, and the bidirectional/invisible formatting marks that make text read
/// differently from what it is.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// `text` with every unsafe character written as `\u{…}` (`\n`, `\r`, `\t` as such), so a
/// playbook's summary cannot forge a line, move the cursor, or set the clipboard.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Text as every store keeps it: NUL, which PostgreSQL's `text` refuses and SQLite keeps,
/// written as [`escape`] writes it (`\u{0}`), so both backends take and give back the same
/// string. Invalid UTF-8 never gets this far: bytes become text through
/// `String::from_utf8_lossy` (U+FFFD) where they enter.
pub fn for_store(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\\u{0}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// Like [`escape`], but keeps line breaks and tabs: for multi-line text a playbook wrote
/// (artifact contents shown as text), where the lines are the content.
pub fn escape_keeping_lines(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| is_unsafe(c) && c != '\n' && c != '\t') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            '\r' => out.push_str("\\r"),
            c if is_unsafe(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// At most `max` bytes of `text` (cut on a character boundary); when cut, says how long the
/// original was. Text already cut to `max` is left as it is, so a second gate (an agent's
/// timeline admitted again by the server) keeps the original length, not the cut one's.
pub fn truncate(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max || already_cut(text, max) {
        return Cow::Borrowed(text);
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    Cow::Owned(format!("{}…[{} bytes in all]", &text[..cut], text.len()))
}

/// `text` is what [`truncate`] makes of a longer text at `max`: a prefix within `max`, then
/// `…[N bytes in all]` with N over `max`.
fn already_cut(text: &str, max: usize) -> bool {
    let Some((kept, note)) = text.rsplit_once('…') else {
        return false;
    };
    let all = note
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(" bytes in all]"))
        .and_then(|n| n.parse::<usize>().ok());
    kept.len() <= max && all.is_some_and(|all| all > max)
}

/// In place, for owned strings a playbook handed over.
pub fn truncate_owned(text: String, max: usize) -> String {
    match truncate(&text, max) {
        Cow::Borrowed(_) => text,
        Cow::Owned(cut) => cut,
    }
}

/// A piece of someone else's input quoted in an error message: at most [`ECHO_CHARS`]
/// characters, with its length in bytes when cut, so an error cannot carry a 4 MiB argument
/// back into the timeline and the store. Quote it with `{:?}` to escape control characters.
pub fn echo(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(ECHO_CHARS) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => Cow::Owned(format!("{}… ({} bytes)", &text[..cut], text.len())),
    }
}

/// Every string in a JSON value capped at `max_string` bytes and every array at `max_items`
/// elements (the count kept), so a recorded call's arguments stay small whatever was passed.
pub fn cap_json(value: Value, max_string: usize, max_items: usize) -> Value {
    match value {
        Value::String(s) => Value::String(truncate_owned(s, max_string)),
        Value::Array(items) => {
            let total = items.len();
            let mut kept: Vec<Value> = items
                .into_iter()
                .take(max_items)
                .map(|v| cap_json(v, max_string, max_items))
                .collect();
            if total > max_items {
                kept.push(Value::String(format!("…[{total} items in all]")));
            }
            Value::Array(kept)
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    (
                        truncate_owned(k, max_string),
                        cap_json(v, max_string, max_items),
                    )
                })
                .collect(),
        ),
        other => other,
    }
}

/// JSON for a terminal: serde_json escapes C0 controls but writes DEL, C1 controls and bidi
/// marks raw; this writes those as `\uXXXX` too.
pub fn json_for_terminal(value: &impl serde::Serialize) -> serde_json::Result<String> {
    let mut out = Vec::new();
    let mut serializer =
        serde_json::Serializer::with_formatter(&mut out, EscapingFormatter::default());
    value.serialize(&mut serializer)?;
    Ok(String::from_utf8(out).expect("serde_json writes UTF-8"))
}

/// `PrettyFormatter` plus `\uXXXX` for the characters [`is_unsafe`] names.
#[derive(Default)]
struct EscapingFormatter {
    pretty: serde_json::ser::PrettyFormatter<'static>,
}

impl serde_json::ser::Formatter for EscapingFormatter {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if is_unsafe(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.begin_array(w)
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.end_array(w)
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.pretty.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.end_array_value(w)
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.begin_object(w)
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.end_object(w)
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.pretty.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.end_object_value(w)
    }
}

/// Slack mrkdwn needs only `&`, `<` and `>` escaped.
pub fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Telegram's HTML mode needs `&`, `<`, `>` escaped (and `"` inside attributes, which we
/// never write).
pub fn telegram_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_moves_the_cursor_and_keeps_the_rest() {
        assert_eq!(escape("disk at 97% — ok"), "disk at 97% — ok");
        assert_eq!(
            escape("\u{1b}[2K\rRESOLVED\nfake"),
            "\\u{1b}[2K\\rRESOLVED\\nfake"
        );
        assert_eq!(escape("\u{1b}]52;c;aGk=\u{7}"), "\\u{1b}]52;c;aGk=\\u{7}");
        assert_eq!(escape("a\u{9b}31mb\u{202e}c"), "a\\u{9b}31mb\\u{202e}c");
        assert_eq!(escape_keeping_lines("a\nb\u{1b}c\r"), "a\nb\\u{1b}c\\r");
    }

    #[test]
    fn truncation_keeps_the_length_and_char_boundaries() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(echo("short"), "short");
        let long = "é".repeat(300);
        assert_eq!(
            echo(&long),
            format!("{}… (600 bytes)", "é".repeat(ECHO_CHARS))
        );
        let long = "é".repeat(100);
        let cut = truncate(&long, 11);
        assert!(cut.starts_with(&"é".repeat(5)), "{cut}");
        assert!(cut.ends_with("…[200 bytes in all]"), "{cut}");
        let json = cap_json(
            serde_json::json!({"path": "x".repeat(5000), "list": [1, 2, 3, 4]}),
            16,
            2,
        );
        assert_eq!(
            json["path"],
            format!("{}…[5000 bytes in all]", "x".repeat(16))
        );
        assert_eq!(json["list"], serde_json::json!([1, 2, "…[4 items in all]"]));
    }

    #[test]
    fn terminal_json_escapes_c1_and_bidi() {
        let out = json_for_terminal(&serde_json::json!({"s": "a\u{9b}b\u{202e}c\u{1b}"})).unwrap();
        assert!(out.contains(r#""a\u009bb\u202ec\u001b""#), "{out}");
        assert!(!out.chars().any(is_unsafe_but_newline), "{out}");
    }

    fn is_unsafe_but_newline(c: char) -> bool {
        c != '\n' && is_unsafe(c)
    }

    /// Found by `fuzz/` target `agent`: an event capped on the agent and admitted again on the
    /// server was cut a second time, and its note then named the length of the first cut
    /// (`…[85 bytes in all]`) instead of the original's.
    #[test]
    fn truncating_twice_keeps_the_original_length() {
        let long = "2".repeat(117);
        let once = truncate(&long, 64).into_owned();
        assert_eq!(once, format!("{}…[117 bytes in all]", "2".repeat(64)));
        assert_eq!(truncate(&once, 64), once);
        assert_eq!(truncate_owned(once.clone(), 64), once);
        // A note that does not fit the cap is text like any other.
        let forged = format!("{}…[117 bytes in all]", "2".repeat(65));
        assert!(truncate(&forged, 64).ends_with(&format!("[{} bytes in all]", forged.len())));
    }
}
