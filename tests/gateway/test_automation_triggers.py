"""The trigger index: exact and wildcard subscriptions, change vs update, transitions."""

from __future__ import annotations

from typing import Any

import pytest

from edgeiot_gateway import bus
from edgeiot_gateway.automation.errors import DefinitionError
from edgeiot_gateway.automation.triggers import TriggerIndex, parse_trigger


def value(node: str, field: str, v: Any, source: str = "climate") -> bus.Event:
    return bus.Event(
        bus.FIELD_VALUE,
        {"node_id": node, "source_id": source, "field_id": field, "value": v, "updated": 1.0},
    )


def status(node: str, online: bool) -> bus.Event:
    return bus.Event(
        bus.NODE_STATUS,
        {"node_id": node, "online": online, "battery": None, "rssi": None, "last_seen": 1.0},
    )


def fired(index: TriggerIndex, event: bus.Event) -> list[str]:
    return sorted(task for task, _ in index.match(event))


def test_exact_and_wildcard_field_triggers() -> None:
    index = TriggerIndex()
    index.add("exact", parse_trigger({"type": "field", "node": "gh", "source": "climate",
                                      "field": "temperature"}))  # fmt: skip
    index.add("any_node", parse_trigger({"type": "field", "node": "gh*", "field": "temperature"}))
    index.add("every", parse_trigger({"type": "field", "node": "gh", "source": "climate",
                                      "field": "temperature", "on": "update"}))  # fmt: skip
    assert fired(index, value("gh", "temperature", 20)) == ["any_node", "every", "exact"]
    assert fired(index, value("gh", "temperature", 20)) == ["every"]  # unchanged
    assert fired(index, value("gh2", "temperature", 20)) == ["any_node"]
    assert fired(index, value("gh", "humidity", 50)) == []
    assert fired(index, value("other", "temperature", 1)) == []
    [(_, hit)] = [m for m in index.match(value("gh", "temperature", 21.5)) if m[0] == "exact"]
    assert hit.variables() == {
        "trigger": "field", "node": "gh", "source": "climate", "field": "temperature",
        "value": 21.5, "previous": 20,
    }  # fmt: skip


def test_a_type_change_is_a_change() -> None:
    index = TriggerIndex()
    index.add("t", parse_trigger({"type": "field", "node": "n", "source": "s", "field": "f"}))
    assert fired(index, value("n", "f", 1, "s")) == ["t"]
    assert fired(index, value("n", "f", True, "s")) == ["t"]
    assert fired(index, value("n", "f", True, "s")) == []


def test_status_transitions() -> None:
    index = TriggerIndex()
    index.add("offline", parse_trigger({"type": "status", "node": "*", "to": "offline"}))
    index.add("any", parse_trigger({"type": "status", "node": "gh"}))
    assert fired(index, status("gh", True)) == ["any"]
    assert fired(index, status("gh", True)) == []  # a repeated status is no transition
    assert fired(index, status("gh", False)) == ["any", "offline"]
    assert fired(index, status("x", False)) == ["offline"]


def test_events_and_gateway_figures() -> None:
    index = TriggerIndex()
    index.add("press", parse_trigger({"type": "event", "source": "button", "event": "pressed"}))
    index.add("drops", parse_trigger({"type": "gateway", "figure": "dropped"}))
    event = bus.Event(
        bus.NODE_EVENT,
        {"node_id": "b1", "source_id": "button", "event_type": "pressed", "data": {"n": 2}},
    )
    [(task, hit)] = index.match(event)
    assert task == "press"
    assert hit.value == {"n": 2}
    assert index.match(event) != []  # every event fires, equal data or not
    assert [t for t, _ in index.match_figure("dropped", 0)] == ["drops"]
    assert index.match_figure("dropped", 0) == []
    assert [t for t, _ in index.match_figure("dropped", 3)] == ["drops"]


def test_remove_and_replace() -> None:
    index = TriggerIndex()
    index.add("a", parse_trigger({"type": "field", "node": "n*", "field": "f"}))
    index.add("b", parse_trigger({"type": "field", "node": "n", "source": "s", "field": "f"}))
    assert fired(index, value("n", "f", 1, "s")) == ["a", "b"]
    index.remove("a")
    index.add("b", parse_trigger({"type": "field", "node": "m", "source": "s", "field": "f"}))
    assert len(index) == 1
    assert fired(index, value("n", "f", 2, "s")) == []
    assert fired(index, value("m", "f", 2, "s")) == ["b"]
    index.remove("b")
    index.remove("b")
    assert len(index) == 0


def test_forget_a_removed_node() -> None:
    index = TriggerIndex()
    index.add("t", parse_trigger({"type": "field", "node": "n", "source": "s", "field": "f"}))
    assert fired(index, value("n", "f", 1, "s")) == ["t"]
    index.forget("n")
    [(_, hit)] = index.match(value("n", "f", 1, "s"))
    assert hit.previous is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "sun"}, r"trigger\.type: expected one of field, status, event, gateway"),
        ({"type": "field", "node": "a/b"}, r"trigger\.node: expected an id"),
        ({"type": "field", "on": "sometimes"}, r"trigger\.on: expected change or update"),
        ({"type": "status", "to": "asleep"}, r"trigger\.to: expected online or offline"),
        ({"type": "event", "field": "x"}, r"trigger: unexpected field"),
        ([], r"trigger: expected an object"),
    ],
)
def test_mistakes_are_named(spec: Any, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        parse_trigger(spec)
