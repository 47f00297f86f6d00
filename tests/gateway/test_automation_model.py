"""Automation definitions: the canonical form, compiled parts, validity windows, and every
mistake named by its place."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from edgeiot_gateway.automation.errors import DefinitionError
from edgeiot_gateway.automation.model import Forward, Task, parse_definition

FROST: dict[str, Any] = {
    "id": "frost",
    "kind": "task",
    "name": "Frost alarm",
    "trigger": {"type": "field", "node": "gh", "source": "climate", "field": "temperature"},
    "hysteresis": {"on": {"op": "<", "to": 2}, "off": {"op": ">", "to": 4}},
    "for": 300,
    "actions": [{"handler": "notify", "params": {"message": "Frost: {{ value }} °C"}}],
    "alarm": {"severity": "critical"},
}


def test_a_task_gets_its_defaults() -> None:
    canonical, task = parse_definition(FROST)
    assert isinstance(task, Task)
    assert canonical == FROST | {
        "enabled": True, "conditions": None, "dampening": None, "fire": "rising", "valid": None,
        "auto_disable": False, "mode": "single", "max": 10, "history": 20, "for": 300.0,
        "actions": [{"handler": "notify", "params": {"message": "Frost: {{ value }} °C"},
                     "timeout": 30.0}],
    }  # fmt: skip
    assert task.severity == "critical"
    assert task.hold == 300.0
    assert task.rising
    assert task.hysteresis is not None
    assert parse_definition(canonical)[0] == canonical  # the canonical form is stable


def test_a_forward() -> None:
    canonical, forward = parse_definition(
        {"id": "can-to-mqtt", "kind": "forward", "from": "can.engine.rpm",
         "to": "dash.engine.rpm", "transform": "{{ value / 100 }}", "min_interval": 1}
    )  # fmt: skip
    assert isinstance(forward, Forward)
    assert forward.targets == (("dash", "engine", "rpm"),)
    assert canonical["to"] == ["dash.engine.rpm"]
    assert canonical["on"] == "change"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "Frost!"}, r"^id: expected 1-64 of a-z"),
        ({"kind": "rule"}, r"^kind: expected task, schedule or forward"),
        ({"name": ""}, r"^name: expected a text of 1-128"),
        ({"enabled": "yes"}, r"^enabled: expected true or false"),
        ({"trigger": {"type": "field", "node": "a b"}}, r"^trigger\.node: expected an id"),
        ({"conditions": {"op": "~"}}, r"^conditions\.op: unknown operator"),
        ({"hysteresis": {"on": {"op": "<", "to": 2}}}, r"^hysteresis: expected \{"),
        ({"hysteresis": {"on": {"op": "<", "to": 2}, "off": {"op": "<<", "to": 1}}},
         r"^hysteresis\.off\.op: unknown operator"),
        ({"for": -1}, r"^for: expected 0-604800 seconds"),
        ({"dampening": {"count": 4, "of": 2}}, r"^dampening: expected 1 <= count <= of"),
        ({"dampening": {"count": 1.5}}, r"^dampening: count and of are integers"),
        ({"fire": "falling"}, r"^fire: expected rising"),
        ({"mode": "once"}, r"^mode: expected one of single, restart, queued, parallel"),
        ({"max": 0}, r"^max: expected 1-100"),
        ({"actions": []}, r"^actions: expected a list of 1-16 handler calls"),
        ({"actions": [{"handler": "sms"}]}, r"^actions\[0\]: unknown handler 'sms'"),
        ({"actions": [{"handler": "notify", "params": {}}]},
         r"^actions\[0\]\.params: required key not provided at 'message'"),
        ({"actions": [{"handler": "notify", "params": {"message": "m"}, "timeout": 0}]},
         r"^actions\[0\]\.timeout: expected more than 0 seconds"),
        ({"alarm": {"severity": "info"}}, r"^alarm\.severity: expected warning or critical"),
        ({"valid": {"time": ["25:00", "06:00"]}}, r"^valid\.time\[0\]: expected HH:MM"),
        ({"valid": {"time": ["06:00", "06:00"]}}, r"^valid\.time: an empty window"),
        ({"valid": {"weekdays": ["monday"]}}, r"^valid\.weekdays: expected a list of mon"),
        ({"valid": {"dates": ["2026-12-24", "2026-12-01"]}}, r"^valid\.dates: the first day"),
        ({"valid": {"dates": ["2026-02-30", "2026-12-01"]}}, r"^valid\.dates\[0\]: expected a d"),
        ({"history": 1000}, r"^history: expected 1-100 runs"),
        ({"actions": [{"handler": "notify", "params": {"message": "{% if %}"}}]},
         r"^actions\[0\]\.params\.message: line 1: "),
        ({"colour": "red"}, r"^definition: unexpected colour"),
    ],
)  # fmt: skip
def test_mistakes_are_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        parse_definition(FROST | change)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"from": "a.b.c", "to": "a.b.c"}, r"^to: a field cannot be forwarded to itself"),
        ({"from": "a.b", "to": "a.b.c"}, r"^from: expected node\.source\.field"),
        ({"from": "a.b.c", "to": []}, r"^to: expected 1-32 fields"),
        ({"from": "a.b.c", "to": "d.e.f", "on": "always"}, r"^on: expected change or update"),
        ({"from": "a.b.c", "to": "d.e.f", "transform": "{{ x"}, r"^transform: line 1: "),
        ({"from": "a.b.c", "to": "d.e.f", "transform": 5}, r"^transform: a template must be a"),
    ],
)
def test_forward_mistakes(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        parse_definition({"id": "f", "kind": "forward", **spec})


def _validity(valid: dict[str, Any]) -> Any:
    task = parse_definition(FROST | {"valid": valid})[1]
    assert isinstance(task, Task)
    assert task.validity is not None
    return task.validity


def test_validity_window_across_midnight() -> None:
    # Nights from Friday and Saturday only: Saturday 02:00 belongs to Friday's night.
    night = _validity({"time": ["22:00", "06:00"], "weekdays": ["fri", "sat"]})
    friday = dt.datetime(2026, 12, 4)
    assert night.contains(friday.replace(hour=23))
    assert night.contains(friday.replace(hour=23) + dt.timedelta(hours=3))  # Sat 02:00
    assert not night.contains(friday.replace(hour=12))
    assert not night.contains(friday - dt.timedelta(hours=2))  # Thursday night 22:00 → no
    assert night.contains(friday + dt.timedelta(days=2, hours=5))  # Sunday 05:00, Sat's night
    assert not night.contains(friday + dt.timedelta(days=2, hours=6))  # Sunday 06:00


def test_validity_dates_and_day_window() -> None:
    winter = _validity({"time": ["08:00", "17:30"], "dates": ["2026-12-01", "2027-02-28"]})
    assert winter.contains(dt.datetime(2026, 12, 1, 8, 0))
    assert not winter.contains(dt.datetime(2026, 12, 1, 17, 30))
    assert not winter.contains(dt.datetime(2026, 11, 30, 12, 0))
    assert winter.contains(dt.datetime(2027, 2, 28, 12, 0))
    assert not winter.contains(dt.datetime(2027, 3, 1, 12, 0))


def test_an_alarm_cannot_disable_itself() -> None:
    with pytest.raises(DefinitionError, match=r"^auto_disable: an alarm cannot disable itself"):
        parse_definition(FROST | {"auto_disable": True})
    with pytest.raises(DefinitionError, match=r"^conditions\.value: `changed` compares the tr"):
        parse_definition(FROST | {"conditions": {"value": "previous", "op": "changed"}})
