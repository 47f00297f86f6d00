"""The automation commands of the WebSocket API: argument schemas and what each does."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import voluptuous as vol

if TYPE_CHECKING:
    from .service import Automations

type Run = Callable[[Automations, dict[str, Any]], Awaitable[Any]]

KINDS = ("task", "schedule", "forward")
_ID: dict[Any, Any] = {vol.Required("id"): vol.All(str, vol.Length(min=1, max=64))}
_KIND: dict[Any, Any] = {vol.Optional("kind"): vol.In(KINDS)}


async def _list(automations: Automations, args: dict[str, Any]) -> dict[str, Any]:
    return {"automations": automations.listing(args.get("kind"))}


async def _get(automations: Automations, args: dict[str, Any]) -> dict[str, Any]:
    return {"automation": automations.get(args["id"], args.get("kind"))}


async def _set(automations: Automations, args: dict[str, Any]) -> dict[str, Any]:
    create, check = args.get("create"), args.get("check_references", False)
    return {"automation": await automations.set(args["definition"], create, check)}


async def _delete(automations: Automations, args: dict[str, Any]) -> dict[str, Any]:
    await automations.delete(args["id"], args.get("kind"))
    return {}


async def _enable(automations: Automations, args: dict[str, Any]) -> dict[str, Any]:
    return {"automation": await automations.enable(args["id"], args["enabled"])}


async def _run(automations: Automations, args: dict[str, Any]) -> dict[str, Any]:
    automations.run(args["id"], args.get("kind"))
    return {}


async def _history(automations: Automations, args: dict[str, Any]) -> dict[str, Any]:
    return {"runs": automations.history(args["id"], args.get("limit"))}


async def _alarms(automations: Automations, args: dict[str, Any]) -> dict[str, Any]:
    return {"alarms": automations.alarms()}


async def _acknowledge(automations: Automations, args: dict[str, Any]) -> dict[str, Any]:
    return {"alarm": automations.acknowledge(args["id"])}


AUTOMATION_COMMANDS: dict[str, tuple[vol.Schema, Run]] = {
    "automation_list": (
        vol.Schema(_KIND),
        _list,
    ),
    "automation_get": (vol.Schema({**_ID, **_KIND}), _get),
    "automation_set": (
        vol.Schema(
            {
                vol.Required("definition"): dict,
                vol.Optional("create"): bool,
                vol.Optional("check_references"): bool,
            }
        ),
        _set,
    ),
    "automation_delete": (vol.Schema({**_ID, **_KIND}), _delete),
    "automation_enable": (vol.Schema({**_ID, vol.Required("enabled"): bool}), _enable),
    "automation_run": (vol.Schema({**_ID, **_KIND}), _run),
    "automation_history": (
        vol.Schema({**_ID, vol.Optional("limit"): vol.All(int, vol.Range(min=1, max=100))}),
        _history,
    ),
    "alarm_list": (vol.Schema({}), _alarms),
    "alarm_acknowledge": (vol.Schema(_ID), _acknowledge),
}
