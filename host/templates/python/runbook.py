"""Write runbook-host playbooks in Python: the same surface as the Rust SDK (runbook-sdk).

A playbook is two functions, `describe() -> Description` and `run(Incident) -> Outcome`, exported
with `WitWorld = runbook.playbook(describe, run)`. Capability calls raise a `CapabilityError`
subclass named after the WIT error kind, so a playbook branches with `except runbook.Denied:`;
raising one from `run` ends the run with that error kind. Any other exception is a bug: the run
fails with the traceback as its reason.

Shipped by `host new --lang python`; componentize-py generates `wit_world` from ./wit at build time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Optional, Sequence, Tuple, Type, TypeVar, Union

import wit_world
from componentize_py_types import Err
from wit_world.imports import approval as _approval
from wit_world.imports import docker as _docker
from wit_world.imports import fs_read as _fs
from wit_world.imports import http as _http
from wit_world.imports import notify as _notify
from wit_world.imports import report as _report
from wit_world.imports import types as _types

Capability = _types.Capability
Severity = _types.Severity
Status = _types.Status
TriggerKind = _types.TriggerKind
Alert = _types.Alert
Description = _types.Description
ParamSpec = _types.ParamSpec
Level = _report.Level
StepStatus = _report.StepStatus
Message = _notify.Message

Pairs = Union[Mapping[str, str], Iterable[Tuple[str, str]]]
T = TypeVar("T")


# --- errors: one exception per WIT error kind ----------------------------------------------


class CapabilityError(Exception):
    """A capability call failed; `kind` is the WIT error case, `detail` the host's words."""

    kind = "failed"
    _wit: type = _types.Error_Failed

    def __init__(self, detail: str = ""):
        super().__init__(f"{self.kind}: {detail}")
        self.detail = detail

    def to_wit(self) -> _types.Error:
        return self._wit(self.detail)


class Denied(CapabilityError):
    """The call is outside this playbook's grants."""

    kind, _wit = "denied", _types.Error_Denied


class NotFound(CapabilityError):
    kind, _wit = "not-found", _types.Error_NotFound


class Invalid(CapabilityError):
    kind, _wit = "invalid", _types.Error_Invalid


class Unavailable(CapabilityError):
    """The backend is not there: no Docker engine, no network, capability not configured."""

    kind, _wit = "unavailable", _types.Error_Unavailable


class Timeout(CapabilityError):
    kind, _wit = "timeout", _types.Error_Timeout


class Failed(CapabilityError):
    kind, _wit = "failed", _types.Error_Failed


class OverBudget(CapabilityError):
    """An action budget refused a mutating call (WIT 0.4.0): nothing was done. `budget`, `key`
    (what it counts the call under) and `frees_in_secs` (when a retry could go through) say
    which; escalate, naming them. `detail` is the host's one line."""

    kind, _wit = "over-budget", _types.Error_OverBudget

    def __init__(self, detail: str = "", budget: str = "", key: str = "", frees_in_secs: int = 0):
        super().__init__(detail)
        self.budget, self.key, self.frees_in_secs = budget, key, frees_in_secs

    def to_wit(self) -> _types.Error:
        info = _types.OverBudgetInfo(
            budget=self.budget, key=self.key, frees_in_secs=self.frees_in_secs, message=self.detail
        )
        return self._wit(info)


_BY_WIT = {cls._wit: cls for cls in (Denied, NotFound, Invalid, Unavailable, Timeout, Failed)}


def _call(fn: Callable[..., T], *args) -> T:
    try:
        return fn(*args)
    except Err as err:
        if isinstance(err.value, _types.Error_OverBudget):
            info = err.value.value
            raise OverBudget(info.message, info.budget, info.key, info.frees_in_secs) from None
        raise _BY_WIT.get(type(err.value), Failed)(getattr(err.value, "value", str(err.value))) from None


# --- capabilities: the generated functions, raising CapabilityError subclasses -------------


