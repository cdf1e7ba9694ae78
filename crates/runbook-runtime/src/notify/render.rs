//! One notification, rendered the way each sink wants it. Pure functions: what a message looks
//! like in Slack or Telegram is tested without a network.

use serde_json::{Value, json};

use super::Notification;
// The escapers are in core, with the terminal's (and `fuzz/` target `escape`).
pub(crate) use runbook_core::text::slack_escape;
pub use runbook_core::text::telegram_escape;

/// Telegram's `sendMessage` limit, in characters after entity parsing; counting the escaped
/// text keeps every part under it.
pub const TELEGRAM_LIMIT: usize = 4096;
const SLACK_HEADER_LIMIT: usize = 150;
const SLACK_TEXT_LIMIT: usize = 3000;
const SLACK_FIELD_LIMIT: usize = 2000;
const SLACK_FIELDS_PER_SECTION: usize = 10;
const PAGERDUTY_SUMMARY_LIMIT: usize = 1024;

fn severity_mark(severity: &str) -> &'static str {
    match severity {
        "critical" => "🚨",
        "error" => "🔴",
        "warning" => "🟠",
        _ => "🟢",
    }
}

pub(crate) fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// "P2 critical", or just the severity when the message has no priority.
fn rank(n: &Notification) -> String {
    match &n.priority {
        Some(p) => format!("{p} {}", n.severity),
        None => n.severity.clone(),
    }
}

fn footer(n: &Notification) -> String {
    let run = super::run_link(&n.run_id).unwrap_or_else(|| n.run_id.clone());
    let mut footer = format!("playbook {} · run {run} · {}", n.playbook, n.source);
    if let Some(alert) = &n.alert {
        footer.push_str(&format!(" · alert {} ({})", alert.name, alert.status));
    }
    footer
}

/// Plain text for the console and e-mail.
/// For a terminal or a log file: the playbook's words with control characters escaped (the
/// body keeps its lines).
pub fn text(channel: &str, n: &Notification) -> String {
    use crate::text::escape as esc;
    let mut out = format!(
        "\n── notify {} [{}] {}\n",
        esc(channel),
        rank(n),
        esc(&n.title)
    );
    for line in n.body.lines() {
        out.push_str("   ");
        out.push_str(&esc(line));
        out.push('\n');
    }
    for (key, value) in &n.fields {
        out.push_str(&format!("   {}: {}\n", esc(key), esc(value)));
    }
    out.push('\n');
    out
}

pub fn email(n: &Notification) -> (String, String) {
    let subject = format!("[{}] {}", rank(n).to_uppercase(), n.title);
    let mut body = String::new();
    if !n.body.is_empty() {
        body.push_str(&n.body);
        body.push_str("\n\n");
    }
    for (key, value) in &n.fields {
        body.push_str(&format!("{key}: {value}\n"));
    }
    body.push_str(&format!("\n-- \n{}\n", footer(n)));
    (subject, body)
}

/// Incoming-webhook body: `text` is the fallback shown in notifications, `blocks` the message.
pub fn slack(n: &Notification) -> Value {
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(&n.title, SLACK_HEADER_LIMIT), "emoji": true},
    })];
    if !n.body.trim().is_empty() {
        let body = slack_escape(&n.body);
        // Column-aligned reports (df, docker system df) only line up in a code block.
        let text = if is_tabular(&n.body) {
            format!("```{}```", truncate(&body, SLACK_TEXT_LIMIT - 6))
        } else {
            truncate(&body, SLACK_TEXT_LIMIT)
        };
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": text},
        }));
    }
    let mut fields = Vec::new();
    if let Some(priority) = &n.priority {
        fields.push(format!("*Priority*\n{priority}"));
    }
    fields.push(format!(
        "*Severity*\n{} {}",
        severity_mark(&n.severity),
        n.severity
    ));
    fields.extend(n.fields.iter().map(|(k, v)| {
        truncate(
            &format!("*{}*\n{}", slack_escape(k), slack_escape(v)),
            SLACK_FIELD_LIMIT,
        )
    }));
    for chunk in fields.chunks(SLACK_FIELDS_PER_SECTION) {
        let chunk: Vec<Value> = chunk
            .iter()
            .map(|text| json!({"type": "mrkdwn", "text": text}))
            .collect();
        blocks.push(json!({"type": "section", "fields": chunk}));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": slack_escape(&footer(n))}],
    }));
    json!({
        "text": format!("{} [{}] {}", severity_mark(&n.severity), rank(n), n.title),
        "blocks": blocks,
    })
}

