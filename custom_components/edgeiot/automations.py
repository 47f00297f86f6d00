"""Actions that manage the gateway's automations (tasks, schedules, forwards, alarms), and the
gateway's `notify` events: fired on HA's bus as `edgeiot_event` and sent to a notify action."""

from __future__ import annotations

import logging
from typing import Any

import probatio as vol
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv

from .const import ATTR_CONFIG_ENTRY_ID, ATTR_DATA, ATTR_EVENT_TYPE, DOMAIN, EVENT_NODE

_LOGGER = logging.getLogger(__name__)

ATTR_ID = "id"
ATTR_KIND = "kind"
ATTR_ALLOW_UNKNOWN = "allow_unknown"

# Gateway error codes that mean the call was wrong, not the gateway: ServiceValidationError.
VALIDATION_ERRORS = {
    "invalid_definition": "invalid_definition",
    "already_exists": "automation_exists",
    "not_found": "automation_not_found",
    "wrong_kind": "automation_wrong_kind",
}
_ENTRY: dict[Any, Any] = {vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string}
_ID: dict[Any, Any] = {vol.Required(ATTR_ID): cv.string}
# The keys of each kind's definition (docs/automation.md); the gateway checks their values.
_COMMON = {"name": cv.string, "enabled": cv.boolean}
_RUN = {"conditions": vol.Any(dict, list), "mode": cv.string, "max": int, "history": int,
        "actions": vol.All(cv.ensure_list, [dict])}  # fmt: skip
DEFINITION_KEYS: dict[str, dict[str, Any]] = {
    "task": {
        **_COMMON, **_RUN, "trigger": dict, "hysteresis": dict, "for": vol.Coerce(float),
        "dampening": dict, "fire": cv.string, "valid": dict, "auto_disable": vol.Any(bool, dict),
        "alarm": dict,
    },
    "schedule": {**_COMMON, **_RUN, "schedule": dict},
    "forward": {
        **_COMMON, "from": cv.string, "to": vol.All(cv.ensure_list, [cv.string]),
        "on": cv.string, "transform": cv.string, "min_interval": vol.Coerce(float),
    },
}  # fmt: skip
REQUIRED = {"task": ("trigger", "actions"), "schedule": ("schedule", "actions"),
            "forward": ("from", "to")}  # fmt: skip


def _definition_schema(kind: str, create: bool) -> vol.Schema:
    keys = {  # an update takes null too: the key goes back to its default
        (vol.Required(key) if create and key in REQUIRED[kind] else vol.Optional(key)): (
            check if create else vol.Any(None, check)
        )
        for key, check in DEFINITION_KEYS[kind].items()
    }
    return vol.Schema(
        {**_ENTRY, **_ID, vol.Optional(ATTR_ALLOW_UNKNOWN, default=False): cv.boolean, **keys}
    )


def async_setup_automation_actions(hass: HomeAssistant) -> None:
    """Register the automation actions."""
    from .services import entry_for  # noqa: PLC0415 (services imports this module)

    async def _command(call: ServiceCall, name: str, **args: Any) -> dict[str, Any]:
        hub = entry_for(hass, call.data.get(ATTR_CONFIG_ENTRY_ID)).runtime_data
        try:
            result = await hub.async_command(name, VALIDATION_ERRORS, **args)
        except HomeAssistantError as err:
            if err.translation_key not in VALIDATION_ERRORS.values():
                raise
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key=err.translation_key,
                translation_placeholders=err.translation_placeholders,
            ) from err
        if not isinstance(result, dict):
            raise HomeAssistantError(
                translation_domain=DOMAIN, translation_key="invalid_response",
                translation_placeholders={"command": name},
            )  # fmt: skip
        return result

    def store(kind: str, create: bool) -> Any:
        async def run(call: ServiceCall) -> ServiceResponse:
            given = {k: v for k, v in call.data.items() if k in DEFINITION_KEYS[kind]}
            definition = {ATTR_ID: call.data[ATTR_ID], ATTR_KIND: kind, **given}
            if not create:  # the given keys replace those of the stored definition
                # Of this kind (wrong_kind otherwise): another kind's keys would not fit.
                stored = await _command(call, "automation_get", id=call.data[ATTR_ID], kind=kind)
                automation = dict(stored["automation"])
                automation.pop("state", None)
                merged = {**automation, **definition}.items()
                definition = {key: value for key, value in merged if value is not None}
            result = await _command(
                call, "automation_set", definition=definition, create=create,
                check_references=not call.data[ATTR_ALLOW_UNKNOWN],
            )  # fmt: skip
            return result if call.return_response else None

        return run

    def by_id(name: str, kind: str) -> Any:
        async def run(call: ServiceCall) -> None:
            await _command(call, name, id=call.data[ATTR_ID], kind=kind)

        return run

    async def list_automations(call: ServiceCall) -> ServiceResponse:
        kind = {ATTR_KIND: call.data[ATTR_KIND]} if ATTR_KIND in call.data else {}
        return await _command(call, "automation_list", **kind)

    async def acknowledge(call: ServiceCall) -> ServiceResponse:
        result = await _command(call, "alarm_acknowledge", id=call.data[ATTR_ID])
        return result if call.return_response else None

    register = hass.services.async_register
    optional = SupportsResponse.OPTIONAL
    by_id_schema = vol.Schema({**_ENTRY, **_ID})
    for kind in ("task", "schedule", "forward"):
        register(DOMAIN, f"create_{kind}", store(kind, True),
                 schema=_definition_schema(kind, True), supports_response=optional)  # fmt: skip
        register(DOMAIN, f"delete_{kind}", by_id("automation_delete", kind), schema=by_id_schema)
    for kind in ("task", "schedule"):
        register(DOMAIN, f"update_{kind}", store(kind, False),
                 schema=_definition_schema(kind, False), supports_response=optional)  # fmt: skip
        register(DOMAIN, f"run_{kind}", by_id("automation_run", kind), schema=by_id_schema)
    register(
        DOMAIN, "list_automations", list_automations,
        schema=vol.Schema({**_ENTRY, vol.Optional(ATTR_KIND): vol.In(list(DEFINITION_KEYS))}),
        supports_response=SupportsResponse.ONLY,
    )  # fmt: skip
    register(DOMAIN, "acknowledge_alarm", acknowledge, schema=by_id_schema,
             supports_response=optional)  # fmt: skip


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