class docker:
    Container, ContainerDetails, ListFilter = _docker.Container, _docker.ContainerDetails, _docker.ListFilter
    LogOptions, LogLine, LogStream = _docker.LogOptions, _docker.LogLine, _docker.LogStream
    PruneOptions, PruneReport, SystemDf = _docker.PruneOptions, _docker.PruneReport, _docker.SystemDf

    @staticmethod
    def list_containers(filter: _docker.ListFilter) -> list[_docker.Container]:
        return _call(_docker.list_containers, filter)

    @staticmethod
    def inspect(container: str) -> _docker.ContainerDetails:
        return _call(_docker.inspect, container)

    @staticmethod
    def logs(container: str, tail: Optional[int] = None, since_secs: Optional[int] = None,
             timestamps: bool = False) -> list[_docker.LogLine]:
        return _call(_docker.logs, container, _docker.LogOptions(tail, since_secs, timestamps))

    @staticmethod
    def start(container: str) -> None:
        _call(_docker.start, container)

    @staticmethod
    def stop(container: str, timeout_secs: Optional[int] = None) -> None:
        _call(_docker.stop, container, timeout_secs)

    @staticmethod
    def restart(container: str, timeout_secs: Optional[int] = None) -> None:
        _call(_docker.restart, container, timeout_secs)

    @staticmethod
    def pause(container: str) -> None:
        _call(_docker.pause, container)

    @staticmethod
    def unpause(container: str) -> None:
        _call(_docker.unpause, container)

    @staticmethod
    def stats(container: str) -> _docker.ContainerStats:
        return _call(_docker.stats, container)

    @staticmethod
    def disk_usage() -> _docker.SystemDf:
        return _call(_docker.disk_usage)

    @staticmethod
    def prune(options: _docker.PruneOptions) -> _docker.PruneReport:
        return _call(_docker.prune, options)

    @staticmethod
    def network_disconnect(container: str, network: str, force: bool = False) -> None:
        _call(_docker.network_disconnect, container, network, force)


class http:
    Request, Response = _http.Request, _http.Response
    ProbeFailure, ProbeResult = _http.ProbeFailure, _http.ProbeResult

    @staticmethod
    def send(method: str, url: str, headers: Pairs = (), body: Optional[bytes] = None,
             timeout_ms: Optional[int] = None) -> _http.Response:
        return _call(_http.send, _http.Request(method, url, _pairs(headers), body, timeout_ms))

    @staticmethod
    def probe(url: str, timeout_ms: Optional[int] = None) -> _http.ProbeResult:
        return _call(_http.probe, url, timeout_ms)


class fs:
    Entry, EntryKind, FsUsage = _fs.Entry, _fs.EntryKind, _fs.FsUsage
    FindOptions, GrepOptions, GrepResult = _fs.FindOptions, _fs.GrepOptions, _fs.GrepResult

    @staticmethod
    def read(path: str, offset: int = 0, max_bytes: int = 1 << 20) -> bytes:
        return _call(_fs.read, path, offset, max_bytes)

    @staticmethod
    def tail(path: str, lines: int) -> list[str]:
        return _call(_fs.tail, path, lines)

    @staticmethod
    def list_dir(path: str) -> list[_fs.Entry]:
        return _call(_fs.list_dir, path)

    @staticmethod
    def stat(path: str) -> _fs.Entry:
        return _call(_fs.stat, path)

    @staticmethod
    def usage(path: str) -> _fs.FsUsage:
        return _call(_fs.usage, path)

    @staticmethod
    def largest(path: str, depth: int = 1, limit: int = 10) -> _fs.LargestResult:
        return _call(_fs.largest, path, depth, limit)

    @staticmethod
    def find(path: str, options: _fs.FindOptions) -> list[_fs.Entry]:
        return _call(_fs.find, path, options)

    @staticmethod
    def grep(path: str, pattern: str, case_insensitive: bool = False, max_matches: int = 100,
             last_lines: Optional[int] = None) -> _fs.GrepResult:
        options = _fs.GrepOptions(case_insensitive, max_matches, last_lines)
        return _call(_fs.grep, path, pattern, options)


class notify:
    @staticmethod
    def send(channel: str, message: _notify.Message) -> None:
        _call(_notify.send, channel, message)


class report:
    @staticmethod
    def log(level: _report.Level, message: str) -> None:
        _report.log(level, message)

    @staticmethod
    def step(name: str, status: _report.StepStatus, detail: str = "") -> None:
        _report.step(name, status, detail)

    @staticmethod
    def attach(name: str, content_type: str, data: Union[bytes, str]) -> None:
        _call(_report.attach, name, content_type, data.encode() if isinstance(data, str) else data)


@dataclass
class Approved:
    """An approver said yes; `by` is who, as the channel names them (`telegram:12345 (@alice)`)."""

    by: str


@dataclass
class Rejected:
    by: str
    reason: str


@dataclass
class Expired:
    """Nobody answered before the timeout, or the run is a dry run (nobody was asked)."""


Answer = Union[Approved, Rejected, Expired]


