"""Task conditions: comparisons on the triggering value, its previous value and other fields'
values and ages, combined with `all`/`any`/`not`, compiled once and evaluated per trigger.

The stateful parts of a task (hysteresis, dampening, `for`, rising edge) keep their state in
small objects of their own, so the engine can persist and restore it across restarts.

A leaf compares an operand with `to`:

    {"value": "trigger", "op": ">=", "to": 25}
    {"value": "previous", "op": "changed"}
    {"value": {"field": "greenhouse.climate.humidity"}, "op": "between", "to": [40, 60]}
    {"age": "greenhouse.climate.humidity", "op": ">", "to": 600}     # seconds since its update
    {"template": "{{ value - previous > 2 }}"}                        # also field('n.s.f'), now

A missing value (unknown field, no previous value, null) makes a comparison false, except
`changed` (true when the trigger differs from the previous value, including from none).
"""

from __future__ import annotations

import operator
import re
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import DefinitionError
from .templates import Template, TemplateError, compile_template

MAX_DEPTH = 8
MAX_TERMS = 64  # per all/any
MAX_REGEX = 256


class Values(Protocol):
    """What a condition reads: the trigger, its previous value, and the gateway's fields."""

    trigger: Any
    previous: Any
    now: float

    def field(self, path: str) -> tuple[Any, float | None]:
        """(value, updated) of `node.source.field`; (None, None) when unknown."""


type Condition = Callable[[Values], bool]


def _between(value: Any, bounds: Sequence[Any]) -> bool:
    return bool(bounds[0] <= value <= bounds[1])


_ORDERED: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_OPS = {*_ORDERED, "==", "!=", "in", "not in", "between", "changed", "regex"}
_FIELD_PATH = re.compile(r"^[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{1,64}$")
_SCALAR = (bool, int, float, str)


def compile_condition(spec: object, where: str = "conditions", depth: int = 0) -> Condition:
    """A condition from its definition; DefinitionError names the place of a mistake."""
    if depth > MAX_DEPTH:
        raise DefinitionError(f"{where}: nested deeper than {MAX_DEPTH}")
    if isinstance(spec, list):
        spec = {"all": spec}
    if not isinstance(spec, Mapping):
        raise DefinitionError(f"{where}: expected an object or a list of conditions")
    for combinator in ("all", "any"):
        if combinator in spec:
            return _combine(combinator, spec, where, depth)
    if "template" in spec:
        _only(spec, {"template"}, where)
        return _template_condition(compile_template(spec["template"], f"{where}.template"))
    if "not" in spec:
        _only(spec, {"not"}, where)
        inner = compile_condition(spec["not"], f"{where}.not", depth + 1)
        return lambda values: not inner(values)
    return _leaf(spec, where)


def _template_condition(template: Template) -> Condition:
    """True when the template renders a true value (`{{ value > previous + 2 }}`); a render
    error (a field without a value) is false, like a missing value in a comparison."""

    def evaluate(values: Values) -> bool:
        variables = {"value": values.trigger, "previous": values.previous, "now": values.now,
                     "field": lambda path: values.field(path)[0]}  # fmt: skip
        try:
            result = template.render_value(variables)
        except TemplateError:
            return False
        return bool(result) and result not in ("false", "False", "off", "0")

    return evaluate


def _combine(kind: str, spec: Mapping[str, Any], where: str, depth: int) -> Condition:
    _only(spec, {kind}, where)
    terms = spec[kind]
    if not isinstance(terms, list) or not 1 <= len(terms) <= MAX_TERMS:
        raise DefinitionError(f"{where}.{kind}: expected a list of 1-{MAX_TERMS} conditions")
    compiled = tuple(
        compile_condition(term, f"{where}.{kind}[{i}]", depth + 1) for i, term in enumerate(terms)
    )
    if kind == "all":
        return lambda values: all(term(values) for term in compiled)
    return lambda values: any(term(values) for term in compiled)


def _leaf(spec: Mapping[str, Any], where: str) -> Condition:
    op = spec.get("op")
    if op not in _OPS:
        raise DefinitionError(f"{where}.op: unknown operator {op!r} (one of {sorted(_OPS)})")
    if "age" in spec:
        _only(spec, {"age", "op", "to"}, where)
        read = _age_reader(spec["age"], f"{where}.age")
        if op not in _ORDERED:
            raise DefinitionError(f"{where}.op: an age compares with <, <=, > or >=")
    else:
        _only(spec, {"value", "op", "to"}, where)
        read = _value_reader(spec.get("value", "trigger"), f"{where}.value")
    if op == "changed":
        if spec.get("value", "trigger") != "trigger":
            raise DefinitionError(
                f"{where}.value: `changed` compares the trigger with its previous value"
            )
        if "to" in spec:
            raise DefinitionError(f"{where}.to: `changed` compares with nothing")
        return lambda values: values.trigger != values.previous
    if "to" not in spec:
        raise DefinitionError(f"{where}.to: required for {op!r}")
    test = _test(op, spec["to"], f"{where}.to")

    def evaluate(values: Values) -> bool:
        value = read(values)
        if value is None:
            return False
        try:
            return test(value)
        except TypeError:  # e.g. a string compared with a number: not a match
            return False

    return evaluate


