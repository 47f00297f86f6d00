"""Buttons: node actions such as reboot and identify."""

from __future__ import annotations

from homeassistant.components.button import ButtonEntity
from homeassistant.components.button.const import ButtonDeviceClass
from homeassistant.const import EntityCategory, Platform

from .discovery import EntityInfo
from .entity import EdgeIoTEntity, platform_setup_entry
from .hub import EdgeIoTHub

PARALLEL_UPDATES = 0

DEVICE_CLASSES = {"reboot": ButtonDeviceClass.RESTART, "identify": ButtonDeviceClass.IDENTIFY}


class ActionButton(EdgeIoTEntity, ButtonEntity):
    """Runs one action the node declared."""

    _attr_entity_category = EntityCategory.CONFIG

    def __init__(self, hub: EdgeIoTHub, info: EntityInfo) -> None:
        super().__init__(hub, info)
        assert info.field_id is not None
        self.action = info.field_id
        self._attr_device_class = DEVICE_CLASSES.get(self.action)
        if self._attr_device_class is None:
            self._attr_translation_key = "action"
            self._attr_translation_placeholders = {"action": self.action.replace("_", " ")}

    async def async_press(self) -> None:
        await self.hub.async_command("node_action", node_id=self.info.node_id, action=self.action)


async_setup_entry = platform_setup_entry(Platform.BUTTON, ActionButton)
