"""Switches: writable boolean fields."""

from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity
from homeassistant.const import Platform

from .entity import EdgeIoTFieldEntity, platform_setup_entry

PARALLEL_UPDATES = 0


class FieldSwitch(EdgeIoTFieldEntity, SwitchEntity):
    """A writable boolean field; its state follows what the node reports back."""

    _attr_translation_key = "field"  # icons.json; the name stays the node's

    @property
    def is_on(self) -> bool | None:
        value = self.field_value
        return value if isinstance(value, bool) else None

    async def async_turn_on(self, **kwargs: Any) -> None:
        await self.async_send_value(True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        await self.async_send_value(False)


async_setup_entry = platform_setup_entry(Platform.SWITCH, FieldSwitch)