/// The message as HTML, split into parts of at most 4096 characters at line boundaries (a
/// longer line is cut between characters, never inside an entity or a tag).
pub fn telegram(n: &Notification) -> Vec<String> {
    let mut lines = vec![format!(
        "{} <b>{}</b>",
        severity_mark(&n.severity),
        telegram_escape(&n.title)
    )];
    lines.push(format!(
        "<i>{} · {}</i>",
        telegram_escape(&rank(n)),
        telegram_escape(&n.playbook)
    ));
    if !n.body.trim().is_empty() {
        lines.push(String::new());
        let tabular = is_tabular(&n.body);
        for line in n.body.lines() {
            // Inline code per line keeps columns aligned and every part's tags balanced.
            lines.extend(escaped_pieces(line).into_iter().map(|piece| {
                if tabular && !piece.trim().is_empty() {
                    format!("<code>{piece}</code>")
                } else {
                    piece
                }
            }));
        }
    }
    if !n.fields.is_empty() {
        lines.push(String::new());
        for (key, value) in &n.fields {
            let key = format!("<b>{}</b>: ", telegram_escape(key));
            let mut pieces = escaped_pieces(value).into_iter();
            lines.push(format!("{key}{}", pieces.next().unwrap_or_default()));
            lines.extend(pieces);
        }
    }
    lines.push(String::new());
    lines.push(format!("<i>{}</i>", telegram_escape(&footer(n))));

    let mut parts = Vec::new();
    let mut current = String::new();
    for line in lines {
        let needed = line.chars().count() + usize::from(!current.is_empty());
        if !current.is_empty() && current.chars().count() + needed > TELEGRAM_LIMIT {
            parts.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(&line);
    }
    if !current.trim().is_empty() {
        parts.push(current);
    }
    parts
}

/// A body with columns (two spaces inside a line, after its indentation).
fn is_tabular(body: &str) -> bool {
    body.lines().any(|line| line.trim().contains("  "))
}

/// Escapes a raw line and cuts it so that no piece exceeds the limit (room is left for a
/// field's `<b>key</b>: ` prefix).
fn escaped_pieces(raw: &str) -> Vec<String> {
    const ROOM: usize = TELEGRAM_LIMIT - 220;
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut len = 0;
    for c in raw.chars() {
        let escaped = telegram_escape(c.encode_utf8(&mut [0; 4]));
        let n = escaped.chars().count();
        if len + n > ROOM {
            pieces.push(std::mem::take(&mut current));
            len = 0;
        }
        current.push_str(&escaped);
        len += n;
    }
    pieces.push(current);
    pieces
}

/// Events API v2. A resolve carries only what PagerDuty needs to close the incident.
pub fn pagerduty(n: &Notification, routing_key: &str) -> Value {
    if n.event_action == "resolve" {
        return json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": n.dedup_key,
        });
    }
    let mut details = serde_json::Map::new();
    if !n.body.is_empty() {
        details.insert("body".into(), Value::String(n.body.clone()));
    }
    for (key, value) in &n.fields {
        details.insert(key.clone(), Value::String(value.clone()));
    }
    if let Some(priority) = &n.priority {
        details.insert("priority".into(), Value::String(priority.clone()));
    }
    if !details.contains_key("run") {
        details.insert("run".into(), Value::String(n.run_id.clone()));
    }
    let mut payload = json!({
        "summary": truncate(&n.title, PAGERDUTY_SUMMARY_LIMIT),
        "severity": pagerduty_severity(&n.severity),
        "source": n.source,
        "component": n.playbook,
        "custom_details": details,
    });
    if let Some(alert) = &n.alert {
        payload["group"] = Value::String(alert.name.clone());
    }
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": n.dedup_key,
        "payload": payload,
        "client": "runbook-host",
    })
}

/// PagerDuty accepts exactly critical, error, warning, info.
fn pagerduty_severity(severity: &str) -> &'static str {
    match severity {
        "critical" => "critical",
        "error" => "error",
        "warning" => "warning",
        _ => "info",
    }
}

