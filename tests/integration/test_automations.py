"""The automation actions and notify events, against a real gateway process."""

from __future__ import annotations

from typing import Any

import probatio as vol
import pytest
from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_mock_service

from custom_components.edgeiot.const import DOMAIN, EVENT_NODE

from ..gateway.harness import NodeSimulator
from .helpers import state_of, wait_until

FROST: dict[str, Any] = {
    "id": "frost", "kind": "task", "name": "Frost", "alarm": {"severity": "warning"},
    "trigger": {"type": "field", "node": "greenhouse-1", "source": "climate",
                "field": "temperature", "on": "update"},
    "conditions": {"op": "<", "to": 2},
    "actions": [{"handler": "notify", "params": {
        "title": "Greenhouse", "message": "Frost {{ alarm }}: {{ value }} °C",
        "service": "notify.phone", "data": {"priority": "high"}}}],
}  # fmt: skip


async def _call(hass: HomeAssistant, action: str, **data: Any) -> Any:
    return await hass.services.async_call(
        DOMAIN, action, data, blocking=True, return_response=action == "list_automations"
    )


async def _answer(hass: HomeAssistant, action: str, **data: Any) -> dict[str, Any]:
    response = await hass.services.async_call(
        DOMAIN, action, data, blocking=True, return_response=True
    )
    assert response is not None
    return dict(response)


def _fields(definition: dict[str, Any]) -> dict[str, Any]:
    """A definition as the create_* actions take it: its keys, without the kind."""
    return {k: v for k, v in definition.items() if k != "kind"}


async def test_manage_automations_and_notify(
    hass: HomeAssistant, integration: MockConfigEntry, node: NodeSimulator
) -> None:
    """Create, list, run, update and delete an alarm task; its notify reaches HA's bus and the
    notify action it names."""
    notified = async_mock_service(hass, "notify", "phone")
    events: list[Event] = []
    hass.bus.async_listen(EVENT_NODE, events.append)

    response = await _answer(hass, "create_task", **_fields(FROST))
    assert response["automation"]["mode"] == "single"
    assert response["automation"]["kind"] == "task"
    listing = await _call(hass, "list_automations")
    assert [a["id"] for a in listing["automations"]] == ["frost"]

    await _call(hass, "run_task", id="frost")
    await wait_until(hass, lambda: len(notified) == 1)
    assert notified[0].data == {"message": "Frost test: 21.5 °C", "title": "Greenhouse",
                                "data": {"priority": "high"}}  # fmt: skip
    [event] = [e for e in events if e.data["event_type"] == "notify"]
    assert event.data == {
        "event_type": "notify", "automation_id": "frost", "title": "Greenhouse",
        "message": "Frost test: 21.5 °C", "service": "notify.phone", "data": {"priority": "high"},
    }  # fmt: skip

    alarm = er.async_get(hass).async_get_entity_id(
        "binary_sensor", DOMAIN, "ha-test-gw.gateway.alarm:frost"
    )
    assert alarm is not None
    await wait_until(hass, lambda: state_of(hass, alarm) == "off")
    node.state("climate", temperature=1.0)  # raises the alarm
    await wait_until(hass, lambda: len(notified) == 2)
    assert notified[1].data["message"] == "Frost raised: 1.0 °C"
    await wait_until(hass, lambda: state_of(hass, alarm) == "on")
    acknowledged = await _answer(hass, "acknowledge_alarm", id="frost")
    assert acknowledged["alarm"]["acknowledged"] is True
    await wait_until(hass, lambda: hass.states.get(alarm).attributes["acknowledged"] is True)
    assert hass.states.get(alarm).attributes["severity"] == "warning"

    updated = await _answer(hass, "update_task", id="frost", enabled=False, mode="queued")
    assert updated["automation"]["enabled"] is False
    assert updated["automation"]["mode"] == "queued"
    assert updated["automation"]["actions"] == response["automation"]["actions"]  # kept
    assert await _call(hass, "update_task", id="frost", max=3) is None  # no response asked
    cleared = await _answer(hass, "update_task", id="frost", conditions=None, mode=None)
    assert (cleared["automation"]["conditions"], cleared["automation"]["mode"]) == (None, "single")
    listing = await _call(hass, "list_automations", kind="task")
    assert [(a["enabled"], a["max"]) for a in listing["automations"]] == [(False, 3)]
    assert (await _call(hass, "list_automations", kind="forward"))["automations"] == []
    await _call(hass, "delete_task", id="frost")
    assert (await _call(hass, "list_automations"))["automations"] == []
    await wait_until(hass, lambda: er.async_get(hass).async_get(alarm) is None)


