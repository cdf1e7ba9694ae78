//! A real Prometheus Alertmanager (Debian's `prometheus-alertmanager`, installed by
//! `scripts/test-env.sh`) on 127.0.0.1, with one webhook receiver, for the end-to-end tests of
//! `host serve`: a test fires alerts through Alertmanager's API and Alertmanager delivers them
//! to the host's webhook exactly as it would in production.
//!
//! Every alert is its own group (`group_by: ['...']`) and the timings are short: a new firing
//! alert reaches the webhook about 1 s after [`Alertmanager::fire`] (`group_wait`), a resolve
//! about 1 s after [`Alertmanager::resolve`] (`group_interval`, measured with Alertmanager 0.25).
//! An unchanged firing alert is sent again every `repeat_interval` (2 s, so tests see the host
//! deduplicate Alertmanager's own re-sends). The process (no clustering, its own storage in a
//! temp dir) is killed when the guard drops, also when the test panics.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tempfile::TempDir;

pub const BINARY: &str = "prometheus-alertmanager";

/// How long [`Alertmanager::start`] waits for `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The `generatorURL` of the alerts [`Alertmanager::fire`] and [`Alertmanager::resolve`] post.
pub const GENERATOR_URL: &str = "http://127.0.0.1/runbook-tests";

pub struct Alertmanager {
    pub port: u16,
    child: Child,
    dir: TempDir,
}

