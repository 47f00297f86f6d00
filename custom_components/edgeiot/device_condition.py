"""Device conditions: a node is online or offline, a field has a value."""

from __future__ import annotations

from typing import Any

import probatio as vol
from homeassistant.components.device_automation.exceptions import InvalidDeviceAutomationConfig
from homeassistant.const import CONF_CONDITION, CONF_DEVICE_ID, CONF_DOMAIN, CONF_TYPE
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import condition
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType, TemplateVarsType

from .const import DOMAIN
from .device_automation import CONF_SUBTYPE, CONF_VALUE, field_of, node_fields, value_schema
from .devices import hub_and_node

IS_ONLINE = "is_online"
IS_OFFLINE = "is_offline"
FIELD_VALUE = "field_value"

CONDITION_SCHEMA = cv.DEVICE_CONDITION_BASE_SCHEMA.extend(
    {
        vol.Required(CONF_TYPE): vol.In([IS_ONLINE, IS_OFFLINE, FIELD_VALUE]),
        vol.Optional(CONF_SUBTYPE): cv.string,
        vol.Optional(CONF_VALUE): vol.Any(bool, int, float, str),
    }
)


async def async_validate_condition_config(hass: HomeAssistant, config: ConfigType) -> ConfigType:
    """A field condition names a field of the node and a value."""
    config = CONDITION_SCHEMA(config)
    if config[CONF_TYPE] == FIELD_VALUE:
        if CONF_SUBTYPE not in config or CONF_VALUE not in config:
            raise InvalidDeviceAutomationConfig("field_value needs a subtype (field) and a value")
        if (found := hub_and_node(hass, config[CONF_DEVICE_ID])) is not None:
            field = field_of(found[1], config[CONF_SUBTYPE])
            config[CONF_VALUE] = value_schema(field)(config[CONF_VALUE])
    return config


async def async_get_conditions(hass: HomeAssistant, device_id: str) -> list[dict[str, Any]]:
    """Online, offline, and a value condition per field."""
    if (found := hub_and_node(hass, device_id)) is None:
        return []
    base = {CONF_CONDITION: "device", CONF_DOMAIN: DOMAIN, CONF_DEVICE_ID: device_id}
    conditions = [{**base, CONF_TYPE: IS_ONLINE}, {**base, CONF_TYPE: IS_OFFLINE}]
    conditions += [
        {**base, CONF_TYPE: FIELD_VALUE, CONF_SUBTYPE: key} for key, _ in node_fields(found[1])
    ]
    return conditions


@callback
def async_condition_from_config(
    hass: HomeAssistant, config: ConfigType
) -> condition.ConditionCheckerType:
    """A checker reading the hub's live state (False while the node is unknown)."""
    device_id, kind = config[CONF_DEVICE_ID], config[CONF_TYPE]

    @callback
    def check(hass: HomeAssistant, variables: TemplateVarsType = None) -> bool:
        if (found := hub_and_node(hass, device_id)) is None:
            return False
        node = found[1]
        if kind == FIELD_VALUE:
            return bool(field_of(node, config[CONF_SUBTYPE]).get("value") == config[CONF_VALUE])
        online = bool(node.get("online"))
        return online if kind == IS_ONLINE else not online

    return check


async def async_get_condition_capabilities(
    hass: HomeAssistant, config: ConfigType
) -> dict[str, vol.Schema]:
    """A field condition asks for a value in the field's type."""
    if (
        config[CONF_TYPE] != FIELD_VALUE
        or (found := hub_and_node(hass, config[CONF_DEVICE_ID])) is None
    ):
        return {}
    field = field_of(found[1], config[CONF_SUBTYPE])
    return {"extra_fields": vol.Schema({vol.Required(CONF_VALUE): value_schema(field)})}
