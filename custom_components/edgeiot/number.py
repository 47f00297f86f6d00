"""Numbers: writable int and float fields with their range and step."""

from __future__ import annotations

from homeassistant.components.number import NumberDeviceClass, NumberEntity, NumberMode
from homeassistant.const import Platform

from .discovery import EntityInfo
from .entity import EdgeIoTFieldEntity, platform_setup_entry
from .hub import EdgeIoTHub

PARALLEL_UPDATES = 0


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


async_setup_entry = platform_setup_entry(Platform.NUMBER, FieldNumber)
