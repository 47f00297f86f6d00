"""Texts: writable string fields."""

from __future__ import annotations

from homeassistant.components.text import TextEntity
from homeassistant.const import MAX_LENGTH_STATE_STATE, Platform

from .entity import EdgeIoTFieldEntity, platform_setup_entry

PARALLEL_UPDATES = 0


class FieldText(EdgeIoTFieldEntity, TextEntity):
    """A writable string field (HA states hold at most 255 characters)."""

    _attr_native_max = MAX_LENGTH_STATE_STATE
    _attr_translation_key = "field"  # icons.json; the name stays the node's

    @property
    def native_value(self) -> str | None:
        value = self.field_value
        return value if isinstance(value, str) else None

    async def async_set_value(self, value: str) -> None:
        await self.async_send_value(value)


async_setup_entry = platform_setup_entry(Platform.TEXT, FieldText)
