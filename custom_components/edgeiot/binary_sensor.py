"""Binary sensors: read-only boolean fields."""

from __future__ import annotations

from homeassistant.components.binary_sensor import BinarySensorDeviceClass, BinarySensorEntity
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .discovery import EntityInfo
from .entity import EdgeIoTFieldEntity, async_setup_platform
from .hub import EdgeIoTHub
from .models import EdgeIoTConfigEntry

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EdgeIoTConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up EdgeIoT binary sensors."""
    async_setup_platform(hass, entry, async_add_entities, Platform.BINARY_SENSOR, FieldBinarySensor)


class FieldBinarySensor(EdgeIoTFieldEntity, BinarySensorEntity):
    """A read-only boolean field."""

    def __init__(self, hub: EdgeIoTHub, info: EntityInfo) -> None:
        super().__init__(hub, info)
        device_class = self.field.get("device_class")
        if device_class in set(BinarySensorDeviceClass):
            self._attr_device_class = BinarySensorDeviceClass(device_class)

    @property
    def is_on(self) -> bool | None:
        return self.value
