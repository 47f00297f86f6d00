"""Actions that manage the gateway's automations (tasks, schedules, forwards, alarms), and the
gateway's `notify` events: fired on HA's bus as `edgeiot_event` and sent to a notify action."""

from __future__ import annotations

import logging
from typing import Any

import probatio as vol
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import config_validation as cv

from .const import ATTR_CONFIG_ENTRY_ID, ATTR_DATA, ATTR_EVENT_TYPE, DOMAIN, EVENT_NODE
from .models import EdgeIoTConfigEntry

_LOGGER = logging.getLogger(__name__)

ATTR_ID = "id"
ATTR_DEFINITION = "definition"
ATTR_ENABLED = "enabled"

_ENTRY: dict[Any, Any] = {vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string}
_BY_ID = vol.Schema({**_ENTRY, vol.Required(ATTR_ID): cv.string})

# action → (gateway command, schema, what the response holds or None)
ACTIONS: dict[str, tuple[str, vol.Schema, SupportsResponse]] = {
    "set_automation": (
        "automation_set",
        vol.Schema({**_ENTRY, vol.Required(ATTR_DEFINITION): dict}),
        SupportsResponse.OPTIONAL,
    ),
    "delete_automation": ("automation_delete", _BY_ID, SupportsResponse.NONE),
    "enable_automation": (
        "automation_enable",
        vol.Schema({**_ENTRY, vol.Required(ATTR_ID): cv.string, vol.Required(ATTR_ENABLED): bool}),
        SupportsResponse.OPTIONAL,
    ),
    "run_automation": ("automation_run", _BY_ID, SupportsResponse.NONE),
    "list_automations": ("automation_list", vol.Schema(_ENTRY), SupportsResponse.ONLY),
    "acknowledge_alarm": ("alarm_acknowledge", _BY_ID, SupportsResponse.OPTIONAL),
}


def async_setup_automation_actions(hass: HomeAssistant) -> None:
    """Register the automation actions (one handler per gateway command)."""
    from .services import entry_for  # noqa: PLC0415 (services imports this module)

    def handler(command: str) -> Any:
        async def run(call: ServiceCall) -> ServiceResponse:
            entry: EdgeIoTConfigEntry = entry_for(hass, call.data.get(ATTR_CONFIG_ENTRY_ID))
            args = {k: v for k, v in call.data.items() if k != ATTR_CONFIG_ENTRY_ID}
            result = await entry.runtime_data.async_command(command, **args)
            if not isinstance(result, dict):
                raise HomeAssistantError(
                    translation_domain=DOMAIN, translation_key="invalid_response",
                    translation_placeholders={"command": command},
                )  # fmt: skip
            return result if call.return_response else None

        return run

    for action, (command, schema, response) in ACTIONS.items():
        hass.services.async_register(
            DOMAIN, action, handler(command), schema=schema, supports_response=response
        )


def notify_event(hass: HomeAssistant, event: dict[str, Any]) -> None:
    """A gateway `notify` event: on HA's bus, and to the notify action it names."""
    data = {key: event.get(key) for key in ("automation_id", "title", "message", "service")}
    hass.bus.async_fire(
        EVENT_NODE, {ATTR_EVENT_TYPE: "notify", ATTR_DATA: event.get("data") or {}, **data}
    )
    service = event.get("service")
    if not service:
        return
    domain, _, name = service.partition(".")
    if not hass.services.has_service(domain, name):
        _LOGGER.warning("EdgeIoT automation %s: no action %s to notify",
                        event.get("automation_id"), service)  # fmt: skip
        return
    payload = {"message": event.get("message") or ""}
    if event.get("title"):
        payload["title"] = event["title"]
    if event.get("data"):
        payload["data"] = event["data"]
    hass.async_create_background_task(
        _call(hass, domain, name, payload), f"edgeiot notify {service}"
    )


async def _call(hass: HomeAssistant, domain: str, name: str, payload: dict[str, Any]) -> None:
    try:
        await hass.services.async_call(domain, name, payload, blocking=True)
    except Exception:  # a notify action of another integration failing
        _LOGGER.exception("EdgeIoT notify through %s.%s failed", domain, name)
