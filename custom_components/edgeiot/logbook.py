"""Logbook: how an `edgeiot_event` (a node's button pressed ...) reads in the logbook."""

from __future__ import annotations

from collections.abc import Callable

from homeassistant.components.logbook.const import LOGBOOK_ENTRY_MESSAGE, LOGBOOK_ENTRY_NAME
from homeassistant.const import ATTR_DEVICE_ID
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from .const import ATTR_EVENT_TYPE, ATTR_NODE_ID, ATTR_SOURCE_ID, DOMAIN, EVENT_NODE


@callback
def async_describe_events(
    hass: HomeAssistant,
    async_describe_event: Callable[[str, str, Callable[[Event], dict[str, str]]], None],
) -> None:
    """Describe EdgeIoT node events."""

    @callback
    def describe(event: Event) -> dict[str, str]:
        data = event.data
        device_id = data.get(ATTR_DEVICE_ID)
        device = dr.async_get(hass).async_get(device_id) if device_id else None
        name = (device.name_by_user or device.name) if device else None
        return {
            LOGBOOK_ENTRY_NAME: name or str(data.get(ATTR_NODE_ID)),
            LOGBOOK_ENTRY_MESSAGE: (
                f"{data.get(ATTR_SOURCE_ID)}: event {data.get(ATTR_EVENT_TYPE)}"
            ),
        }

    async_describe_event(DOMAIN, EVENT_NODE, describe)
