"""Task conditions: every operator, operands, combinators, the stateful parts, and clear errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from edgeiot_gateway.automation.conditions import (
    Dampening,
    Edge,
    Hysteresis,
    compile_condition,
)
from edgeiot_gateway.automation.errors import DefinitionError


@dataclass
class Run:
    trigger: Any = None
    previous: Any = None
    now: float = 1000.0
    fields: dict[str, tuple[Any, float | None]] = field(default_factory=dict)

    def field(self, path: str) -> tuple[Any, float | None]:
        return self.fields.get(path, (None, None))


@pytest.mark.parametrize(
    ("op", "to", "value", "expected"),
    [
        ("==", 5, 5, True),
        ("==", 5, 5.0, True),
        ("==", 1, True, False),  # a boolean is not a number
        ("==", True, True, True),
        ("==", True, 1, False),
        ("!=", "on", "off", True),
        ("!=", True, 1, True),
        ("<", 2, 1.5, True),
        ("<", 2, 2, False),
        ("<=", 2, 2, True),
        (">", 25, 25.1, True),
        (">", 0, True, False),
        (">=", 25, 24.9, False),
        (">", 25, "hot", False),  # a string against a number: no match, no error
        ("<", "m", "a", True),
        ("in", ["auto", "manual"], "auto", True),
        ("in", [1, 2], True, False),
        ("not in", ["auto", "manual"], "off", True),
        ("between", [40, 60], 40, True),
        ("between", [40, 60], 60.5, False),
        ("between", [40, 60], "50", False),
        ("regex", "^err", "error 5", True),
        ("regex", "^err", "no error", False),
        ("regex", "^1", 1, False),
    ],
)
def test_operators(op: str, to: Any, value: Any, expected: bool) -> None:
    condition = compile_condition({"value": "trigger", "op": op, "to": to})
    assert condition(Run(trigger=value)) is expected


def test_a_missing_value_never_matches() -> None:
    assert not compile_condition({"op": "!=", "to": 1})(Run(trigger=None))
    assert not compile_condition({"value": "previous", "op": "not in", "to": [1]})(Run(trigger=2))


def test_changed_compares_trigger_and_previous() -> None:
    changed = compile_condition({"op": "changed"})
    assert changed(Run(trigger=2, previous=1))
    assert changed(Run(trigger=2, previous=None))
    assert not changed(Run(trigger=2, previous=2))


def test_other_fields_and_their_age() -> None:
    fields = {"gh.climate.humidity": (55, 900.0), "gh.vent.open": (True, 990.0)}
    run = Run(trigger=30, now=1000.0, fields=fields)
    humid = compile_condition(
        {"value": {"field": "gh.climate.humidity"}, "op": "between", "to": [50, 60]}
    )
    stale = compile_condition({"age": "gh.climate.humidity", "op": ">", "to": 60})
    fresh = compile_condition({"age": "gh.vent.open", "op": "<=", "to": 10})
    unknown = compile_condition({"age": "gh.x.y", "op": "<", "to": 1e9})
    assert humid(run)
    assert stale(run)
    assert fresh(run)
    assert not unknown(run)


def test_all_any_not_and_lists() -> None:
    condition = compile_condition(
        {
            "any": [
                [{"op": ">", "to": 30}, {"value": "previous", "op": "<=", "to": 30}],
                {"not": {"op": "between", "to": [-20, 50]}},
            ]
        }
    )
    assert condition(Run(trigger=31, previous=30))
    assert not condition(Run(trigger=31, previous=31))
    assert condition(Run(trigger=60, previous=60))
    assert not condition(Run(trigger=10, previous=0))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"op": "gt", "to": 1}, r"conditions\.op: unknown operator 'gt'"),
        ({"op": ">"}, r"conditions\.to: required for '>'"),
        ({"op": "changed", "to": 1}, r"conditions\.to: `changed` compares with nothing"),
        ({"op": ">", "to": [1]}, r"conditions\.to: > compares with a number or a string"),
        ({"op": "between", "to": [5, 1]}, r"conditions\.to: low 5 is above high 1"),
        ({"op": "between", "to": [1]}, r"conditions\.to: expected \[low, high\]"),
        ({"op": "in", "to": []}, r"conditions\.to: expected a non-empty list"),
        ({"op": "regex", "to": "(("}, r"conditions\.to: not a regular expression"),
        ({"value": "other", "op": "==", "to": 1}, r"conditions\.value: expected 'trigger'"),
        ({"value": {"field": "a.b"}, "op": "==", "to": 1}, r"value\.field: expected node\.s"),
        ({"age": "a.b.c", "op": "==", "to": 1}, r"an age compares with <, <=, > or >="),
        ({"op": "==", "to": 1, "unit": "C"}, r"conditions: unexpected unit"),
        ({"all": [{"op": "==", "to": 1}, {"op": "?"}]}, r"conditions\.all\[1\]\.op: unknown"),
        ({"any": []}, r"conditions\.any: expected a list of 1-64 conditions"),
        ("x > 1", r"conditions: expected an object or a list"),
    ],
)
def test_mistakes_are_named(spec: Any, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        compile_condition(spec)


def test_nesting_is_bounded() -> None:
    spec: Any = {"op": "==", "to": 1}
    for _ in range(10):
        spec = {"not": spec}
    with pytest.raises(DefinitionError, match="nested deeper than 8"):
        compile_condition(spec)


def test_hysteresis_latches_between_the_thresholds() -> None:
    frost = Hysteresis(
        on=compile_condition({"op": "<", "to": 2}), off=compile_condition({"op": ">", "to": 4})
    )
    states = [frost(Run(trigger=t)) for t in (5, 3, 1.9, 3, 4, 4.1, 3, 1)]
    assert states == [False, False, True, True, True, False, False, True]


def test_dampening_consecutive_and_n_of_m() -> None:
    consecutive = Dampening.create(3)
    assert [consecutive(m) for m in (True, True, False, True, True, True)] == [
        False, False, False, False, False, True,
    ]  # fmt: skip
    two_of_four = Dampening.create(2, 4)
    assert [two_of_four(m) for m in (True, False, True, False, False, True, True)] == [
        False, False, True, True, False, True, True,
    ]  # fmt: skip
    with pytest.raises(DefinitionError, match="count <= of"):
        Dampening.create(5, 3)


def test_edge_fires_on_rising_only() -> None:
    edge = Edge()
    assert [edge(m) for m in (False, True, True, False, True)] == [False, True, False, False, True]


def test_template_conditions() -> None:
    rise = compile_condition({"template": "{{ value - previous > 2 }}"})
    assert rise(Run(trigger=25, previous=20))
    assert not rise(Run(trigger=21, previous=20))
    assert not rise(Run(trigger=21, previous=None))  # a render error is false
    other = compile_condition({"template": "{{ field('gh.vent.open') and value > 3 }}"})
    assert other(Run(trigger=4, fields={"gh.vent.open": (True, 1.0)}))
    assert not other(Run(trigger=4, fields={"gh.vent.open": (False, 1.0)}))
    with pytest.raises(DefinitionError, match=r"conditions\.any\[0\]\.template: line 1"):
        compile_condition({"any": [{"template": "{{ value >"}]})
    with pytest.raises(DefinitionError, match=r"conditions: unexpected op"):
        compile_condition({"template": "{{ true }}", "op": "=="})
