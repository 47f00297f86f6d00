"""Device actions: run a node's action, set one of its writable fields."""

from __future__ import annotations

from typing import Any

import probatio as vol
from homeassistant.components.device_automation.exceptions import InvalidDeviceAutomationConfig
from homeassistant.const import CONF_DEVICE_ID, CONF_DOMAIN, CONF_TYPE
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType, TemplateVarsType

from .const import DOMAIN
from .device_automation import CONF_SUBTYPE, CONF_VALUE, field_of, node_fields, value_schema
from .devices import hub_and_node
from .helpers import check_value

RUN_ACTION = "run_action"
SET_FIELD = "set_field"

ACTION_SCHEMA = cv.DEVICE_ACTION_BASE_SCHEMA.extend(
    {
        vol.Required(CONF_TYPE): vol.In([RUN_ACTION, SET_FIELD]),
        vol.Required(CONF_SUBTYPE): cv.string,
        vol.Optional(CONF_VALUE): vol.Any(bool, int, float, str),
    }
)


async def async_validate_action_config(hass: HomeAssistant, config: ConfigType) -> ConfigType:
    """Check the action names what the node declares (when the node is known)."""
    config = ACTION_SCHEMA(config)
    if (found := hub_and_node(hass, config[CONF_DEVICE_ID])) is None:
        return config
    node = found[1]
    if config[CONF_TYPE] == RUN_ACTION:
        if config[CONF_SUBTYPE] not in node.get("actions", []):
            raise InvalidDeviceAutomationConfig(
                f"node {node['id']} has no action {config[CONF_SUBTYPE]}"
            )
    elif CONF_VALUE not in config:
        raise InvalidDeviceAutomationConfig("set_field needs a value")
    else:
        field_of(node, config[CONF_SUBTYPE])
    return config


async def async_get_actions(hass: HomeAssistant, device_id: str) -> list[dict[str, Any]]:
    """One `run_action` per node action, one `set_field` per writable field."""
    if (found := hub_and_node(hass, device_id)) is None:
        return []
    node = found[1]
    base = {CONF_DOMAIN: DOMAIN, CONF_DEVICE_ID: device_id}
    actions = [{**base, CONF_TYPE: RUN_ACTION, CONF_SUBTYPE: a} for a in node.get("actions", [])]
    actions += [
        {**base, CONF_TYPE: SET_FIELD, CONF_SUBTYPE: key}
        for key, spec in node_fields(node)
        if spec.get("writable")
    ]
    return actions


async def async_get_action_capabilities(
    hass: HomeAssistant, config: ConfigType
) -> dict[str, vol.Schema]:
    """`set_field` asks for a value in the field's type."""
    if (
        config[CONF_TYPE] != SET_FIELD
        or (found := hub_and_node(hass, config[CONF_DEVICE_ID])) is None
    ):
        return {}
    field = field_of(found[1], config[CONF_SUBTYPE])
    return {"extra_fields": vol.Schema({vol.Required(CONF_VALUE): value_schema(field)})}


async def async_call_action_from_config(
    hass: HomeAssistant, config: ConfigType, variables: TemplateVarsType, context: Context | None
) -> None:
    """Run the action or send the (checked) value through the gateway."""
    if (found := hub_and_node(hass, config[CONF_DEVICE_ID])) is None:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="node_not_found",
            translation_placeholders={"device_id": config[CONF_DEVICE_ID]},
        )
    hub, node = found
    if config[CONF_TYPE] == RUN_ACTION:
        await hub.async_command("node_action", node_id=node["id"], action=config[CONF_SUBTYPE])
        return
    key = config[CONF_SUBTYPE]
    value = check_value(field_of(node, key), config[CONF_VALUE], f"{node['id']}.{key}")
    source_id, field_id = key.split(".")
    await hub.async_set_field(node["id"], source_id, field_id, value)