def _test(op: str, to: object, where: str) -> Callable[[Any], bool]:
    if op in _ORDERED:
        if not _is_number(to) and not isinstance(to, str):
            raise DefinitionError(f"{where}: {op} compares with a number or a string")
        compare = _ORDERED[op]
        return lambda value: not isinstance(value, bool) and compare(value, to)
    if op in ("==", "!="):
        if not isinstance(to, _SCALAR):
            raise DefinitionError(f"{where}: expected a number, a string or a boolean")
        equal = op == "=="
        return lambda value: _same(value, to) is equal
    if op in ("in", "not in"):
        if not isinstance(to, list) or not to or not all(isinstance(i, _SCALAR) for i in to):
            raise DefinitionError(f"{where}: expected a non-empty list of values")
        members, inside = tuple(to), op == "in"
        return lambda value: any(_same(value, member) for member in members) is inside
    if op == "between":
        if not (isinstance(to, list) and len(to) == 2 and all(_is_number(b) for b in to)):
            raise DefinitionError(f"{where}: expected [low, high]")
        if to[0] > to[1]:
            raise DefinitionError(f"{where}: low {to[0]} is above high {to[1]}")
        return lambda value: _is_number(value) and _between(value, to)
    # regex
    if not isinstance(to, str) or len(to) > MAX_REGEX:
        raise DefinitionError(f"{where}: expected a regular expression of <= {MAX_REGEX} chars")
    try:
        pattern = re.compile(to)
    except re.error as err:
        raise DefinitionError(f"{where}: not a regular expression: {err}") from None
    return lambda value: isinstance(value, str) and pattern.search(value) is not None


def _value_reader(operand: object, where: str) -> Callable[[Values], Any]:
    if operand == "trigger":
        return lambda values: values.trigger
    if operand == "previous":
        return lambda values: values.previous
    if isinstance(operand, Mapping) and set(operand) == {"field"}:
        path = _field_path(operand["field"], f"{where}.field")
        return lambda values: values.field(path)[0]
    raise DefinitionError(f"{where}: expected 'trigger', 'previous' or {{\"field\": path}}")


def _age_reader(path: object, where: str) -> Callable[[Values], Any]:
    checked = _field_path(path, where)

    def age(values: Values) -> float | None:
        updated = values.field(checked)[1]
        return None if updated is None else values.now - updated

    return age


def _field_path(path: object, where: str) -> str:
    if not isinstance(path, str) or not _FIELD_PATH.match(path):
        raise DefinitionError(f"{where}: expected node.source.field")
    return path


def _same(value: object, to: object) -> bool:
    """Equality where a boolean equals only a boolean (True is not 1)."""
    if isinstance(value, bool) or isinstance(to, bool):
        return value is to
    return value == to


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _only(spec: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = set(spec) - allowed
    if extra:
        raise DefinitionError(f"{where}: unexpected {', '.join(sorted(map(str, extra)))}")


# Stateful parts ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Hysteresis:
    """A latch: on when `on` holds, off when `off` holds, unchanged in between (a frost alarm
    raised below 2 °C and cleared above 4 °C)."""

    on: Condition
    off: Condition
    state: bool = False

    def __call__(self, values: Values) -> bool:
        if self.state:
            self.state = not self.off(values)
        else:
            self.state = self.on(values)
        return self.state


@dataclass(slots=True)
class Dampening:
    """True once `count` of the last `of` evaluations were true (`of` = `count`: consecutive)."""

    count: int
    of: int
    history: deque[bool]

    @classmethod
    def create(cls, count: int, of: int | None = None) -> Dampening:
        window = count if of is None else of
        if not 1 <= count <= window <= 1000:
            raise DefinitionError("dampening: expected 1 <= count <= of <= 1000")
        return cls(count, window, deque(maxlen=window))

    def __call__(self, matched: bool) -> bool:
        self.history.append(matched)
        return sum(self.history) >= self.count


@dataclass(slots=True)
class Edge:
    """`rising`: true only when the condition goes from false to true."""

    last: bool = False

    def __call__(self, matched: bool) -> bool:
        rose = matched and not self.last
        self.last = matched
        return rose
