"""Binary sensors: read-only boolean fields."""

from __future__ import annotations

from homeassistant.components.binary_sensor import BinarySensorEntity
from homeassistant.const import Platform

from .discovery import EntityInfo
from .entity import EdgeIoTFieldEntity, platform_setup_entry
from .hints import binary_device_class
from .hub import EdgeIoTHub

PARALLEL_UPDATES = 0


class FieldBinarySensor(EdgeIoTFieldEntity, BinarySensorEntity):
    """A read-only boolean field."""

    def __init__(self, hub: EdgeIoTHub, info: EntityInfo) -> None:
        super().__init__(hub, info)
        self._attr_device_class = binary_device_class(self.field)

    @property
    def is_on(self) -> bool | None:
        value = self.field_value
        return value if isinstance(value, bool) else None


async_setup_entry = platform_setup_entry(Platform.BINARY_SENSOR, FieldBinarySensor)