async def test_schedules_and_forwards(hass: HomeAssistant, integration: MockConfigEntry) -> None:
    schedule = await _answer(
        hass, "create_schedule", id="hourly", schedule={"every": 3600},
        actions=[{"handler": "notify", "params": {"message": "tick"}}],
    )  # fmt: skip
    assert schedule["automation"]["state"]["next_run"] is not None
    events: list[Event] = []
    hass.bus.async_listen(EVENT_NODE, events.append)
    await _call(hass, "run_schedule", id="hourly")
    await wait_until(hass, lambda: any(e.data.get("message") == "tick" for e in events))
    changed = await _answer(hass, "update_schedule", id="hourly", schedule={"daily": "07:30"})
    assert changed["automation"]["schedule"] == {"daily": "07:30"}
    forward = await _answer(
        hass, "create_forward", id="copy", name="Copy", to="greenhouse-1.vent.position",
        transform="{{ value / 10 }}", min_interval=2, **{"from": "greenhouse-1.climate.humidity"},
    )  # fmt: skip
    assert forward["automation"] | {"state": None} == {
        "id": "copy", "kind": "forward", "name": "Copy", "enabled": True,
        "from": "greenhouse-1.climate.humidity", "to": ["greenhouse-1.vent.position"],
        "on": "change", "transform": "{{ value / 10 }}", "min_interval": 2.0, "state": None,
    }  # fmt: skip
    await _call(hass, "delete_forward", id="copy")
    await _call(hass, "delete_schedule", id="hourly")
    assert (await _call(hass, "list_automations"))["automations"] == []


NOPE = "The gateway has no such automation: no automation 'nope'"


async def _refused(hass: HomeAssistant, action: str, key: str, message: str, **data: Any) -> None:
    with pytest.raises(ServiceValidationError) as info:
        await _call(hass, action, **data)
    assert info.value.translation_key == key
    assert str(info.value) == message


async def test_invalid_calls_are_refused_with_what_is_wrong(
    hass: HomeAssistant, integration: MockConfigEntry
) -> None:
    frost = _fields(FROST)
    await _refused(hass, "create_task", "invalid_definition",
                   "The automation definition is invalid: mode: expected one of single, restart,"
                   " queued, parallel", **frost | {"mode": "sometimes"})  # fmt: skip
    typo = {"value": {"field": "greenhouse-1.vent.positon"}, "op": ">", "to": 1}
    await _refused(hass, "create_task", "invalid_definition",
                   "The automation definition is invalid: conditions[1].value.field: unknown"
                   " field greenhouse-1.vent.positon",
                   **frost | {"conditions": [{"op": "<", "to": 2}, typo]})  # fmt: skip
    later = frost | {"trigger": FROST["trigger"] | {"node": "greenhouse-2"}}
    await _refused(hass, "create_task", "invalid_definition",
                   "The automation definition is invalid: trigger: unknown node greenhouse-2",
                   **later)  # fmt: skip
    await _call(hass, "create_task", allow_unknown=True, **later)  # a node still to come
    await _refused(hass, "create_task", "automation_exists",
                   "The gateway refused the automation: automation 'frost' exists; change it"
                   " with the update action", **frost)  # fmt: skip
    await _refused(hass, "update_task", "automation_not_found",
                   NOPE, id="nope")  # fmt: skip
    await _call(hass, "create_schedule", id="hourly", schedule={"every": 3600},
                actions=FROST["actions"])  # fmt: skip
    for action in ("update_task", "run_task", "delete_task"):
        await _refused(hass, action, "automation_wrong_kind",
                       "The automation is of another kind: 'hourly' is a schedule, not a task",
                       id="hourly")  # fmt: skip
    await _refused(hass, "delete_forward", "automation_wrong_kind",
                   "The automation is of another kind: 'frost' is a task, not a forward",
                   id="frost")  # fmt: skip
    await _refused(hass, "run_schedule", "automation_not_found",
                   NOPE, id="nope")  # fmt: skip
    with pytest.raises(vol.Invalid):  # required keys, checked by HA before the gateway
        await _call(hass, "create_task", id="x", trigger=FROST["trigger"])
    with pytest.raises(HomeAssistantError) as failed:  # other gateway errors stay as they are
        await _call(hass, "delete_task", id="x" * 65)
    assert not isinstance(failed.value, ServiceValidationError)
    assert failed.value.translation_key == "command_failed"


async def test_notify_to_a_missing_action_is_logged(
    hass: HomeAssistant, integration: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[Event] = []
    hass.bus.async_listen(EVENT_NODE, events.append)
    notify = {"handler": "notify", "params": {"message": "hi", "service": "notify.nobody"}}
    await _call(hass, "create_task", **_fields(FROST) | {"actions": [notify]})
    await _call(hass, "run_task", id="frost")
    await wait_until(hass, lambda: any(e.data["event_type"] == "notify" for e in events))
    assert "no action notify.nobody to notify" in caplog.text
