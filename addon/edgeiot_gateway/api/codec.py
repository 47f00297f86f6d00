"""JSON in and out of the API: strict decoding of hostile input, encoding in slices."""

from __future__ import annotations

import json
import math
from typing import Any

from ..pacing import pause

# Arrays longer than this are encoded item by item (one dumps call per item).
SMALL_ARRAY = 16

_encode = json.JSONEncoder(separators=(",", ":")).encode


class InvalidJsonError(ValueError):
    """Text the API does not accept as JSON."""


def _float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise InvalidJsonError(f"number {text[:40]} is beyond the float range")
    return number


def _constant(name: str) -> None:
    raise InvalidJsonError(f"{name} is not JSON")


def loads(text: str | bytes) -> Any:
    """Parse API input: standard JSON only (no NaN/Infinity), floats must fit a double.

    Raises InvalidJsonError for syntax errors, numbers beyond range (also integers over 4300 digits)
    and nesting too deep to parse.
    """
    try:
        return json.loads(text, parse_float=_float, parse_constant=_constant)
    except InvalidJsonError:
        raise
    except RecursionError:
        raise InvalidJsonError("nested too deeply") from None
    except ValueError as err:  # JSONDecodeError, the integer digit limit, bad UTF-8
        raise InvalidJsonError(str(err)[:200]) from None


async def dumps(value: Any) -> str:
    """Encode like json.dumps (compact), yielding to the loop between pieces of large values.

    Objects are walked key by key, long arrays item by item; each piece is one C-encoder call,
    so the loop waits at most one slice plus the largest single item.
    """
    parts: list[str] = []
    await _dump(value, parts)
    return "".join(parts)


async def _dump(value: Any, parts: list[str]) -> None:
    if isinstance(value, dict):
        parts.append("{")
        for index, (key, item) in enumerate(value.items()):
            parts.append(("," if index else "") + _encode(str(key)) + ":")
            await _dump(item, parts)
        parts.append("}")
    elif isinstance(value, list) and len(value) > SMALL_ARRAY:
        parts.append("[")
        for index, item in enumerate(value):
            parts.append(("," if index else "") + _encode(item))
            await pause()
        parts.append("]")
    else:
        parts.append(_encode(value))
        await pause()
