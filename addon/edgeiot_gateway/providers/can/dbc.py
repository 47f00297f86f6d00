"""DBC signals as EdgeIoT fields: which field type a signal becomes, and its values.

The reference is cantools' own decode (`decode_choices=True, scaling=True`); a field holds what
cantools returns for the signal, value for value:

- a 1-bit unsigned signal without a value table is a `bool`;
- a signal with a value table that labels every raw value its bits can hold (and at most
  MAX_OPTIONS distinct labels) is an `enum` of the labels, as cantools names them (duplicates
  kept); a 1-bit table whose labels are a boolean pair (BOOL_PAIRS: Off/On, No/Yes ...) is a
  `bool` (raw 1 = true);
- any other signal is a number: `int` when cantools decodes it to integers (integral scale and
  offset) that fit signed 64 bits, `string` (decimal digits) for wider integers, else `float`.
  Its min/max is what the bits can hold, never the DBC's `[min|max]` (often rounded or wrong):
  values outside the DBC range are published and counted as `out_of_range`;
- a number whose signal has a (partial) value table gets a companion `string` field
  `<field>_label`: the label cantools gives the value, or "" for a value without one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

from cantools.database.can import Database
from cantools.database.can import Message as DbcMessage
from cantools.database.can import Signal as DbcSignal
from cantools.database.namedsignalvalue import NamedSignalValue

from ...config import ConfigError
from ...models import INT_MAX, INT_MIN, FieldType, Value

# Schema limits (schemas.py) a generated node must respect.
MAX_SOURCES = 64
MAX_FIELDS = 256  # per source
MAX_OPTIONS = 64
NAME_MAX = 128
UNIT_MAX = 16
# Largest value table checked for completeness (raw values of a 12-bit signal).
COMPLETE_MAX = 4096
LABEL_SUFFIX = "_label"

# 1-bit value tables shown as a bool: (label of 0, label of 1), compared case-insensitively.
BOOL_PAIRS: Final = frozenset(
    {
        ("off", "on"),
        ("false", "true"),
        ("no", "yes"),
        ("inactive", "active"),
        ("not active", "active"),
        ("disabled", "enabled"),
        ("0", "1"),
    }
)

# Keys of extended (29-bit) ids carry this bit, so 0x100 and extended 0x100 differ.
EXTENDED_KEY: Final = 1 << 31

_INVALID_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]")


def sanitize_id(name: str, taken: Iterable[str] = ()) -> str:
    """An EdgeIoT id ([A-Za-z0-9_-]{1,64}) for a DBC name, unique among `taken`."""
    base = _INVALID_ID_CHARS.sub("_", name)[:64] or "x"
    used = set(taken)
    candidate, number = base, 1
    while candidate in used:
        number += 1
        suffix = f"_{number}"
        candidate = base[: 64 - len(suffix)] + suffix
    return candidate


def frame_key(arbitration_id: int, extended: bool) -> int:
    """The lookup key of a frame id: extended ids are kept apart from standard ones."""
    return arbitration_id | EXTENDED_KEY if extended else arbitration_id


def raw_source_id(arbitration_id: int, extended: bool) -> str:
    """`id_1a0` for a standard id, `id_18daf110` (8 digits) for an extended one."""
    return f"id_{arbitration_id:08x}" if extended else f"id_{arbitration_id:03x}"


def load_dbc(paths: list[str], base: Path) -> Database:
    """Load DBC files; relative paths are relative to `base` (the gateway's data directory).

    Not strict: real DBCs have overlapping signals (vw_mqb.dbc), which cantools decodes anyway.
    """
    database = Database(strict=False)
    for path in paths:
        try:
            database.add_dbc_file(base / Path(path).expanduser())
        except OSError as err:
            raise ConfigError(f"cannot read DBC {path}: {err}") from None
        except Exception as err:  # the DBC parser raises its own types for syntax errors
            raise ConfigError(f"cannot parse DBC {path}: {err!r}") from None
    return database


def raw_range(signal: DbcSignal) -> tuple[int, int]:
    """The raw integers the signal's bits can hold."""
    if signal.is_signed:
        return -(1 << (signal.length - 1)), (1 << (signal.length - 1)) - 1
    return 0, (1 << signal.length) - 1


def representable(signal: DbcSignal) -> tuple[float | None, float | None]:
    """The physical range the signal's bits can hold, computed as cantools scales (None for
    IEEE floats)."""
    if signal.is_float:
        return None, None
    raw_low, raw_high = raw_range(signal)
    low = raw_low * signal.scale + signal.offset
    high = raw_high * signal.scale + signal.offset
    return (low, high) if low <= high else (high, low)


def scaled(signal: DbcSignal, raw: float) -> float | int:
    """A raw value scaled as cantools scales it."""
    return cast("float | int", signal.conversion.raw_to_scaled(raw, False))


def _labels(signal: DbcSignal) -> dict[int, str]:
    return {int(raw): str(label) for raw, label in (signal.choices or {}).items()}


def _is_complete(signal: DbcSignal, labels: dict[int, str]) -> bool:
    """Whether every raw value of the signal's bits has a label."""
    low, high = raw_range(signal)
    size = high - low + 1
    return (
        not signal.is_float
        and size <= COMPLETE_MAX
        and len(labels.keys() & range(low, high + 1)) == size
    )


@dataclass(slots=True, eq=False)
class SignalField:
    """One signal as a field (and its optional label field): type, definition, conversions."""

    signal: DbcSignal
    field_id: str
    kind: FieldType
    label_id: str | None = None  # the companion label field of a number with a value table
    labels: dict[int, str] = field(default_factory=dict)  # raw → label
    raws: dict[str, int] = field(default_factory=dict)  # label → (first) raw
    pair: bool = False  # a 1-bit table with a boolean pair of labels
    wide: bool = False  # an integer beyond signed 64 bits, published as decimal text
    low: float | None = None  # DBC range, for the out-of-range figure (None: none given)
    high: float | None = None

    def number(self, value: Any) -> Any:
        """The scaled number of a decoded value (a label becomes its raw value, scaled)."""
        if isinstance(value, NamedSignalValue):
            return scaled(self.signal, value.value)
        return value

    def values(self, value: Any, out: dict[str, object]) -> bool:
        """Put the field value(s) for cantools' `value` into `out`; False: the value cannot be
        held (a NaN or infinite IEEE float)."""
        named = isinstance(value, NamedSignalValue)
        kind = self.kind
        if kind is FieldType.ENUM:
            out[self.field_id] = value.name if named else str(value)
            return named
        if kind is FieldType.BOOL:
            out[self.field_id] = (value.value if named else value) == 1
            return True
        number = scaled(self.signal, value.value) if named else value
        if kind is FieldType.FLOAT and not math.isfinite(number):
            return False
        out[self.field_id] = str(number) if self.wide else number
        if self.label_id is not None:
            out[self.label_id] = value.name if named else ""
        return True

    def out_of_range(self, number: Any) -> bool:
        """Whether a scaled value lies outside the DBC's `[min|max]`."""
        return (self.low is not None and number < self.low) or (
            self.high is not None and number > self.high
        )

    def physical(self, value: Value) -> float | int | None:
        """The scaled signal value to encode for a (validated) field value; None: not a value
        of the signal."""
        signal = self.signal
        if self.kind is FieldType.BOOL:
            return scaled(signal, int(bool(value))) if self.pair else int(bool(value))
        if self.kind is FieldType.ENUM:
            raw = self.raws.get(str(value))
            return None if raw is None else scaled(signal, raw)
        if self.wide:
            try:
                number: float | int = int(str(value))
            except ValueError:
                return None
        elif isinstance(value, bool) or not isinstance(value, int | float):
            return None
        else:
            number = value
        low, high = representable(signal)
        if (low is not None and number < low) or (high is not None and number > high):
            return None
        return number

    def definitions(self, writable: bool) -> list[dict[str, Any]]:
        """The field definition(s) of the signal, as announced."""
        signal = self.signal
        data: dict[str, Any] = {
            "id": self.field_id,
            "name": signal.name[:NAME_MAX],
            "type": self.kind.value,
            "writable": writable,
        }
        if signal.unit and self.kind not in (FieldType.BOOL, FieldType.ENUM):
            data["unit"] = signal.unit[:UNIT_MAX]
        if self.kind is FieldType.ENUM:
            data["options"] = list(dict.fromkeys(self.labels.values()))
        elif self.kind in (FieldType.INT, FieldType.FLOAT):
            low, high = representable(signal)
            if low is not None and high is not None:
                data["min"], data["max"] = low, high
            if self.kind is FieldType.FLOAT and not signal.is_float and signal.scale:
                data["step"] = abs(float(signal.scale))
        result = [data]
        if self.label_id is not None:
            result.append(
                {
                    "id": self.label_id,
                    "name": f"{signal.name} label"[:NAME_MAX],
                    "type": FieldType.STRING.value,
                    "writable": False,
                }
            )
        return result


def signal_field(signal: DbcSignal, field_id: str, taken: set[str]) -> SignalField:
    """How `signal` is shown (field ids it takes are added to `taken`)."""
    labels = _labels(signal)
    taken.add(field_id)
    plain = signal.scale == 1 and signal.offset == 0
    unique = list(dict.fromkeys(labels.values()))
    usable = len(unique) <= MAX_OPTIONS and all(0 < len(label) <= NAME_MAX for label in unique)
    if labels and usable and _is_complete(signal, labels):
        raws: dict[str, int] = {}
        for raw, label in labels.items():
            raws.setdefault(label, raw)
        if signal.length == 1 and not signal.is_signed:
            pair = (labels[0].strip().lower(), labels[1].strip().lower())
            if pair in BOOL_PAIRS:
                return SignalField(signal, field_id, FieldType.BOOL, labels=labels, pair=True)
        return SignalField(signal, field_id, FieldType.ENUM, labels=labels, raws=raws)
    if not labels and signal.length == 1 and not signal.is_signed and plain and not signal.is_float:
        return SignalField(signal, field_id, FieldType.BOOL)
    integral = float(signal.scale).is_integer() and float(signal.offset).is_integer()
    kind = FieldType.INT if integral and not signal.is_float else FieldType.FLOAT
    wide = False
    if kind is FieldType.INT:
        low, high = representable(signal)
        wide = low is not None and high is not None and (low < INT_MIN or high > INT_MAX)
    spec = SignalField(
        signal, field_id, FieldType.STRING if wide else kind, labels=labels, wide=wide
    )
    if (
        signal.minimum is not None
        and signal.maximum is not None
        and (
            signal.minimum != 0 or signal.maximum != 0  # [0|0]: no range given
        )
    ):
        spec.low, spec.high = signal.minimum, signal.maximum
    if labels:
        spec.label_id = sanitize_id(field_id[: 64 - len(LABEL_SUFFIX)] + LABEL_SUFFIX, taken)
        taken.add(spec.label_id)
    return spec


def default(signal: DbcSignal) -> float | int:
    """A signal's value before any frame was seen: its initial value, else 0 (kept in range)."""
    if signal.raw_initial is not None:
        return scaled(signal, signal.raw_initial)
    value: float | int = 0
    low, high = representable(signal)
    if signal.minimum is not None:
        low = signal.minimum
    if signal.maximum is not None:
        high = signal.maximum
    if low is not None and value < low:
        value = low
    if high is not None and value > high:
        value = high
    return value


def multiplexer_defaults(message: DbcMessage, defaults: dict[str, Any]) -> None:
    """A multiplexer's default must be one of its ids, or nothing can be encoded."""
    for signal in message.signals:
        if not signal.is_multiplexer:
            continue
        ids = sorted(
            {
                number
                for child in message.signals
                if child.multiplexer_signal == signal.name
                for number in child.multiplexer_ids or ()
            }
        )
        if ids and defaults.get(signal.name) not in ids:
            defaults[signal.name] = ids[0] * signal.scale + signal.offset


def select_multiplexers(message: DbcMessage, signal: DbcSignal, data: dict[str, Any]) -> None:
    """Set the multiplexer signals so that `signal` is part of the encoded frame."""
    while signal.multiplexer_signal is not None and signal.multiplexer_ids:
        multiplexer = message.get_signal_by_name(signal.multiplexer_signal)
        if data.get(multiplexer.name) not in signal.multiplexer_ids:
            data[multiplexer.name] = signal.multiplexer_ids[0]
        signal = multiplexer
