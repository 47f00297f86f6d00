"""A node's HA hints (device class, state class, unit, range) checked against HA's own tables.

A hint HA would reject, or that contradicts another, is dropped with a debug log: the entity is
still created, only without that class.
"""

from __future__ import annotations

from typing import Any

from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.components.number.const import DEVICE_CLASS_UNITS as NUMBER_DEVICE_CLASS_UNITS
from homeassistant.components.number.const import NumberDeviceClass
from homeassistant.components.sensor.const import (
    DEVICE_CLASS_STATE_CLASSES,
    DEVICE_CLASS_UNITS,
    NON_NUMERIC_DEVICE_CLASSES,
    SensorDeviceClass,
    SensorStateClass,
)

from .const import LOGGER

# Numbers without min/max get the range of their type (JSON numbers), not HA's 0-100.
INT_RANGE = (-(2**53) + 1, 2**53 - 1)  # integers a JSON client represents exactly
FLOAT_RANGE = (-1.7976931348623157e308, 1.7976931348623157e308)


def _drop(field: dict[str, Any], hint: str, why: str) -> None:
    LOGGER.debug("Field %s: ignoring %s %r (%s)", field["id"], hint, field.get(hint), why)


def _unit_fits(units: set[Any] | None, unit: str | None) -> bool:
    return units is None or unit in units


def sensor_classes(
    field: dict[str, Any],
) -> tuple[SensorDeviceClass | None, SensorStateClass | None]:
    """Device and state class of a read-only numeric field."""
    device_class: SensorDeviceClass | None = None
    raw = field.get("device_class")
    if raw is not None:
        if raw not in set(SensorDeviceClass) or raw in NON_NUMERIC_DEVICE_CLASSES:
            _drop(field, "device_class", "not a numeric sensor device class")
        elif not _unit_fits(DEVICE_CLASS_UNITS.get(SensorDeviceClass(raw)), field.get("unit")):
            _drop(field, "device_class", f"unit {field.get('unit')!r} does not fit it")
        else:
            device_class = SensorDeviceClass(raw)
    allowed = (
        set(SensorStateClass)
        if device_class is None
        else DEVICE_CLASS_STATE_CLASSES.get(device_class, set(SensorStateClass))
    )
    state_class: SensorStateClass | None = None
    if (raw := field.get("state_class")) is not None:
        if raw in set(SensorStateClass) and SensorStateClass(raw) in allowed:
            state_class = SensorStateClass(raw)
        else:
            _drop(field, "state_class", f"not valid for device class {device_class}")
    elif allowed == {SensorStateClass.MEASUREMENT}:
        state_class = SensorStateClass.MEASUREMENT  # the device class implies it
    return device_class, state_class


def number_device_class(field: dict[str, Any]) -> NumberDeviceClass | None:
    """Device class of a writable numeric field."""
    raw = field.get("device_class")
    if raw is None:
        return None
    if raw not in set(NumberDeviceClass):
        _drop(field, "device_class", "not a number device class")
        return None
    device_class = NumberDeviceClass(raw)
    if not _unit_fits(NUMBER_DEVICE_CLASS_UNITS.get(device_class), field.get("unit")):
        _drop(field, "device_class", f"unit {field.get('unit')!r} does not fit it")
        return None
    return device_class


def binary_device_class(field: dict[str, Any]) -> BinarySensorDeviceClass | None:
    """Device class of a read-only boolean field."""
    raw = field.get("device_class")
    if raw is None:
        return None
    if raw not in set(BinarySensorDeviceClass):
        _drop(field, "device_class", "not a binary sensor device class")
        return None
    return BinarySensorDeviceClass(raw)


def number_range(field: dict[str, Any]) -> tuple[float, float]:
    """min and max of a numeric field: its own, else its type's."""
    low, high = INT_RANGE if field["type"] == "int" else FLOAT_RANGE
    minimum, maximum = field.get("min"), field.get("max")
    return (low if minimum is None else minimum, high if maximum is None else maximum)
