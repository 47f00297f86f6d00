"""Binary sensors: read-only boolean fields, node online, gateway and provider connectivity,
and the gateway's alarms."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from homeassistant.components.binary_sensor import BinarySensorEntity
from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.const import EntityCategory, Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .discovery import EntityInfo, Kind
from .entity import EdgeIoTEntity, EdgeIoTFieldEntity, async_add_platform_entities
from .helpers import gateway_identifier
from .hints import binary_device_class
from .hub import EdgeIoTHub
from .models import EdgeIoTConfigEntry

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EdgeIoTConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Node fields and online sensors; the gateway's and each provider's connectivity."""
    hub = entry.runtime_data
    if entry is hub.entry:  # not in partition entries (partitions.py)
        _add_gateway_sensors(entry, hub, async_add_entities)
    async_add_platform_entities(hass, entry, async_add_entities, Platform.BINARY_SENSOR, _make)


def _add_gateway_sensors(
    entry: EdgeIoTConfigEntry, hub: EdgeIoTHub, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    async_add_entities([GatewayConnectedSensor(hub)])
    for keys, make in (
        (lambda: hub.providers, lambda name: ProviderConnectedSensor(hub, name)),
        (lambda: hub.alarms, lambda alarm_id: AlarmSensor(hub, alarm_id)),
    ):
        add = _adder(keys, make, async_add_entities)
        add()
        entry.async_on_unload(hub.subscribe_gateway(add))


def _adder(
    keys: Callable[[], Iterable[str]],
    make: Callable[[str], Entity],
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> Callable[[], None]:
    """A callback that adds an entity for each key (provider, alarm) that has none yet."""
    added: set[str] = set()

    @callback
    def add() -> None:
        new = set(keys()) - added
        added.update(new)
        async_add_entities(make(key) for key in sorted(new))

    return add


def _make(hub: EdgeIoTHub, info: EntityInfo) -> Entity:
    if info.kind is Kind.ONLINE:
        return NodeOnlineSensor(hub, info)
    return FieldBinarySensor(hub, info)


class FieldBinarySensor(EdgeIoTFieldEntity, BinarySensorEntity):
    """A read-only boolean field."""

    def __init__(self, hub: EdgeIoTHub, info: EntityInfo) -> None:
        super().__init__(hub, info)
        self._attr_device_class = binary_device_class(self.field)
        if self._attr_device_class is None:
            self._attr_translation_key = "field"  # icons.json; the name stays the node's

    @property
    def is_on(self) -> bool | None:
        value = self.field_value
        return value if isinstance(value, bool) else None


class NodeOnlineSensor(EdgeIoTEntity, BinarySensorEntity):
    """Whether the gateway hears from the node (available while the gateway is connected)."""

    _attr_device_class = BinarySensorDeviceClass.CONNECTIVITY
    _attr_entity_category: EntityCategory | None = EntityCategory.DIAGNOSTIC

    @property
    def available(self) -> bool:
        return self.hub.connected and self.info.node_id in self.hub.nodes

    @property
    def is_on(self) -> bool:
        return bool(self.node.get("online"))


class GatewayEntity(BinarySensorEntity):
    """A connectivity sensor of the gateway device."""

    _attr_has_entity_name = True
    _attr_should_poll = False
    _attr_device_class = BinarySensorDeviceClass.CONNECTIVITY
    _attr_entity_category: EntityCategory | None = EntityCategory.DIAGNOSTIC

    def __init__(self, hub: EdgeIoTHub, key: str) -> None:
        self.hub = hub
        self._attr_unique_id = f"{hub.gateway_id}.gateway.{key}"
        self._attr_device_info = DeviceInfo(identifiers={gateway_identifier(hub.gateway_id)})

    async def async_added_to_hass(self) -> None:
        self.async_on_remove(self.hub.subscribe_gateway(self.async_write_ha_state))


class GatewayConnectedSensor(GatewayEntity):
    """Whether HA is connected to the gateway (always available: that is what it shows)."""

    _attr_translation_key = "gateway_connected"

    def __init__(self, hub: EdgeIoTHub) -> None:
        super().__init__(hub, "connected")

    @property
    def is_on(self) -> bool:
        return self.hub.connected


class ProviderConnectedSensor(GatewayEntity):
    """Whether a provider of the gateway (MQTT broker, serial gateway, CAN bus) is connected."""

    _attr_translation_key = "provider_connected"

    def __init__(self, hub: EdgeIoTHub, name: str) -> None:
        super().__init__(hub, f"provider:{name}")
        self.provider = name
        self._attr_translation_placeholders = {"provider": name}

    @property
    def available(self) -> bool:
        return self.hub.connected and self.provider in self.hub.providers

    @property
    def is_on(self) -> bool:
        return self.hub.providers.get(self.provider, False)


class AlarmSensor(GatewayEntity):
    """An alarm task of the gateway: on while raised (acknowledged or not)."""

    _attr_device_class = BinarySensorDeviceClass.PROBLEM
    _attr_entity_category = None
    _attr_translation_key = "alarm"

    def __init__(self, hub: EdgeIoTHub, alarm_id: str) -> None:
        super().__init__(hub, f"alarm:{alarm_id}")
        self.alarm_id = alarm_id
        self._attr_translation_placeholders = {"name": hub.alarms[alarm_id]["name"]}

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(self.hub.subscribe_gateway(self._removed_on_gateway))

    @callback
    def _removed_on_gateway(self) -> None:
        if self.hub.connected and self.alarm_id not in self.hub.alarms and self.registry_entry:
            er.async_get(self.hass).async_remove(self.entity_id)

    @property
    def available(self) -> bool:
        return self.hub.connected and self.alarm_id in self.hub.alarms

    @property
    def is_on(self) -> bool:
        return bool(self.hub.alarms.get(self.alarm_id, {}).get("active"))

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        alarm = self.hub.alarms.get(self.alarm_id, {})
        return {
            "automation_id": self.alarm_id,
            "severity": alarm.get("severity"),
            "since": alarm.get("since"),
            "acknowledged": alarm.get("acknowledged"),
        }
