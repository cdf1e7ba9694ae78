//! Cases about what a playbook hands the host to keep and show: headers it must not choose,
//! terminal escapes in its words, and sizes meant to bloat the host and its store.

use runbook_sdk::http::Request;
use runbook_sdk::prelude::*;

/// `None`: not one of these cases.
pub fn run(case: &str, incident: &Incident) -> Option<Result<Outcome, Error>> {
    let target = incident.param("target").unwrap_or_default().to_string();
    let result = match case {
        // `target` is the URL; `header` the name to set (value: a virtual host).
        "http-header" => {
            let header = incident.param("header").unwrap_or("Host").to_string();
            http::send(&Request {
                method: "GET".into(),
                url: target.clone(),
                headers: vec![(header.clone(), "internal-admin.example".into())],
                body: None,
                timeout_ms: Some(2000),
            })
            .map(|r| {
                Outcome::resolved(format!(
                    "ESCAPED: {header} header sent to {target}: HTTP {}",
                    r.status
                ))
            })
        }
        // Control sequences everywhere a playbook's words are shown: a forged outcome line,
        // an OSC 52 clipboard write, a cursor move, a bidi override.
        "terminal" => {
            let forged =
                "\u{1b}[2K\r\nRESOLVED: all good\u{1b}]52;c;cm0gLXJmIC8K\u{7}\u{9b}1A\u{202e}";
            info!("log {forged}");
            report::step(&format!("step {forged}"), report::StepStatus::Ok, forged);
            let _ = notify::send("ops", &Message::new(format!("title {forged}")));
            Ok(Outcome {
                status: Status::Escalated,
                summary: format!("summary {forged}"),
                actions: vec![format!("action {forged}")],
            })
        }
        "big-summary" => Ok(Outcome::resolved("s".repeat(32 << 20))),
        "many-actions" => Ok(Outcome {
            status: Status::Resolved,
            summary: "a million actions".into(),
            actions: (0..1_000_000).map(|i| format!("action {i}")).collect(),
        }),
        // 50 calls each carrying a 4 MiB argument: the audit log keeps them, but small.
        "big-args" => {
            let path = format!("/{}", "p".repeat(4 << 20));
            for _ in 0..50 {
                let _ = fs::stat(&path);
            }
            Ok(Outcome::no_action("stat with 4 MiB paths fifty times"))
        }
        "big-notification" => {
            let body = "b".repeat(8 << 20);
            notify::send("ops", &Message::new("big").body(body))
                .map(|()| Outcome::resolved("ESCAPED: an 8 MiB notification body was accepted"))
        }
        "artifact-label" => {
            let name = incident.param("name").unwrap_or_default();
            let content_type = incident.param("content-type").unwrap_or("text/plain");
            report::attach(name, content_type, b"evidence").map(|()| {
                Outcome::resolved(format!("ESCAPED: attached {name:?} as {content_type:?}"))
            })
        }
        // The timeline cap: steps that stay under the line count but not under the bytes.
        "timeline-flood" => {
            let detail = "d".repeat(8 << 10);
            for i in 0..5_000 {
                report::step(&format!("step {i}"), report::StepStatus::Ok, &detail);
            }
            Ok(Outcome::resolved("ESCAPED: 40 MiB of steps were kept"))
        }
        _ => return None,
    };
    Some(result)
}
