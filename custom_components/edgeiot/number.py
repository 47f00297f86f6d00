"""Numbers: writable int and float fields with their range and step."""

from __future__ import annotations

from homeassistant.components.number import NumberEntity, NumberMode
from homeassistant.const import Platform

from .discovery import EntityInfo
from .entity import EdgeIoTFieldEntity, platform_setup_entry
from .hints import number_device_class, number_range
from .hub import EdgeIoTHub

PARALLEL_UPDATES = 0


class FieldNumber(EdgeIoTFieldEntity, NumberEntity):
    """A writable numeric field."""

    def __init__(self, hub: EdgeIoTHub, info: EntityInfo) -> None:
        super().__init__(hub, info)
        field = self.field
        self._integer = field["type"] == "int"
        self._attr_native_unit_of_measurement = field.get("unit")
        self._attr_native_min_value, self._attr_native_max_value = number_range(field)
        if step := field.get("step"):
            self._attr_native_step = float(step)
        elif self._integer:
            self._attr_native_step = 1.0
        bounded = field.get("min") is not None and field.get("max") is not None
        self._attr_mode = NumberMode.AUTO if bounded else NumberMode.BOX
        self._attr_device_class = number_device_class(field)
        if self._attr_device_class is None:
            self._attr_translation_key = "field"  # icons.json; the name stays the node's

    @property
    def native_value(self) -> float | None:
        value = self.field_value
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    async def async_set_native_value(self, value: float) -> None:
        await self.async_send_value(round(value) if self._integer else value)


async_setup_entry = platform_setup_entry(Platform.NUMBER, FieldNumber)
