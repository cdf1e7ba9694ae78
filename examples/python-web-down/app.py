"""The seed runbook's "Web UI Down" procedure in Python, line for line the built-in Rust web-down
(plugins/web-down): probe the site, check the web container and its last log lines, restart it,
wait and re-probe, then tell ops what was found. Without a container it only escalates.

Build: ./build.sh (componentize-py; runbook.py is the helper `host new --lang python` ships).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

import runbook as rb
from runbook import Status, StepStatus

# Seconds Docker gives the web server to stop before killing it (`docker restart -t 10`).
STOP_TIMEOUT_SECS = 10
POLL_SECS = 1.0
SHOWN_ERROR_LINES = 10
# Matched case-insensitively, like `grep -iE`.
ERROR_PATTERN = "error|fatal|panic|exception|traceback|killed"

Probe = rb.http.ProbeResult
Failure = rb.http.ProbeFailure


def describe() -> rb.Description:
    return rb.description(
        "web-down",
        "Web UI Down: probe the URL, check the web container and its logs, restart it, re-probe, a summary to ops",
        params=[
            rb.param("url", "URL of the web UI", required=True),
            rb.param("container", "The web container; without it nothing is restarted"),
            rb.param("expected-status", "HTTP status (2xx/3xx) the URL answers when up", "200"),
            rb.param("wait-secs", "How long to re-probe after the restart", "30"),
            rb.param("log-lines", "How many of the last log lines to scan for errors", "100"),
            rb.param("timeout-ms", "Timeout of each probe", "3000"),
            rb.param("channel", "Notification channel for the summary", "ops"),
        ],
        wants=[rb.Capability.DOCKER, rb.Capability.HTTP, rb.Capability.NOTIFY],
    )


class Settings:
    def __init__(self, incident: rb.Incident):
        def text(name: str) -> Optional[str]:
            value = (incident.param(name) or "").strip()
            return value or None

        url = text("url")
        if url is None:
            raise rb.Invalid("parameter url is empty")
        self.url: str = url
        self.container = text("container")
        def number(name: str, default: int) -> int:
            value = incident.param_as(name, int)
            return default if value is None else value

        self.expected = number("expected-status", 200)
        self.wait_secs = number("wait-secs", 30)
        self.log_lines = number("log-lines", 100)
        self.timeout_ms = number("timeout-ms", 3000)
        self.channel: str = text("channel") or "ops"
        # probe() calls anything but 2xx/3xx unhealthy, so another status could never be "up".
        if not 200 <= self.expected < 400:
            raise rb.Invalid(f"expected-status {self.expected} is not 2xx or 3xx")

    def probe(self) -> Probe:
        return rb.http.probe(self.url, self.timeout_ms)

    def is_up(self, probe: Probe) -> bool:
        return probe.healthy and probe.status == self.expected

    def failure(self, probe: Probe) -> str:
        """refused, timeout, dns, tls, other, or "http-status 502, expected 200"."""
        kinds = {Failure.REFUSED: "refused", Failure.TIMEOUT: "timeout", Failure.DNS: "dns",
                 Failure.TLS: "tls", Failure.OTHER: "other"}
        # No failure but not up: a 2xx/3xx other than the expected one.
        kind = kinds.get(probe.failure, "http-status")
        if probe.status is not None and kind == "http-status":
            return f"{kind} {probe.status}, expected {self.expected}"
        return kind

    def probe_text(self, probe: Probe) -> str:
        """ "up (HTTP 200, 12 ms)" or "down: refused (2 ms) connection refused". """
        ms = probe.latency_ms
        if self.is_up(probe):
            return f"up (HTTP {self.expected}, {ms} ms)"
        return f"down: {self.failure(probe)} ({ms} ms) {probe.detail}".rstrip()


def why(e: rb.CapabilityError) -> str:
    return f"{e.kind}: {e.detail}"


@dataclass
class Findings:
    """What the run learnt besides the first probe, for the notification."""

    after: Optional[Probe] = None
    state: Optional[str] = None
    lines: list[str] = field(default_factory=list)


def examine(name: str, log_lines: int, found: Findings) -> None:
    """`docker ps` and `docker logs --tail N | grep -iE …`; only a missing container raises."""
    rb.report.step("container", StepStatus.STARTED, name)
    try:
        details = rb.docker.inspect(name)
        c = details.container
        code = "-" if c.exit_code is None else str(c.exit_code)
        oom = ", OOM-killed" if details.oom_killed else ""
        summary = (f"state {c.state}, exit code {code}, restart count {c.restart_count}, "
                   f"health {c.health or 'none'}{oom}")
        rb.report.step("container", StepStatus.OK, summary)
        found.lines.append(f"Container {name}: {summary}")
        found.state = c.state
    except rb.NotFound:
        rb.report.step("container", StepStatus.FAILED, "not found")
        raise rb.NotFound(f"container {name} not found") from None
    except rb.CapabilityError as e:
        # The restart is the remedy; a failed look does not stop it.
        rb.report.step("container", StepStatus.WARNING, why(e))
        found.lines.append(f"Container {name}: inspect failed ({why(e)})")

    rb.report.step("logs", StepStatus.STARTED, f"last {log_lines} lines")
    try:
        lines = rb.docker.logs(name, tail=log_lines)
    except rb.CapabilityError as e:
        rb.report.step("logs", StepStatus.SKIPPED, why(e))
        found.lines.append(f"Logs could not be read ({why(e)})")
        return
    excerpt = "".join(f"{line.text}\n" for line in lines)
    try:
        rb.report.attach("web-logs.txt", "text/plain", excerpt)
    except rb.CapabilityError as e:
        rb.warn(f"attach web-logs.txt: {why(e)}")
    words = ERROR_PATTERN.split("|")
    errors = [line.text for line in lines if any(w in line.text.lower() for w in words)]
    count, scanned = len(errors), len(lines)
    rb.report.step("logs", StepStatus.WARNING if errors else StepStatus.OK,
                   f"{count} error lines in {scanned}")
    found.lines.append(f"Error lines in the last {scanned} log lines: {count}")
    found.lines.extend(f"  {line}" for line in errors[:SHOWN_ERROR_LINES])
    if count > SHOWN_ERROR_LINES:
        found.lines.append(f"  … and {count - SHOWN_ERROR_LINES} more")


def wait_up(settings: Settings) -> tuple[bool, Probe, float]:
    """Re-probes every second until the URL is up or `wait-secs` pass; the last probe either way."""
    started = time.monotonic()
    deadline = started + settings.wait_secs
    while True:
        time.sleep(POLL_SECS)
        probe = settings.probe()
        up = settings.is_up(probe)
        if up or time.monotonic() >= deadline:
            return up, probe, time.monotonic() - started


def remediate(settings: Settings, down: str, dry_run: bool, found: Findings,
              actions: list[str]) -> tuple[Status, str]:
    url = settings.url
    name = settings.container
    if name is None:
        return Status.ESCALATED, f"{url} is {down}; no container given, so nothing was restarted"
    try:
        examine(name, settings.log_lines, found)
    except rb.CapabilityError as e:
        return Status.ESCALATED, f"{url} is {down}; {e.detail}, so nothing was restarted"

    # docker compose restart <web>
    rb.report.step("restart", StepStatus.STARTED, name)
    try:
        rb.docker.restart(name, STOP_TIMEOUT_SECS)
    except rb.CapabilityError as e:
        rb.report.step("restart", StepStatus.FAILED, why(e))
        actions.append(f"restart of {name} failed ({why(e)})")
        return Status.ESCALATED, f"{url} is {down}; restarting {name} failed ({why(e)})"
    if dry_run:
        rb.report.step("restart", StepStatus.SKIPPED, "dry run: not re-probing")
        actions.append(f"would restart {name}")
        return Status.ESCALATED, f"dry run: {url} is {down}; would restart {name}"
    actions.append(f"restarted {name}")
    rb.report.step("restart", StepStatus.OK, name)

    # wait and check again
    rb.report.step("re-probe", StepStatus.STARTED, url)
    try:
        up, after, secs = wait_up(settings)
    except rb.CapabilityError as e:
        rb.report.step("re-probe", StepStatus.FAILED, why(e))
        return Status.ESCALATED, f"{url} was {down}, restarted {name}, re-probe failed ({why(e)})"
    failure, ms = settings.failure(after), after.latency_ms
    found.after = after
    if up:
        rb.report.step("re-probe", StepStatus.OK, f"up after {secs:.1f} s")
        return (Status.RESOLVED,
                f"{url} was {down}, restarted {name}, up again in {secs:.1f} s, latency {ms} ms")
    still = f"{failure}, {ms} ms"
    rb.report.step("re-probe", StepStatus.FAILED, still)
    return (Status.ESCALATED,
            f"{url} was {down}, restarted {name}, still down after {settings.wait_secs} s ({still})")


def run(incident: rb.Incident) -> rb.Outcome:
    settings = Settings(incident)
    url = settings.url

    # 1. Is the site up? (the runbook's symptoms: 502 Bad Gateway, connection timeout)
    rb.report.step("probe", StepStatus.STARTED, url)
    before = settings.probe()
    up = settings.is_up(before)
    rb.report.step("probe", StepStatus.OK if up else StepStatus.FAILED, settings.probe_text(before))

    # 2. docker ps; docker logs --tail 100; docker compose restart; wait; re-probe
    found, actions = Findings(), []
    if up:
        status, summary = (Status.NO_ACTION,
                           f"{url} is up: HTTP {settings.expected} in {before.latency_ms} ms")
    else:
        down = f"down ({settings.failure(before)}, {before.latency_ms} ms)"
        status, summary = remediate(settings, down, incident.dry_run, found, actions)
    outcome = rb.Outcome(status, summary, actions)

    # 3. tell the team; a failed notification is recorded, not fatal
    msg = message(incident, settings, before, found, outcome)
    channel = settings.channel
    try:
        rb.notify.send(channel, msg)
        outcome.action(f"would notify {channel}" if incident.dry_run else f"notified {channel}")
    except rb.CapabilityError as e:
        rb.warn(f"notify {channel}: {why(e)}")
        outcome.action(f"notification to {channel} failed ({why(e)})")
    return outcome


def message(incident: rb.Incident, settings: Settings, before: Probe, found: Findings,
            outcome: rb.Outcome) -> rb.Message:
    url = settings.url
    body = [f"Probe of {url} (expected HTTP {settings.expected}):",
            f"  before  {settings.probe_text(before)}"]
    if found.after is not None:
        body.append(f"  after   {settings.probe_text(found.after)}")
    body.extend(found.lines)
    # The runbook's other options: a restart does not fix a certificate or a DNS record.
    if before.failure == Failure.TLS:
        body.append("Next: check the certificate's dates; renew it in Coolify if expired.")
    elif before.failure == Failure.DNS:
        body.append("Next: check that DNS (dig +short) points at the server.")
    if outcome.actions:
        body.append("Done:")
        body.extend(f"  - {a}" for a in outcome.actions)
    body.append(outcome.summary)

    if outcome.status == Status.NO_ACTION:
        title = f"{url} is up"
    elif outcome.status == Status.RESOLVED:
        title = f"{url} was down; up again after a restart"
    else:
        title = f"{url} is down: {settings.failure(before)}"
    severity = rb.Severity.CRITICAL if outcome.status == Status.ESCALATED else rb.Severity.INFO
    fields = [("url", url), ("run", incident.run_id), ("latency before", f"{before.latency_ms} ms")]
    if found.after is not None:
        fields.append(("latency after", f"{found.after.latency_ms} ms"))
    if not settings.is_up(before):
        fields.append(("failure", settings.failure(before)))
    if settings.container is not None:
        fields.append(("container", settings.container))
    if found.state is not None:
        fields.append(("state", found.state))
    return rb.message(title, "\n".join(body), severity, fields)


WitWorld = rb.playbook(describe, run)