impl Alertmanager {
    /// Starts Alertmanager with a single route to a webhook receiver at `webhook_url` that sends
    /// `Authorization: Bearer <bearer_token>` and resolved notifications, and waits until it is
    /// ready. Panics with the end of its log when it does not come up within 20 s.
    pub fn start(webhook_url: &str, bearer_token: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, config_yaml(webhook_url, bearer_token)).unwrap();
        let log_path = dir.path().join("alertmanager.log");
        // The port is free when picked but could be taken before Alertmanager binds it: try again
        // with another one when the process exits early.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = crate::docker::free_port();
            let log = File::create(&log_path).unwrap();
            let mut child = Command::new(BINARY)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                // Empty: no gossip listener, so no cluster peer wait before each notification.
                .arg("--cluster.listen-address=")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("starting {BINARY} ({e}): run scripts/test-env.sh to install it")
                });
            match wait_ready(port, &mut child) {
                Ok(()) => return Self { port, child, dir },
                Err(exited) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    if exited && attempt < 3 {
                        continue;
                    }
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    panic!(
                        "{BINARY} on 127.0.0.1:{port} {} within {READY_TIMEOUT:?}; log:\n{}",
                        if exited { "exited" } else { "was not ready" },
                        tail(&log, 40)
                    );
                }
            }
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The generated alertmanager.yml.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("alertmanager.yml")
    }

    /// Alertmanager's whole log (stdout and stderr): failed notification attempts show here as
    /// `Notify attempt failed` / `Notify for alerts failed`.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("alertmanager.log")).unwrap_or_default()
    }

    /// The last `lines` lines of [`Self::log`].
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log(), lines)
    }

    /// POST /api/v2/alerts with `alerts`, a JSON array of
    /// `{labels, annotations?, startsAt?, endsAt?, generatorURL?}`; panics on a non-2xx answer
    /// (Alertmanager answers 400 with a reason, e.g. for an `endsAt` before `startsAt`).
    pub fn post_alerts(&self, alerts: Value) {
        assert!(
            alerts.is_array(),
            "post_alerts takes a JSON array: {alerts}"
        );
        let mut response = agent()
            .post(&self.url("/api/v2/alerts"))
            .header("Content-Type", "application/json")
            .send(alerts.to_string())
            .unwrap_or_else(|e| panic!("POST /api/v2/alerts: {e}"));
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        assert!(
            (200..300).contains(&status),
            "POST /api/v2/alerts {alerts} answered {status}: {body}"
        );
    }

    /// Fires (or keeps firing) the alert identified by `labels`, active since `starts_at`
    /// (RFC 3339, e.g. [`now_rfc3339`]). With no `endsAt`, Alertmanager keeps it firing for its
    /// `resolve_timeout` (5 min) unless it is resolved. Firing it again unchanged (or with other
    /// annotations) sends nothing new before `repeat_interval`.
    pub fn fire(&self, labels: &[(&str, &str)], annotations: &[(&str, &str)], starts_at: &str) {
        self.post_alerts(json!([{
            "labels": object(labels),
            "annotations": object(annotations),
            "startsAt": starts_at,
            "generatorURL": GENERATOR_URL,
        }]));
    }

    /// Resolves the alert with exactly these `labels` (the same label set is the same alert),
    /// with no annotations: the resolved notification carries the annotations of this last post.
    /// See [`Self::resolve_with`].
    pub fn resolve(&self, labels: &[(&str, &str)], starts_at: &str) {
        self.resolve_with(labels, &[], starts_at);
    }

    /// Resolves the alert with exactly these `labels`, as Prometheus does: posts it again, with
    /// `annotations`, and an `endsAt` in the past: one second ago, or `starts_at` itself when that
    /// is later (Alertmanager answers 400 to an `endsAt` before `startsAt`). An alert whose
    /// `endsAt` is not after now is resolved. Alertmanager sends the resolved notification only
    /// for an alert whose firing notification it had sent: one resolved before its `group_wait`
    /// ended sends nothing at all.
    pub fn resolve_with(
        &self,
        labels: &[(&str, &str)],
        annotations: &[(&str, &str)],
        starts_at: &str,
    ) {
        let mut ends_at = rfc3339(SystemTime::now() - Duration::from_secs(1));
        // Both in the same fixed-width UTC form compare as strings.
        if starts_at.len() == ends_at.len() && starts_at.ends_with('Z') && *starts_at > *ends_at {
            ends_at = starts_at.to_string();
        }
        self.post_alerts(json!([{
            "labels": object(labels),
            "annotations": object(annotations),
            "startsAt": starts_at,
            "endsAt": ends_at,
            "generatorURL": GENERATOR_URL,
        }]));
    }

    /// GET /api/v2/alerts: the alerts Alertmanager holds that are not resolved, each with its
    /// `fingerprint` and `status.state`.
    pub fn alerts(&self) -> Value {
        let mut response = agent()
            .get(&self.url("/api/v2/alerts"))
            .call()
            .unwrap_or_else(|e| panic!("GET /api/v2/alerts: {e}"));
        let body = response.body_mut().read_to_string().unwrap_or_default();
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("alerts are not JSON ({e}): {body}"))
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// alertmanager.yml: one route, every alert its own group, one webhook receiver. Strings are
/// written JSON-quoted, which YAML reads as double-quoted scalars.
pub fn config_yaml(webhook_url: &str, bearer_token: &str) -> String {
    let q = |s: &str| Value::from(s).to_string();
    format!(
        "route:
  receiver: webhook
  # '...' groups by every label: each alert is its own group and notification.
  group_by: ['...']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 2s
receivers:
  - name: webhook
    webhook_configs:
      - url: {url}
        send_resolved: true
        max_alerts: 0
        http_config:
          authorization:
            type: Bearer
            credentials: {token}
",
        url = q(webhook_url),
        token = q(bearer_token),
    )
}

/// Now, in UTC to the second: `2024-05-01T12:34:56Z`.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// `time` in UTC to the second (truncated), as RFC 3339.
pub fn rfc3339(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .expect("time after 1970")
        .as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Polls `/-/ready` until it answers 200; `Err(true)` when the process exited first,
/// `Err(false)` on timeout.
fn wait_ready(port: u16, child: &mut Child) -> Result<(), bool> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let agent = agent();
    let url = format!("http://127.0.0.1:{port}/-/ready");
    loop {
        if let Ok(response) = agent.get(&url).call()
            && response.status().as_u16() == 200
        {
            return Ok(());
        }
        if child.try_wait().ok().flatten().is_some() {
            return Err(true);
        }
        if Instant::now() >= deadline {
            return Err(false);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn object(pairs: &[(&str, &str)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect(),
    )
}

/// Plain HTTP to 127.0.0.1: no proxy from the environment, non-2xx answers returned (not
/// errors) so their bodies can be shown.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_seconds() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_661); // 2000-02-29
        assert_eq!(rfc3339(t), "2000-02-29T01:01:01Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_735_689_599_999);
        assert_eq!(rfc3339(t), "2024-12-31T23:59:59Z");
    }
}
