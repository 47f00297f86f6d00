"""InfluxDB line protocol: escaping and one point per field value."""

from __future__ import annotations

import math

from ..models import INT_MAX, INT_MIN, Value, is_valid_text

PRECISION_FACTORS = {"ns": 1_000_000_000, "us": 1_000_000, "ms": 1_000, "s": 1}
# InfluxDB's time range: signed 64-bit nanoseconds (its minimum and maximum are reserved).
TIME_MIN_S, TIME_MAX_S = -9_223_372_036.854775806, 9_223_372_036.854775806

_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\\": "\\\\"})
_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\\": "\\\\"})
_STRING = str.maketrans({'"': r"\"", "\\": "\\\\", "\n": r"\n"})


def escape_measurement(name: str) -> str:
    """Escape a measurement name."""
    return name.translate(_MEASUREMENT)


def escape_key(name: str) -> str:
    """Escape a tag key, tag value or field key."""
    return name.translate(_KEY)


def field_pair(value: Value) -> str | None:
    """`key=value` typed by the value (None for values InfluxDB cannot store: integers beyond
    64 bits, non-finite floats, text that is not valid Unicode).

    Each type has its own field key, so a measurement never mixes types in one field
    (InfluxDB refuses such writes): float → value, int → value_int, bool → state, str → text.
    """
    if isinstance(value, bool):
        return f"state={'true' if value else 'false'}"
    if isinstance(value, int):
        return f"value_int={value}i" if INT_MIN <= value <= INT_MAX else None
    if isinstance(value, float):
        return f"value={value!r}" if math.isfinite(value) else None
    return f'text="{value.translate(_STRING)}"' if is_valid_text(value) else None


def encode_point(
    measurement: str, tags: str, value: Value, timestamp: float, precision: str
) -> str | None:
    """One line: `measurement,tags field timestamp` (tags already escaped and joined), or None
    when InfluxDB cannot store the value or the time."""
    return encode_line(f"{measurement},{tags} ", value, timestamp, PRECISION_FACTORS[precision])


def encode_line(prefix: str, value: Value, timestamp: float, factor: int) -> str | None:
    """encode_point with the series' `measurement,tags ` prefix and the precision's factor
    given (the recorder keeps them per field)."""
    if not TIME_MIN_S < timestamp < TIME_MAX_S:
        return None
    if type(value) is float:  # the common case, without field_pair's checks
        return (
            f"{prefix}value={value!r} {round(timestamp * factor)}" if math.isfinite(value) else None
        )
    pair = field_pair(value)
    return None if pair is None else f"{prefix}{pair} {round(timestamp * factor)}"


def tag_set(gateway: str, node: str, source: str, field: str) -> str:
    """The point's tags, sorted by key as InfluxDB prefers."""
    return (
        f"field={escape_key(field)},gateway={escape_key(gateway)},"
        f"node={escape_key(node)},source={escape_key(source)}"
    )
