"""Switches: writable boolean fields."""

from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import EdgeIoTFieldEntity, async_setup_platform
from .models import EdgeIoTConfigEntry

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EdgeIoTConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up EdgeIoT switches."""
    async_setup_platform(hass, entry, async_add_entities, Platform.SWITCH, FieldSwitch)


class FieldSwitch(EdgeIoTFieldEntity, SwitchEntity):
    """A writable boolean field; its state follows what the node reports back."""

    @property
    def is_on(self) -> bool | None:
        return self.value

    async def async_turn_on(self, **kwargs: Any) -> None:
        await self.set_value(True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        await self.set_value(False)
