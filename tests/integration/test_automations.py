"""The automation actions and notify events, against a real gateway process."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
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


async def test_manage_automations_and_notify(
    hass: HomeAssistant, integration: MockConfigEntry, node: NodeSimulator
) -> None:
    """Set, list, run, disable and delete an alarm task; its notify reaches HA's bus and the
    notify action it names."""
    notified = async_mock_service(hass, "notify", "phone")
    events: list[Event] = []
    hass.bus.async_listen(EVENT_NODE, events.append)

    response = await hass.services.async_call(
        DOMAIN, "set_automation", {"definition": FROST}, blocking=True, return_response=True
    )
    assert response is not None
    assert response["automation"]["mode"] == "single"
    listing = await _call(hass, "list_automations")
    assert [a["id"] for a in listing["automations"]] == ["frost"]

    await _call(hass, "run_automation", id="frost")
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
    await _call(hass, "acknowledge_alarm", id="frost")
    await wait_until(hass, lambda: hass.states.get(alarm).attributes["acknowledged"] is True)
    assert hass.states.get(alarm).attributes["severity"] == "warning"

    await _call(hass, "enable_automation", id="frost", enabled=False)
    listing = await _call(hass, "list_automations")
    assert listing["automations"][0]["enabled"] is False
    await _call(hass, "delete_automation", id="frost")
    assert (await _call(hass, "list_automations"))["automations"] == []
    await wait_until(hass, lambda: er.async_get(hass).async_get(alarm) is None)


async def test_gateway_errors_reach_the_caller(
    hass: HomeAssistant, integration: MockConfigEntry
) -> None:
    with pytest.raises(HomeAssistantError, match="invalid_definition"):
        await _call(hass, "set_automation", definition=FROST | {"mode": "sometimes"})
    with pytest.raises(HomeAssistantError, match="not_found"):
        await _call(hass, "run_automation", id="nope")


async def test_notify_to_a_missing_action_is_logged(
    hass: HomeAssistant, integration: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[Event] = []
    hass.bus.async_listen(EVENT_NODE, events.append)
    await _call(
        hass,
        "set_automation",
        definition=FROST
        | {
            "actions": [
                {"handler": "notify", "params": {"message": "hi", "service": "notify.nobody"}}
            ]
        },
    )
    await _call(hass, "run_automation", id="frost")
    await wait_until(hass, lambda: any(e.data["event_type"] == "notify" for e in events))
    assert "no action notify.nobody to notify" in caplog.text
