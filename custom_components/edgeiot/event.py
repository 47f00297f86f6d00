"""Event entities: the events a node's source emits (button pressed, held ...)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.event import EventEntity
from homeassistant.const import Platform
from homeassistant.core import callback

from .discovery import EntityInfo
from .entity import EdgeIoTEntity, platform_setup_entry
from .hub import EdgeIoTHub

PARALLEL_UPDATES = 0


class SourceEvents(EdgeIoTEntity, EventEntity):
    """Shows the last event of a source; automations can trigger on it."""

    _attr_translation_key = "events"  # icons.json; the name stays the source's

    def __init__(self, hub: EdgeIoTHub, info: EntityInfo) -> None:
        super().__init__(hub, info)
        assert info.source_id is not None
        source = next(s for s in self.node["sources"] if s["id"] == info.source_id)
        self._attr_name = source.get("name") or source["id"]
        self._attr_event_types = list(source["events"])

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        assert self.info.source_id is not None
        self.async_on_remove(
            self.hub.subscribe_events(self.info.node_id, self.info.source_id, self._on_event)
        )

    @callback
    def _on_event(self, event_type: str, data: dict[str, Any]) -> None:
        if event_type in self.event_types:
            self._trigger_event(event_type, data)
            self.async_write_ha_state()


async_setup_entry = platform_setup_entry(Platform.EVENT, SourceEvents)
