"""Automation definitions: checked once when stored, compiled for the engine.

A definition is a JSON object with `id`, `kind` (`task`, `schedule` or `forward`), `name`,
`enabled`; the
rest depends on the kind (docs/automation.md). `parse_definition` returns the canonical form
(what the store keeps and the API returns, defaults filled in) with its compiled parts, or
raises DefinitionError naming the place of the first mistake.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .conditions import Condition, Dampening, compile_condition
from .errors import DefinitionError
from .handlers import Call, handler_for
from .handlers.runner import DEFAULT_TIMEOUT, MAX_TIMEOUT
from .schedules import ScheduleSpec, parse_schedule
from .templates import compile_template
from .triggers import Trigger, parse_trigger

AUTOMATION_ID = re.compile(r"^[a-z0-9_-]{1,64}$")
FIELD_PATH = re.compile(r"^[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{1,64}$")
MODES = ("single", "restart", "queued", "parallel")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SEVERITIES = ("warning", "critical")
MAX_ACTIONS = 16
MAX_TARGETS = 32
MAX_FOR_SECONDS = 7 * 86400.0
MAX_HISTORY = 100
MAX_NAME = 128
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(slots=True, frozen=True)
class Validity:
    """When a task may fire: a time-of-day window (may cross midnight), weekdays, dates."""

    start: dt.time | None = None
    end: dt.time | None = None
    weekdays: frozenset[int] | None = None  # 0 = Monday
    first_day: dt.date | None = None
    last_day: dt.date | None = None

    def contains(self, moment: dt.datetime) -> bool:
        """Whether `moment` (local time of the gateway's zone) is inside the window."""
        day = moment.date()
        if self.first_day is not None and day < self.first_day:
            return False
        if self.last_day is not None and day > self.last_day:
            return False
        if self.start is not None and self.end is not None:
            now = moment.time().replace(tzinfo=None)
            if self.start <= self.end:
                inside = self.start <= now < self.end
            else:  # 22:00-06:00: the night belongs to the day it started on
                inside = now >= self.start or now < self.end
                if now < self.end:
                    day -= dt.timedelta(days=1)
            if not inside:
                return False
        return self.weekdays is None or day.weekday() in self.weekdays


@dataclass(slots=True, frozen=True)
class Task:
    id: str
    name: str
    trigger: Trigger
    condition: Condition | None
    hysteresis: tuple[Condition, Condition] | None
    hold: float  # `for`: seconds the match must last
    dampening: tuple[int, int] | None  # (count, of)
    rising: bool
    validity: Validity | None
    auto_disable: bool
    reenable_after: float | None
    mode: str
    max_runs: int
    actions: tuple[Call, ...]
    severity: str | None  # an alarm when set
    history: int
    schedule: ScheduleSpec | None = None  # a schedule: runs at its times, not on a trigger

    def new_dampening(self) -> Dampening | None:
        return None if self.dampening is None else Dampening.create(*self.dampening)


@dataclass(slots=True, frozen=True)
class Forward:
    id: str
    name: str
    source: tuple[str, str, str]
    targets: tuple[tuple[str, str, str], ...]
    on_change: bool
    transform: str | None  # a template of `value`
    min_interval: float


type Compiled = Task | Forward


def parse_definition(document: object) -> tuple[dict[str, Any], Compiled]:
    """(canonical definition, compiled form)."""
    if not isinstance(document, Mapping):
        raise DefinitionError("definition: expected an object")
    spec = dict(document)
    automation_id = spec.get("id")
    if not isinstance(automation_id, str) or not AUTOMATION_ID.match(automation_id):
        raise DefinitionError("id: expected 1-64 of a-z, 0-9, _ and -")
    name = spec.get("name", automation_id)
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
        raise DefinitionError(f"name: expected a text of 1-{MAX_NAME} characters")
    enabled = spec.get("enabled", True)
    if not isinstance(enabled, bool):
        raise DefinitionError("enabled: expected true or false")
    common = {"id": automation_id, "name": name, "enabled": enabled}
    kind = spec.get("kind")
    if kind == "task":
        return _task(spec, common)
    if kind == "schedule":
        return _schedule(spec, common)
    if kind == "forward":
        return _forward(spec, common)
    raise DefinitionError("kind: expected task, schedule or forward")


def _schedule(spec: dict[str, Any], common: dict[str, Any]) -> tuple[dict[str, Any], Task]:
    """A schedule: its times (schedules.py), optional conditions, actions, mode and history."""
    _only(spec, {"id", "kind", "name", "enabled", "schedule", "conditions", "mode", "max",
                 "actions", "history"}, "definition")  # fmt: skip
    times = spec.get("schedule")
    if not isinstance(times, Mapping):
        raise DefinitionError("schedule: expected an object (docs/automation.md)")
    when = parse_schedule(times, "schedule")
    condition = None
    if spec.get("conditions") is not None:
        condition = compile_condition(spec["conditions"], "conditions")
    mode, max_runs, history = _mode(spec), _max(spec), _history(spec)
    actions, canonical_actions = _actions(spec.get("actions"))
    canonical = {
        **common, "kind": "schedule", "schedule": dict(times),
        "conditions": spec.get("conditions"), "mode": mode, "max": max_runs,
        "actions": canonical_actions, "history": history,
    }  # fmt: skip
    never = Trigger("schedule", ())
    task = Task(
        common["id"], common["name"], never, condition, None, 0.0, None, False, None, False,
        None, mode, max_runs, actions, None, history, when,
    )  # fmt: skip
    return canonical, task


def _task(spec: dict[str, Any], common: dict[str, Any]) -> tuple[dict[str, Any], Task]:
    _only(spec, {"id", "kind", "name", "enabled", "trigger", "conditions", "hysteresis", "for",
                 "dampening", "fire", "valid", "auto_disable", "mode", "max", "actions",
                 "alarm", "history"}, "definition")  # fmt: skip
    trigger = parse_trigger(spec.get("trigger"), "trigger")
    condition = None
    if spec.get("conditions") is not None:
        condition = compile_condition(spec["conditions"], "conditions")
    hysteresis = None
    if (latch := spec.get("hysteresis")) is not None:
        if not isinstance(latch, Mapping) or set(latch) != {"on", "off"}:
            raise DefinitionError('hysteresis: expected {"on": condition, "off": condition}')
        hysteresis = (
            compile_condition(latch["on"], "hysteresis.on"),
            compile_condition(latch["off"], "hysteresis.off"),
        )
    hold = _seconds(spec.get("for", 0), "for", MAX_FOR_SECONDS)
    dampening = _dampening(spec.get("dampening"))
    fire = spec.get("fire", "rising")
    if fire not in ("rising", "every"):
        raise DefinitionError("fire: expected rising (false → true only) or every (each match)")
    auto = spec.get("auto_disable", False)
    reenable = None
    if isinstance(auto, Mapping):
        _only(auto, {"reenable_after"}, "auto_disable")
        reenable = _seconds(auto.get("reenable_after"), "auto_disable.reenable_after", 1e8)
    elif not isinstance(auto, bool):
        raise DefinitionError('auto_disable: expected true, false or {"reenable_after": s}')
    mode, max_runs = _mode(spec), _max(spec)
    actions, canonical_actions = _actions(spec.get("actions"))
    severity = None
    if spec.get("alarm") is not None and auto is not False:
        raise DefinitionError("auto_disable: an alarm cannot disable itself (it must clear)")
    if (alarm := spec.get("alarm")) is not None:
        if not isinstance(alarm, Mapping) or alarm.get("severity") not in SEVERITIES:
            raise DefinitionError("alarm.severity: expected warning or critical")
        _only(alarm, {"severity"}, "alarm")
        severity = alarm["severity"]
    history = _history(spec)
    validity = _validity(spec.get("valid"))
    canonical = {
        **common, "kind": "task", "trigger": spec["trigger"],
        "conditions": spec.get("conditions"), "hysteresis": spec.get("hysteresis"),
        "for": hold, "dampening": spec.get("dampening"), "fire": fire,
        "valid": spec.get("valid"), "auto_disable": auto, "mode": mode, "max": max_runs,
        "actions": canonical_actions, "alarm": spec.get("alarm"), "history": history,
    }  # fmt: skip
    task = Task(
        common["id"], common["name"], trigger, condition, hysteresis, hold, dampening,
        fire == "rising", validity, auto is not False, reenable, mode, max_runs, actions,
        severity, history,
    )  # fmt: skip
    return canonical, task


def _forward(spec: dict[str, Any], common: dict[str, Any]) -> tuple[dict[str, Any], Forward]:
    _only(spec, {"id", "kind", "name", "enabled", "from", "to", "on", "transform",
                 "min_interval"}, "definition")  # fmt: skip
    source = _path(spec.get("from"), "from")
    targets = spec.get("to")
    if isinstance(targets, str):
        targets = [targets]
    if not isinstance(targets, list) or not 1 <= len(targets) <= MAX_TARGETS:
        raise DefinitionError(f"to: expected 1-{MAX_TARGETS} fields (node.source.field)")
    paths = tuple(_path(t, f"to[{i}]") for i, t in enumerate(targets))
    if source in paths:
        raise DefinitionError("to: a field cannot be forwarded to itself")
    on = spec.get("on", "change")
    if on not in ("change", "update"):
        raise DefinitionError("on: expected change or update")
    transform = spec.get("transform")
    if transform is not None:
        compile_template(transform, "transform")
    interval = _seconds(spec.get("min_interval", 0), "min_interval", 86400)
    canonical = {**common, "kind": "forward", "from": ".".join(source),
                 "to": [".".join(p) for p in paths], "on": on, "transform": transform,
                 "min_interval": interval}  # fmt: skip
    forward = Forward(common["id"], common["name"], source, paths, on == "change", transform,
                      interval)  # fmt: skip
    return canonical, forward


def _mode(spec: Mapping[str, Any]) -> str:
    mode = spec.get("mode", "single")
    if mode not in MODES:
        raise DefinitionError(f"mode: expected one of {', '.join(MODES)}")
    return str(mode)


def _max(spec: Mapping[str, Any]) -> int:
    max_runs = spec.get("max", 10)
    if not _is_int(max_runs) or not 1 <= max_runs <= 100:
        raise DefinitionError("max: expected 1-100 (runs at once, or waiting when queued)")
    return int(max_runs)


def _history(spec: Mapping[str, Any]) -> int:
    history = spec.get("history", 20)
    if not _is_int(history) or not 1 <= history <= MAX_HISTORY:
        raise DefinitionError(f"history: expected 1-{MAX_HISTORY} runs")
    return int(history)


def _actions(spec: object) -> tuple[tuple[Call, ...], list[dict[str, Any]]]:
    if not isinstance(spec, list) or not 1 <= len(spec) <= MAX_ACTIONS:
        raise DefinitionError(f"actions: expected a list of 1-{MAX_ACTIONS} handler calls")
    calls, canonical = [], []
    for i, item in enumerate(spec):
        where = f"actions[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("handler"), str):
            raise DefinitionError(f'{where}: expected {{"handler": name, "params": {{...}}}}')
        _only(item, {"handler", "params", "timeout"}, where)
        handler = handler_for(item["handler"], where)
        params = handler.validate(item.get("params", {}), f"{where}.params")
        for name in handler.templates:
            if name in params:
                compile_template(params[name], f"{where}.params.{name}")
        timeout = _seconds(item.get("timeout", DEFAULT_TIMEOUT), f"{where}.timeout", MAX_TIMEOUT)
        if timeout <= 0:
            raise DefinitionError(f"{where}.timeout: expected more than 0 seconds")
        calls.append(Call(handler, params, timeout))
        canonical.append({"handler": handler.name, "params": params, "timeout": timeout})
    return tuple(calls), canonical


def _dampening(spec: object) -> tuple[int, int] | None:
    if spec is None:
        return None
    if not isinstance(spec, Mapping) or not set(spec) <= {"count", "of"}:
        raise DefinitionError('dampening: expected {"count": n, "of": m}')
    count, of = spec.get("count"), spec.get("of", spec.get("count"))
    if not (_is_int(count) and _is_int(of)):
        raise DefinitionError("dampening: count and of are integers")
    assert isinstance(count, int)
    assert isinstance(of, int)
    Dampening.create(count, of)  # checks the range
    return count, of


def _validity(spec: object) -> Validity | None:
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise DefinitionError('valid: expected {"time": [from, to], "weekdays": [...], ...}')
    _only(spec, {"time", "weekdays", "dates"}, "valid")
    start = end = first = last = None
    weekdays = None
    if (times := spec.get("time")) is not None:
        if not isinstance(times, list) or len(times) != 2:
            raise DefinitionError('valid.time: expected ["HH:MM", "HH:MM"]')
        start, end = (_clock(t, f"valid.time[{i}]") for i, t in enumerate(times))
        if start == end:
            raise DefinitionError("valid.time: an empty window (from equals to)")
    if (days := spec.get("weekdays")) is not None:
        if not isinstance(days, list) or not days or not all(d in WEEKDAYS for d in days):
            raise DefinitionError(f"valid.weekdays: expected a list of {', '.join(WEEKDAYS)}")
        weekdays = frozenset(WEEKDAYS.index(d) for d in days)
    if (dates := spec.get("dates")) is not None:
        if not isinstance(dates, list) or len(dates) != 2:
            raise DefinitionError('valid.dates: expected ["YYYY-MM-DD", "YYYY-MM-DD"]')
        first, last = (_date(d, f"valid.dates[{i}]") for i, d in enumerate(dates))
        if first > last:
            raise DefinitionError("valid.dates: the first day is after the last")
    return Validity(start, end, weekdays, first, last)


def _clock(value: object, where: str) -> dt.time:
    match = _TIME.match(value) if isinstance(value, str) else None
    if match is None:
        raise DefinitionError(f"{where}: expected HH:MM (00:00-23:59)")
    return dt.time(int(match.group(1)), int(match.group(2)))


def _date(value: object, where: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value) if isinstance(value, str) else _bad_date(where)
    except ValueError:
        return _bad_date(where)


def _bad_date(where: str) -> dt.date:
    raise DefinitionError(f"{where}: expected a date YYYY-MM-DD")


def _seconds(value: object, where: str, maximum: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise DefinitionError(f"{where}: expected 0-{maximum:g} seconds")
    return float(value)


def _path(value: object, where: str) -> tuple[str, str, str]:
    if not isinstance(value, str) or not FIELD_PATH.match(value):
        raise DefinitionError(f"{where}: expected node.source.field")
    node, source, field = value.split(".")
    return node, source, field


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _only(spec: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = set(spec) - allowed
    if extra:
        raise DefinitionError(f"{where}: unexpected {', '.join(sorted(map(str, extra)))}")