/// The generic webhook body: the notification as it is stored, fields as an object.
pub fn webhook(channel: &str, n: &Notification) -> Value {
    let fields: serde_json::Map<String, Value> = n
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let mut body = json!({
        "type": "runbook.notification",
        "channel": channel,
        "title": n.title,
        "body": n.body,
        "severity": n.severity,
        "priority": n.priority,
        "fields": fields,
        "playbook": n.playbook,
        "run_id": n.run_id,
        "alert": n.alert,
        "dedup_key": n.dedup_key,
        "event_action": n.event_action,
        "created_at": n.created_at,
        "source": n.source,
    });
    if let Some(link) = super::run_link(&n.run_id) {
        body["run_url"] = Value::String(link);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::AlertRef;

    fn sample(body: &str) -> Notification {
        Notification {
            title: "bot-1 <down> & restarted".into(),
            body: body.into(),
            severity: "warning".into(),
            fields: vec![("container".into(), "bot-1".into())],
            playbook: "bot-down".into(),
            run_id: "r-1".into(),
            alert: Some(AlertRef {
                name: "BotDown".into(),
                fingerprint: "abc".into(),
                status: "firing".into(),
            }),
            dedup_key: "runbook-abc".into(),
            event_action: "trigger".into(),
            created_at: "2026-11-25T10:00:00Z".into(),
            source: "ops-1".into(),
            priority: Some("P2".into()),
        }
    }

    #[test]
    fn slack_escapes_and_keeps_fields_in_sections_of_ten() {
        let mut n = sample("exit 137 <oom>");
        n.fields = (0..12)
            .map(|i| (format!("k{i}"), format!("v{i}")))
            .collect();
        let body = slack(&n);
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["text"], "bot-1 <down> & restarted");
        assert_eq!(blocks[1]["text"]["text"], "exit 137 &lt;oom&gt;");
        // priority + severity + 12 fields = 14 → sections of 10 and 4.
        assert_eq!(blocks[2]["fields"][0]["text"], "*Priority*\nP2");
        assert_eq!(blocks[2]["fields"].as_array().unwrap().len(), 10);
        assert_eq!(blocks[3]["fields"].as_array().unwrap().len(), 4);
        assert_eq!(blocks[4]["type"], "context");
        assert!(body["text"].as_str().unwrap().contains("[P2 warning]"));
    }

    #[test]
    fn telegram_escapes_html_and_splits_long_text_at_4096() {
        let parts = telegram(&sample("a < b & c"));
        assert_eq!(parts.len(), 1);
        assert!(parts[0].contains("<b>bot-1 &lt;down&gt; &amp; restarted</b>"));
        assert!(parts[0].contains("a &lt; b &amp; c"));

        let long_line = "x<".repeat(5000); // 10 000 raw, 25 000 escaped characters
        let body = format!("{long_line}\n{}", "line\n".repeat(2000));
        let parts = telegram(&sample(&body));
        assert!(parts.len() > 3, "{} parts", parts.len());
        for part in &parts {
            assert!(part.chars().count() <= TELEGRAM_LIMIT);
            // No entity cut in half: every '&' starts a whole entity.
            for (i, _) in part.match_indices('&') {
                let rest = &part[i..];
                assert!(
                    rest.starts_with("&lt;")
                        || rest.starts_with("&amp;")
                        || rest.starts_with("&gt;")
                );
            }
        }
        let joined: String = parts.concat();
        assert_eq!(joined.matches("&lt;").count(), 5000 + 1);
    }

    #[test]
    fn pagerduty_trigger_and_resolve_share_the_dedup_key() {
        let trigger = pagerduty(&sample("b"), "KEY");
        assert_eq!(trigger["event_action"], "trigger");
        assert_eq!(trigger["dedup_key"], "runbook-abc");
        assert_eq!(trigger["payload"]["severity"], "warning");
        assert_eq!(trigger["payload"]["source"], "ops-1");
        assert_eq!(trigger["payload"]["custom_details"]["container"], "bot-1");
        let mut n = sample("b");
        n.event_action = "resolve".into();
        let resolve = pagerduty(&n, "KEY");
        assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
        assert!(resolve.get("payload").is_none());
    }
}
