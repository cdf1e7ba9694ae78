//! Live timelines over server-sent events (`/ui/runs/{id}/events`): a stream gets every event
//! of a run exactly once and in order, those appended after it connected included, then
//! `end`; a reconnect with Last-Event-ID resumes where the stream left off; a stream of an
//! ended run reads only what is after its cursor. What 64 streams cost the server is measured
//! by scripts/bench-streams.sh, not here.

use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, Instant};

use runbook_tests::Sandbox;
use runbook_tests::server::{API_TOKEN, Server};
use serde_json::json;

const TOKEN: &str = "live-streams-token";

/// One SSE message: (event, id, data).
type Message = (String, Option<usize>, String);

struct Stream {
    lines: BufReader<Box<dyn Read + Send + Sync>>,
}

impl Stream {
    fn open(server: &Server, run_id: &str, from: usize, last_event_id: Option<usize>) -> Stream {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        let mut request = agent
            .get(server.url(&format!("/ui/runs/{run_id}/events?from={from}")))
            .header("Authorization", format!("Bearer {API_TOKEN}"));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.call().expect("the stream opens");
        assert_eq!(response.status(), 200);
        Stream {
            lines: BufReader::new(Box::new(response.into_body().into_reader())),
        }
    }

    /// The next message; `None` when the server closed the stream.
    fn next(&mut self) -> Option<Message> {
        let (mut event, mut id, mut data) = (String::from("message"), None, String::new());
        let mut any = false;
        loop {
            let mut line = String::new();
            if self.lines.read_line(&mut line).unwrap_or(0) == 0 {
                return None;
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if any {
                    return Some((event, id, data));
                }
                continue; // a keep-alive comment's end
            }
            if let Some(v) = line.strip_prefix("event:") {
                (event, any) = (v.trim().to_string(), true);
            } else if let Some(v) = line.strip_prefix("id:") {
                id = v.trim().parse().ok();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
                any = true;
            }
        }
    }

    /// Timeline messages until `end` (which must come), or the first `max` of them.
    fn read(&mut self, max: usize) -> Vec<Message> {
        let mut got = Vec::new();
        while got.len() < max {
            let message = self.next().expect("the stream ends with an `end` event");
            if message.0 == "end" {
                break;
            }
            assert_eq!(message.0, "timeline", "{message:?}");
            got.push(message);
        }
        got
    }
}

/// The numbers N of the "line N" log events, in the order received.
fn line_numbers(messages: &[Message]) -> Vec<usize> {
    messages
        .iter()
        .filter_map(|(_, _, data)| {
            let at = data.find("line ")? + 5;
            data[at..].split(' ').next()?.parse().ok()
        })
        .collect()
}

fn ids(messages: &[Message]) -> Vec<usize> {
    messages.iter().map(|m| m.1.expect("an id")).collect()
}

fn timeline_len(server: &Server, run_id: &str) -> usize {
    server.get(&format!("/runs/{run_id}")).json()["timeline"]
        .as_array()
        .map_or(0, Vec::len)
}

#[test]
fn a_stream_gets_every_event_once_in_order_and_resumes_from_its_last_id() {
    let sandbox = Sandbox::new();
    sandbox.add_plugin("hostile");
    sandbox.write(
        "host.toml",
        "plugin-dirs = [\"plugins\"]\n\
         [webhooks.run]\nauth = { kind = \"bearer\", token = { env = \"LS_TOKEN\" } }\n\
         [plugins.hostile]\ndeadline-secs = 120\n",
    );
    let server = Server::start(&sandbox, &[("LS_TOKEN", TOKEN)]);
    // 40 lines, 50 ms apart: the streams connect while the run is writing.
    const LINES: usize = 40;
    let body = json!({ "case": "stream-lines", "target": format!("{LINES},24,50,0") });
    let run_id = server.submit_run("/hooks/run/hostile", TOKEN, body.to_string().as_bytes());
    let deadline = Instant::now() + Duration::from_secs(60);
    while timeline_len(&server, &run_id) < 3 {
        assert!(Instant::now() < deadline, "the run never wrote 3 events");
        std::thread::sleep(Duration::from_millis(20));
    }

    let mut whole = Stream::open(&server, &run_id, 0, None);
    let mut first_part = Stream::open(&server, &run_id, 0, None);
    let before = first_part.read(5);
    drop(first_part);
    let connected_at = timeline_len(&server, &run_id);
    let mut resumed = Stream::open(&server, &run_id, 0, before.last().unwrap().1);
    let all = whole.read(usize::MAX);
    let rest = resumed.read(usize::MAX);

    let run = server.wait_for_run(&run_id, Duration::from_secs(60));
    assert_eq!(run["status"], "resolved", "{run:#}");
    let events = run["timeline"].as_array().unwrap().len();
    assert!(
        connected_at < events,
        "the streams connected after the run had written everything ({connected_at} of {events})"
    );
    // Every event once, in order, numbered 1..=N: the whole stream and the resumed one agree.
    assert_eq!(ids(&all), (1..=events).collect::<Vec<_>>());
    assert_eq!(line_numbers(&all), (0..LINES).collect::<Vec<_>>());
    assert_eq!(ids(&before), [1, 2, 3, 4, 5]);
    assert_eq!(ids(&rest), (6..=events).collect::<Vec<_>>());
    let joined: Vec<Message> = before.into_iter().chain(rest).collect();
    assert_eq!(joined, all);

    // After the end: a cursor reads only what is after it, then `end`.
    let mut late = Stream::open(&server, &run_id, events - 2, None);
    let tail = late.read(usize::MAX);
    assert_eq!(ids(&tail), [events - 1, events]);
    assert_eq!(tail[..], all[events - 2..]);
    let mut at_end = Stream::open(&server, &run_id, events, None);
    assert!(at_end.read(usize::MAX).is_empty());
}
