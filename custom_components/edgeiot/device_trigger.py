"""Device triggers: the events a node's sources declare (button pressed, held ...)."""

from __future__ import annotations

from typing import Any

import probatio as vol
from homeassistant.components.device_automation import DEVICE_TRIGGER_BASE_SCHEMA
from homeassistant.components.device_automation.exceptions import InvalidDeviceAutomationConfig
from homeassistant.components.homeassistant.triggers import event as event_trigger
from homeassistant.const import (
    CONF_DEVICE_ID,
    CONF_DOMAIN,
    CONF_EVENT_DATA,
    CONF_PLATFORM,
    CONF_TYPE,
)
from homeassistant.core import CALLBACK_TYPE, HomeAssistant
from homeassistant.helpers.trigger import TriggerActionType, TriggerInfo
from homeassistant.helpers.typing import ConfigType

from .const import ATTR_EVENT_TYPE, ATTR_SOURCE_ID, DOMAIN, EVENT_NODE
from .devices import hub_and_node

CONF_SUBTYPE = "subtype"

TRIGGER_SCHEMA = DEVICE_TRIGGER_BASE_SCHEMA.extend(
    {vol.Required(CONF_TYPE): str, vol.Required(CONF_SUBTYPE): str}
)


def _node(hass: HomeAssistant, device_id: str) -> dict[str, Any] | None:
    found = hub_and_node(hass, device_id)
    return None if found is None else found[1]


async def async_get_triggers(hass: HomeAssistant, device_id: str) -> list[dict[str, Any]]:
    """One trigger per (source, event) the node declares: type = event, subtype = source."""
    node = _node(hass, device_id)
    if node is None:
        return []
    return [
        {CONF_PLATFORM: "device", CONF_DOMAIN: DOMAIN, CONF_DEVICE_ID: device_id,
         CONF_TYPE: event, CONF_SUBTYPE: source["id"]}
        for source in node["sources"]
        for event in source.get("events", [])
    ]  # fmt: skip


async def async_validate_trigger_config(hass: HomeAssistant, config: ConfigType) -> ConfigType:
    """Check the trigger names an event the node declares (when the node is known)."""
    config = TRIGGER_SCHEMA(config)
    node = _node(hass, config[CONF_DEVICE_ID])
    if node is not None:
        declared = {(s["id"], e) for s in node["sources"] for e in s.get("events", [])}
        if (config[CONF_SUBTYPE], config[CONF_TYPE]) not in declared:
            raise InvalidDeviceAutomationConfig(
                f"node {node['id']} has no event {config[CONF_TYPE]} on {config[CONF_SUBTYPE]}"
            )
    return config


async def async_attach_trigger(
    hass: HomeAssistant,
    config: ConfigType,
    action: TriggerActionType,
    trigger_info: TriggerInfo,
) -> CALLBACK_TYPE:
    """Listen for the node event on HA's bus."""
    event_config = event_trigger.TRIGGER_SCHEMA(
        {
            CONF_PLATFORM: "event",
            event_trigger.CONF_EVENT_TYPE: EVENT_NODE,
            CONF_EVENT_DATA: {
                CONF_DEVICE_ID: config[CONF_DEVICE_ID],
                ATTR_SOURCE_ID: config[CONF_SUBTYPE],
                ATTR_EVENT_TYPE: config[CONF_TYPE],
            },
        }
    )
    return await event_trigger.async_attach_trigger(
        hass, event_config, action, trigger_info, platform_type="device"
    )