class approval:
    """Ask people before acting: `match approval.ask("oncall", "Restart web-1?", ...)` and branch
    on `Approved(by)`, `Rejected(by, reason)` or `Expired()`. Needs `approval = ["oncall"]` in the
    playbook's grants; the wait does not count against the run's deadline."""

    Approved, Rejected, Expired = Approved, Rejected, Expired

    @staticmethod
    def ask(group: str, title: str, body: str = "", actions: Sequence[str] = (),
            timeout_secs: int = 300) -> Answer:
        question = _approval.Question(title, body, [str(a) for a in actions], timeout_secs)
        answer = _call(_approval.ask, group, question)
        if isinstance(answer, _approval.Answer_Approved):
            return Approved(answer.value)
        if isinstance(answer, _approval.Answer_Rejected):
            return Rejected(answer.value.by, answer.value.reason)
        return Expired()


def info(message: str) -> None:
    _report.log(Level.INFO, message)


def warn(message: str) -> None:
    _report.log(Level.WARN, message)


def error(message: str) -> None:
    _report.log(Level.ERROR, message)


def debug(message: str) -> None:
    _report.log(Level.DEBUG, message)


# --- builders and the incident -----------------------------------------------------------


def _pairs(pairs: Pairs) -> list[Tuple[str, str]]:
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    return [(str(k), str(v)) for k, v in items]


def param(name: str, description: str, default: Optional[str] = None, required: bool = False) -> ParamSpec:
    return ParamSpec(name, description, default, required)


def description(name: str, summary: str, *, version: str = "0.1.0", params: Sequence[ParamSpec] = (),
                wants: Sequence[Capability] = ()) -> Description:
    return Description(name, summary, version, list(params), list(wants))


def message(title: str, body: str = "", severity: Severity = Severity.INFO, fields: Pairs = ()) -> Message:
    return Message(title, body, severity, _pairs(fields))


class Incident:
    """What triggered the run: parameters (defaults filled in), the alert, the dry-run flag."""

    def __init__(self, raw: _types.Incident):
        self.raw = raw
        self.run_id: str = raw.run_id
        self.trigger: TriggerKind = raw.trigger
        self.params: list[Tuple[str, str]] = raw.params
        self.alert: Optional[Alert] = raw.alert
        self.dry_run: bool = raw.dry_run

    def param(self, name: str) -> Optional[str]:
        return next((v for k, v in self.params if k == name), None)

    def param_as(self, name: str, parse: Callable[[str], T]) -> Optional[T]:
        """A parameter parsed by `parse` (int, float, …); one that does not parse is `Invalid`."""
        raw = self.param(name)
        # An empty value means "not set", as a route template that found no label gives.
        if raw is None or not raw.strip():
            return None
        try:
            return parse(raw.strip())
        except ValueError as e:
            raise Invalid(f"parameter {name}={raw!r}: {e}") from None

    def param_list(self, name: str) -> list[str]:
        return [s.strip() for s in (self.param(name) or "").split(",") if s.strip()]

    def alert_label(self, name: str) -> Optional[str]:
        if self.alert is None:
            return None
        return next((v for k, v in self.alert.labels if k == name), None)


class Outcome:
    def __init__(self, status: Status, summary: str, actions: Iterable[str] = ()):
        self.status, self.summary, self.actions = status, summary, list(actions)

    @classmethod
    def resolved(cls, summary: str) -> "Outcome":
        return cls(Status.RESOLVED, summary)

    @classmethod
    def mitigated(cls, summary: str) -> "Outcome":
        return cls(Status.MITIGATED, summary)

    @classmethod
    def escalated(cls, summary: str) -> "Outcome":
        return cls(Status.ESCALATED, summary)

    @classmethod
    def no_action(cls, summary: str) -> "Outcome":
        return cls(Status.NO_ACTION, summary)

    def action(self, action: str) -> "Outcome":
        self.actions.append(action)
        return self

    def to_wit(self) -> _types.Outcome:
        return _types.Outcome(self.status, self.summary, list(self.actions))


def playbook(describe: Callable[[], Description],
             run: Callable[[Incident], Outcome]) -> Type[wit_world.WitWorld]:
    """The class componentize-py exports: `WitWorld = runbook.playbook(describe, run)`."""

    class WitWorld(wit_world.WitWorld):
        def describe(self) -> Description:
            return describe()

        def run(self, incident: _types.Incident) -> _types.Outcome:
            try:
                outcome = run(Incident(incident))
            except CapabilityError as e:
                raise Err(e.to_wit()) from None
            return outcome.to_wit() if isinstance(outcome, Outcome) else outcome

    return WitWorld


def human_bytes(n: int) -> str:
    """1.5 GiB, 300 MiB, 12 KiB — as the Rust SDK prints them."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    value, unit = float(n), 0
    while value >= 1024 and unit < len(units) - 1:
        value, unit = value / 1024, unit + 1
    return f"{n} B" if unit == 0 else f"{value:.1f} {units[unit]}"
