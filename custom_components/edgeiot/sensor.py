"""Sensors: read-only numeric, enum and text fields, node telemetry, the gateway's figures
and its automations' runs (automation_entities)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import (
    MAX_LENGTH_STATE_STATE,
    PERCENTAGE,
    SIGNAL_STRENGTH_DECIBELS_MILLIWATT,
    EntityCategory,
    Platform,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .discovery import EntityInfo, Kind
from .entity import EdgeIoTEntity, EdgeIoTFieldEntity, async_add_platform_entities
from .helpers import gateway_identifier
from .hints import sensor_classes
from .hub import EdgeIoTHub
from .models import EdgeIoTConfigEntry

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EdgeIoTConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up EdgeIoT sensors: node fields and telemetry, and the gateway's own figures."""
    hub = entry.runtime_data
    if entry is hub.entry:  # not in partition entries (partitions.py)
        async_add_entities(
            GatewayStatusSensor(hub, description)
            for description in GATEWAY_SENSORS
            if description.key == "dropped_messages" or hub.status.get("recorder") is not None
        )
        entry.async_on_unload(
            hub.automations.async_add_platform(Platform.SENSOR, async_add_entities)
        )
    async_add_platform_entities(hass, entry, async_add_entities, Platform.SENSOR, _make)


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
        device_class: SensorDeviceClass | None = None
        match field["type"]:
            case "int" | "float":
                device_class, self._attr_state_class = sensor_classes(field)
                kind = "number"
            case "enum":
                device_class = SensorDeviceClass.ENUM
                self._attr_options = list(field["options"])
                kind = "enum"
            case _:
                kind = "text"
        self._attr_device_class = device_class
        if device_class in (None, SensorDeviceClass.ENUM):
            self._attr_translation_key = f"field_{kind}"  # icons.json; the name stays the node's

    @property
    def native_value(self) -> Any:
        value = self.field_value
        if isinstance(value, str):
            return value[:MAX_LENGTH_STATE_STATE]  # HA refuses longer states
        return value


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


@dataclass(frozen=True, kw_only=True)
class GatewaySensorDescription(SensorEntityDescription):
    """A figure from the gateway's status: `path` into the status dict."""

    path: tuple[str, ...]


POINTS = "points"
GATEWAY_SENSORS = (
    GatewaySensorDescription(
        key="dropped_messages", translation_key="dropped_messages", path=("dropped",),
        state_class=SensorStateClass.TOTAL_INCREASING, native_unit_of_measurement="messages",
    ),
    GatewaySensorDescription(
        key="recorder_queued", translation_key="recorder_queued", path=("recorder", "queued"),
        state_class=SensorStateClass.MEASUREMENT, native_unit_of_measurement=POINTS,
    ),
    GatewaySensorDescription(
        key="recorder_written", translation_key="recorder_written", path=("recorder", "written"),
        state_class=SensorStateClass.TOTAL_INCREASING, native_unit_of_measurement=POINTS,
    ),
    GatewaySensorDescription(
        key="recorder_dropped", translation_key="recorder_dropped", path=("recorder", "dropped"),
        state_class=SensorStateClass.TOTAL_INCREASING, native_unit_of_measurement=POINTS,
    ),
    GatewaySensorDescription(
        key="recorder_rejected", translation_key="recorder_rejected",
        path=("recorder", "rejected"),
        state_class=SensorStateClass.TOTAL_INCREASING, native_unit_of_measurement=POINTS,
    ),
    GatewaySensorDescription(
        key="recorder_last_error", translation_key="recorder_last_error",
        path=("recorder", "last_error"),
    ),
)  # fmt: skip


class GatewayStatusSensor(SensorEntity):
    """One of the gateway's health figures (drops, InfluxDB recorder queue)."""

    _attr_has_entity_name = True
    _attr_should_poll = False
    _attr_entity_category = EntityCategory.DIAGNOSTIC
    entity_description: GatewaySensorDescription

    def __init__(self, hub: EdgeIoTHub, description: GatewaySensorDescription) -> None:
        self.hub = hub
        self.entity_description = description
        self._attr_unique_id = f"{hub.gateway_id}.gateway.{description.key}"
        self._attr_device_info = DeviceInfo(identifiers={gateway_identifier(hub.gateway_id)})

    @property
    def available(self) -> bool:
        return self.hub.connected

    @property
    def native_value(self) -> Any:
        value: Any = self.hub.status
        for key in self.entity_description.path:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    async def async_added_to_hass(self) -> None:
        self.async_on_remove(self.hub.subscribe_gateway(self.async_write_ha_state))
