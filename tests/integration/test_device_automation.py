"""Device actions and conditions of a node, run by real automations against a real gateway."""

from __future__ import annotations

import pytest
from homeassistant.components.automation import DOMAIN as AUTOMATION_DOMAIN
from homeassistant.components.device_automation import (
    DeviceAutomationType,
    async_get_device_automations,
)
from homeassistant.components.device_automation.exceptions import InvalidDeviceAutomationConfig
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_mock_service

from custom_components.edgeiot import device_action, device_condition
from custom_components.edgeiot.const import DOMAIN

from ..gateway.harness import NodeSimulator
from .helpers import state_of, wait_until


def _device_id(hass: HomeAssistant, entry: MockConfigEntry, node_id: str) -> str:
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, f"ha-test-gw.{node_id}"), entry.entry_id
    )
    assert device is not None
    return device.id


async def test_actions_and_conditions_offered(
    hass: HomeAssistant, integration: MockConfigEntry
) -> None:
    """Actions per node action and writable field; conditions online/offline and per field."""
    await wait_until(hass, lambda: state_of(hass, "text.greenhouse_vent_label") == "north")
    device_id = _device_id(hass, integration, "greenhouse-1")
    actions = (await async_get_device_automations(
        hass, DeviceAutomationType.ACTION, [device_id]))[device_id]  # fmt: skip
    ours = {(a["type"], a["subtype"]) for a in actions if a["domain"] == DOMAIN}
    assert ours == {("run_action", "reboot"), ("run_action", "identify"),
                    ("set_field", "vent.open"), ("set_field", "vent.position"),
                    ("set_field", "vent.mode"), ("set_field", "vent.label")}  # fmt: skip
    conditions = (await async_get_device_automations(
        hass, DeviceAutomationType.CONDITION, [device_id]))[device_id]  # fmt: skip
    kinds = {(c["type"], c.get("subtype")) for c in conditions if c["domain"] == DOMAIN}
    assert {
        ("is_online", None),
        ("is_offline", None),
        ("field_value", "climate.temperature"),
    } <= kinds

    mode = {"domain": DOMAIN, "device_id": device_id, "type": "set_field", "subtype": "vent.mode"}
    capabilities = await device_action.async_get_action_capabilities(hass, mode)
    assert capabilities["extra_fields"]({"value": "auto"}) == {"value": "auto"}
    reboot = {"domain": DOMAIN, "device_id": device_id, "type": "run_action", "subtype": "reboot"}
    assert await device_action.async_get_action_capabilities(hass, reboot) == {}
    bad = [
        {**reboot, "subtype": "explode"},
        {**mode, "subtype": "vent.nothing", "value": 1},
        mode,  # no value
    ]
    for config in bad:
        with pytest.raises(InvalidDeviceAutomationConfig):
            await device_action.async_validate_action_config(hass, config)
    field = {"condition": "device", "domain": DOMAIN, "device_id": device_id,
             "type": "field_value", "subtype": "vent.mode"}  # fmt: skip
    capabilities = await device_condition.async_get_condition_capabilities(hass, field)
    assert "value" in capabilities["extra_fields"].schema
    with pytest.raises(InvalidDeviceAutomationConfig):
        await device_condition.async_validate_condition_config(hass, field)  # no value
    assert await device_action.async_get_actions(hass, "no-such-device") == []
    assert await device_condition.async_get_conditions(hass, "no-such-device") == []


async def test_automation_runs_device_actions_under_conditions(
    hass: HomeAssistant, integration: MockConfigEntry, node: NodeSimulator
) -> None:
    """Conditions read the node's live state; actions reach the node."""
    await wait_until(hass, lambda: state_of(hass, "text.greenhouse_vent_label") == "north")
    device_id = _device_id(hass, integration, "greenhouse-1")
    base = {"domain": DOMAIN, "device_id": device_id}
    calls = async_mock_service(hass, "test", "ran")
    assert await async_setup_component(hass, AUTOMATION_DOMAIN, {AUTOMATION_DOMAIN: [
        {"trigger": {"platform": "event", "event_type": "go"},
         "condition": [{"condition": "device", **base, "type": "is_online"},
                       {"condition": "device", **base, "type": "field_value",
                        "subtype": "vent.mode", "value": "auto"}],
         "action": [{**base, "type": "set_field", "subtype": "vent.position", "value": 40},
                    {**base, "type": "run_action", "subtype": "identify"},
                    {"service": "test.ran"}]},
        {"trigger": {"platform": "event", "event_type": "go_offline"},
         "condition": {"condition": "device", **base, "type": "is_offline"},
         "action": {"service": "test.ran"}},
    ]})  # fmt: skip
    hass.bus.async_fire("go_offline")
    await hass.async_block_till_done()
    assert calls == []  # the node is online

    hass.bus.async_fire("go")
    await wait_until(hass, lambda: calls)
    assert await node.next_command() == ("edgeiot/v1/greenhouse-1/set/vent/position",
                                         {"v": 1, "value": 40})  # fmt: skip
    assert (await node.next_command())[1] == {"v": 1, "action": "identify"}

    node.state("vent", mode="manual")
    await wait_until(hass, lambda: state_of(hass, "sensor.greenhouse_vent_mode") == "manual" or
                     state_of(hass, "select.greenhouse_vent_mode") == "manual")  # fmt: skip
    hass.bus.async_fire("go")
    await hass.async_block_till_done()
    assert len(calls) == 1  # mode is no longer auto
