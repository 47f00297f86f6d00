"""Selects: writable enum fields."""

from __future__ import annotations

from homeassistant.components.select import SelectEntity
from homeassistant.const import Platform

from .discovery import EntityInfo
from .entity import EdgeIoTFieldEntity, platform_setup_entry
from .hub import EdgeIoTHub

PARALLEL_UPDATES = 0


class FieldSelect(EdgeIoTFieldEntity, SelectEntity):
    """A writable enum field."""

    _attr_translation_key = "field"  # icons.json; the name stays the node's

    def __init__(self, hub: EdgeIoTHub, info: EntityInfo) -> None:
        super().__init__(hub, info)
        self._attr_options = list(self.field["options"])

    @property
    def current_option(self) -> str | None:
        value = self.field_value
        return value if isinstance(value, str) else None

    async def async_select_option(self, option: str) -> None:
        await self.async_send_value(option)


async_setup_entry = platform_setup_entry(Platform.SELECT, FieldSelect)
