"""Numbers: writable int and float fields with their range and step."""

from __future__ import annotations

from homeassistant.components.number import NumberDeviceClass, NumberEntity, NumberMode
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
    """Set up EdgeIoT numbers."""
    async_setup_platform(hass, entry, async_add_entities, Platform.NUMBER, FieldNumber)


class FieldNumber(EdgeIoTFieldEntity, NumberEntity):
    """A writable numeric field."""

    def __init__(self, hub: EdgeIoTHub, info: EntityInfo) -> None:
        super().__init__(hub, info)
        field = self.field
        self._integer = field["type"] == "int"
        self._attr_native_unit_of_measurement = field.get("unit")
        if field.get("min") is not None:
            self._attr_native_min_value = field["min"]
        if field.get("max") is not None:
            self._attr_native_max_value = field["max"]
        self._attr_native_step = field.get("step") or (1 if self._integer else None)
        self._attr_mode = NumberMode.AUTO if field.get("min") is not None else NumberMode.BOX
        if field.get("device_class") in set(NumberDeviceClass):
            self._attr_device_class = NumberDeviceClass(field["device_class"])

    @property
    def native_value(self) -> float | None:
        return self.value

    async def async_set_native_value(self, value: float) -> None:
        await self.set_value(round(value) if self._integer else value)
