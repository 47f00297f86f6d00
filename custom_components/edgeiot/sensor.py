"""Sensors: read-only numeric, enum and text fields, and node telemetry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorStateClass,
)
from homeassistant.const import (
    PERCENTAGE,
    SIGNAL_STRENGTH_DECIBELS_MILLIWATT,
    EntityCategory,
    Platform,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .discovery import EntityInfo, Kind
from .entity import EdgeIoTEntity, EdgeIoTFieldEntity, async_setup_platform
from .hub import EdgeIoTHub
from .models import EdgeIoTConfigEntry

PARALLEL_UPDATES = 0


def _enum_or_none[E](enum: type[E], value: Any) -> E | None:
    try:
        return enum(value)  # type: ignore[call-arg]
    except ValueError:
        return None


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EdgeIoTConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up EdgeIoT sensors."""
    async_setup_platform(hass, entry, async_add_entities, Platform.SENSOR, _make)


def _make(hub: EdgeIoTHub, info: EntityInfo) -> Entity:
    match info.kind:
        case Kind.BATTERY:
            return BatterySensor(hub, info)
        case Kind.RSSI:
            return RssiSensor(hub, info)
        case Kind.LAST_SEEN:
            return LastSeenSensor(hub, info)
    return FieldSensor(hub, info)


class FieldSensor(EdgeIoTFieldEntity, SensorEntity):
    """A read-only field."""

    def __init__(self, hub: EdgeIoTHub, info: EntityInfo) -> None:
        super().__init__(hub, info)
        field = self.field
        self._attr_native_unit_of_measurement = field.get("unit")
        self._attr_device_class = _enum_or_none(SensorDeviceClass, field.get("device_class"))
        match field["type"]:
            case "int" | "float":
                self._attr_state_class = _enum_or_none(
                    SensorStateClass, field.get("state_class") or "measurement"
                )
            case "enum":
                self._attr_device_class = SensorDeviceClass.ENUM
                self._attr_options = list(field["options"])

    @property
    def native_value(self) -> Any:
        return self.value


class BatterySensor(EdgeIoTEntity, SensorEntity):
    """The node's battery level."""

    _attr_device_class = SensorDeviceClass.BATTERY
    _attr_native_unit_of_measurement = PERCENTAGE
    _attr_state_class = SensorStateClass.MEASUREMENT
    _attr_entity_category = EntityCategory.DIAGNOSTIC

    @property
    def native_value(self) -> int | None:
        return self.node.get("battery")


class RssiSensor(EdgeIoTEntity, SensorEntity):
    """The node's radio signal strength."""

    _attr_device_class = SensorDeviceClass.SIGNAL_STRENGTH
    _attr_native_unit_of_measurement = SIGNAL_STRENGTH_DECIBELS_MILLIWATT
    _attr_state_class = SensorStateClass.MEASUREMENT
    _attr_entity_category = EntityCategory.DIAGNOSTIC
    _attr_entity_registry_enabled_default = False

    @property
    def native_value(self) -> int | None:
        return self.node.get("rssi")


class LastSeenSensor(EdgeIoTEntity, SensorEntity):
    """When the gateway last heard from the node (kept available while the node is offline)."""

    _attr_device_class = SensorDeviceClass.TIMESTAMP
    _attr_entity_category = EntityCategory.DIAGNOSTIC
    _attr_entity_registry_enabled_default = False
    _attr_translation_key = "last_seen"

    @property
    def available(self) -> bool:
        return self.hub.connected and self.info.node_id in self.hub.nodes

    @property
    def native_value(self) -> datetime | None:
        seen = self.node.get("last_seen")
        return None if seen is None else dt_util.utc_from_timestamp(seen)
