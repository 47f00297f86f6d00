"""Templates for conditions, transforms and parameters: Jinja2's immutable sandbox, bounded.

Bounds: source 4 KiB; output 64 KiB; `range` at most 10,000 items; `*` may not build a string
or list longer than the output bound; `**` exponents at most 1,000; a render stops after
1 s of work (checked at every call, loop step over `range` and intercepted operator).
"""

from __future__ import annotations

import ast
import json
import math
import operator
import time
from collections.abc import Iterator, Mapping
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import DefinitionError

MAX_SOURCE_BYTES = 4 * 1024
MAX_OUTPUT_CHARS = 64 * 1024
MAX_RANGE = 10_000
MAX_EXPONENT = 1_000
RENDER_SECONDS = 1.0


class TemplateError(Exception):
    """A render failed: undefined name, type error, sandbox refusal or a bound hit."""


class _Budget:
    """The time bound of the render in progress."""

    deadline = math.inf

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateError(f"took longer than {RENDER_SECONDS:g} s")


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def __init__(self) -> None:
        super().__init__(undefined=jinja2.StrictUndefined, autoescape=False)
        self.budget = _Budget()
        self.globals["range"] = self._range

    def _range(self, *args: int) -> Iterator[int]:
        numbers = range(*args)
        if len(numbers) > MAX_RANGE:
            raise TemplateError(f"range() of {len(numbers)} items (at most {MAX_RANGE})")
        for number in numbers:
            self.budget.check()
            yield number

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        self.budget.check()
        if operator_name == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise TemplateError(f"exponent {right} is too large (at most {MAX_EXPONENT})")
            return operator.pow(left, right)
        for seq, count in ((left, right), (right, left)):
            sized = isinstance(seq, str | list | tuple) and isinstance(count, int)
            if sized and len(seq) * count > MAX_OUTPUT_CHARS:
                raise TemplateError(f"'*' would build {len(seq) * count} items")
        return operator.mul(left, right)

    def call(self, context: Any, obj: Any, *args: Any, **kwargs: Any) -> Any:
        self.budget.check()
        return super().call(context, obj, *args, **kwargs)


_ENV = _Environment()


class Template:
    """A compiled, validated template."""

    def __init__(self, source: str, where: str, compiled: jinja2.Template) -> None:
        self.source = source
        self.where = where
        self._compiled = compiled

    def render(self, variables: Mapping[str, Any]) -> str:
        """The text; TemplateError (naming the place) on any failure or bound."""
        parts: list[str] = []
        size = 0
        _ENV.budget.deadline = time.monotonic() + RENDER_SECONDS
        try:
            for part in self._compiled.generate(variables):
                size += len(part)
                if size > MAX_OUTPUT_CHARS:
                    raise TemplateError(f"output longer than {MAX_OUTPUT_CHARS} characters")
                parts.append(part)
        except TemplateError as err:
            raise TemplateError(f"{self.where}: {err}") from None
        except jinja2.exceptions.SecurityError as err:
            raise TemplateError(f"{self.where}: not allowed: {err}") from None
        except jinja2.UndefinedError as err:
            raise TemplateError(f"{self.where}: {err}") from None
        except Exception as err:  # a template's own errors: type, zero division, overflow ...
            raise TemplateError(f"{self.where}: {type(err).__name__}: {err}") from None
        finally:
            _ENV.budget.deadline = math.inf
        return "".join(parts)

    def render_value(self, variables: Mapping[str, Any]) -> Any:
        """The output as a JSON-like value (number, bool, null, list, object), else the text."""
        text = self.render(variables)
        stripped = text.strip()
        try:
            return json.loads(stripped)
        except ValueError:
            pass
        try:
            value = ast.literal_eval(stripped)  # Python spellings: True, None, ['a'], {'k': 1}
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            return text
        return value if _json_like(value) else text


def _json_like(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_json_like(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_like(v) for k, v in value.items())
    return False


def compile_template(source: str, where: str) -> Template:
    """Compile `source`; DefinitionError naming `where` (and the line) when it is invalid."""
    if not isinstance(source, str):
        raise DefinitionError(f"{where}: a template must be a string")
    if len(source.encode()) > MAX_SOURCE_BYTES:
        raise DefinitionError(f"{where}: template longer than {MAX_SOURCE_BYTES} bytes")
    try:
        compiled = _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as err:
        raise DefinitionError(f"{where}: line {err.lineno}: {err.message}") from None
    return Template(source, where, compiled)
