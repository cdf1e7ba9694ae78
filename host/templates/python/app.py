"""{{name}}: how full is the filesystem holding a path? Tells ops when it is over a threshold."""

import runbook as rb


def describe() -> rb.Description:
    return rb.description(
        "{{name}}",
        "Checks how full the filesystem holding a path is",
        params=[
            rb.param("path", "A path on the filesystem to check", default="/tmp"),
            rb.param("warn-percent", "Notify ops above this use", default="90"),
        ],
        wants=[rb.Capability.FS_READ, rb.Capability.NOTIFY],
    )


def run(incident: rb.Incident) -> rb.Outcome:
    path = incident.param("path") or "/tmp"
    warn = incident.param_as("warn-percent", float)
    warn = 90.0 if warn is None else warn
    rb.report.step("usage", rb.StepStatus.STARTED, path)
    try:
        usage = rb.fs.usage(path)
    except rb.Denied as denied:
        # Branch on the error kind: a missing grant is the operator's call, not a failure.
        rb.report.step("usage", rb.StepStatus.SKIPPED, denied.detail)
        return rb.Outcome.no_action(f"fs-read of {path} is not granted; grant it in host.toml")
    used = usage.used_percent
    rb.report.step("usage", rb.StepStatus.OK, f"{used:.0f}% used")
    if used < warn:
        return rb.Outcome.no_action(f"{path} is {used:.0f}% full")
    message = rb.message(f"{path} is {used:.0f}% full", severity=rb.Severity.WARNING,
                         fields={"run": incident.run_id})
    rb.notify.send("ops", message)
    return rb.Outcome.escalated(f"{path} is {used:.0f}% full (over {warn:g}%)").action("notified ops")


WitWorld = rb.playbook(describe, run)
