"""The Python twin of tests/hostile/asks: asks `group` one question and ends by the answer.
Approved → resolved ("acted"), rejected → no-action with the reason, expired → escalated."""

import runbook as rb
from runbook import approval


def describe() -> rb.Description:
    return rb.description(
        "asks-python",
        "Asks an approver group one question (approval tests, Python)",
        params=[
            rb.param("group", "approver group to ask", default="oncall"),
            rb.param("title", "the question", default="Restart web-1?"),
            rb.param("timeout", "seconds to wait", default="30"),
        ],
        wants=[rb.Capability.APPROVAL],
    )


def run(incident: rb.Incident) -> rb.Outcome:
    answer = approval.ask(
        incident.param("group") or "oncall",
        incident.param("title") or "Restart web-1?",
        body="web-1 stopped answering its health check 3 times in a row.",
        actions=["restart web-1"],
        timeout_secs=incident.param_as("timeout", int) or 30,
    )
    match answer:
        case approval.Approved(by):
            return rb.Outcome.resolved(f"approved by {by}").action("acted")
        case approval.Rejected(by, reason):
            return rb.Outcome.no_action(f"rejected by {by}: {reason}")
        case approval.Expired():
            return rb.Outcome.escalated("expired: nobody answered; escalating")


WitWorld = rb.playbook(describe, run)
