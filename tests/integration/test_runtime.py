"""Live behaviour against a real gateway: entities, commands, events, availability, removal."""

from __future__ import annotations

import pytest
from homeassistant.components.automation import DOMAIN as AUTOMATION_DOMAIN
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_ENTITY_ID, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_mock_service
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion

from custom_components.edgeiot import async_remove_config_entry_device
from custom_components.edgeiot.const import DOMAIN

from ..gateway.harness import NodeSimulator
from ..servers import Mosquitto
from .conftest import GatewayProcess
from .helpers import state_of, wait_until

TEMPERATURE = "sensor.greenhouse_climate_temperature"


def _entity_id(hass: HomeAssistant, unique_suffix: str) -> str:
    entity_id = er.async_get(hass).async_get_entity_id(
        unique_suffix.split("/", maxsplit=1)[0],
        DOMAIN,
        f"ha-test-gw.greenhouse-1.{unique_suffix.split('/')[1]}",
    )
    assert entity_id is not None, unique_suffix
    return entity_id


async def _settled(hass: HomeAssistant) -> None:
    await wait_until(hass, lambda: state_of(hass, "text.greenhouse_vent_label") == "north")
    await wait_until(hass, lambda: state_of(hass, "number.lab_probe_setpoint") == "21.5")


async def test_entities_snapshot(
    hass: HomeAssistant, integration: MockConfigEntry, snapshot: SnapshotAssertion
) -> None:
    """Registry entries and states of every entity of the node (platform mapping, classes)."""
    await _settled(hass)
    entries = sorted(
        er.async_entries_for_config_entry(er.async_get(hass), integration.entry_id),
        key=lambda e: e.unique_id,
    )
    assert [
        {
            "entity_id": e.entity_id,
            "unique_id": e.unique_id,
            "disabled_by": e.disabled_by,
            "entity_category": e.entity_category,
            "original_device_class": e.original_device_class,
            "original_name": e.original_name,
            "translation_key": e.translation_key,
            "unit": e.unit_of_measurement,
            "state": state.state if (state := hass.states.get(e.entity_id)) else None,
            "attributes": {k: v for k, v in state.attributes.items() if k != "friendly_name"}
            if state
            else None,
        }
        for e in entries
    ] == snapshot


async def test_controls_reach_the_node(
    hass: HomeAssistant, integration: MockConfigEntry, node: NodeSimulator, lab: NodeSimulator
) -> None:
    """Switch, number, select, text and button send commands the node receives."""
    await _settled(hass)
    calls = [
        ("switch", "turn_on", "switch.greenhouse_vent_open", {}, ("vent/open", True)),
        ("number", "set_value", "number.greenhouse_vent_position", {"value": 45},
         ("vent/position", 45)),
        ("select", "select_option", "select.greenhouse_vent_mode", {"option": "manual"},
         ("vent/mode", "manual")),
        ("text", "set_value", "text.greenhouse_vent_label", {"value": "south"},
         ("vent/label", "south")),
    ]  # fmt: skip
    for domain, service, entity_id, data, (path, value) in calls:
        await hass.services.async_call(
            domain, service, {ATTR_ENTITY_ID: entity_id, **data}, blocking=True
        )
        topic, payload = await node.next_command()
        assert topic == f"edgeiot/v1/greenhouse-1/set/{path}"
        assert payload == {"v": 1, "value": value}
    await hass.services.async_call(
        "number",
        "set_value",
        {ATTR_ENTITY_ID: "number.lab_probe_setpoint", "value": 19.5},
        blocking=True,
    )
    await hass.services.async_call(
        "button", "press", {ATTR_ENTITY_ID: "button.lab_run_calibrate"}, blocking=True
    )
    assert await lab.next_command() == ("edgeiot/v1/lab-3/set/probe/setpoint",
                                        {"v": 1, "value": 19.5})  # fmt: skip
    assert (await lab.next_command())[1] == {"v": 1, "action": "calibrate"}
    await hass.services.async_call(
        "button", "press", {ATTR_ENTITY_ID: "button.greenhouse_restart"}, blocking=True
    )
    assert await node.next_command() == ("edgeiot/v1/greenhouse-1/action",
                                         {"v": 1, "action": "reboot"})  # fmt: skip

    # The node reports back and the state follows.
    node.state("vent", open=True)
    await wait_until(hass, lambda: state_of(hass, "switch.greenhouse_vent_open") == "on")


async def test_set_field_action(
    hass: HomeAssistant, integration: MockConfigEntry, node: NodeSimulator
) -> None:
    """edgeiot.set_field by entity or by field id; bad values are refused before sending."""
    await _settled(hass)
    await hass.services.async_call(
        DOMAIN, "set_field",
        {ATTR_ENTITY_ID: "number.greenhouse_vent_position", "value": "55"}, blocking=True,
    )  # fmt: skip
    assert (await node.next_command())[1]["value"] == 55
    await hass.services.async_call(
        DOMAIN, "set_field", {"field": "greenhouse-1.vent.open", "value": "on"}, blocking=True
    )
    assert (await node.next_command())[1]["value"] is True

    bad = [
        ({"field": "greenhouse-1.vent.position", "value": 150}, "invalid_value"),
        ({"field": "greenhouse-1.vent.position", "value": 2.5}, "invalid_value"),
        ({"field": "greenhouse-1.vent.mode", "value": "turbo"}, "invalid_value"),
        ({"field": "greenhouse-1.vent.open", "value": "maybe"}, "invalid_value"),
        ({"field": "greenhouse-1.climate.temperature", "value": 1}, "field_not_writable"),
        ({"field": "greenhouse-1.vent.nothing", "value": 1}, "field_not_found"),
        ({ATTR_ENTITY_ID: "sensor.greenhouse_battery", "value": 1}, "not_a_field_entity"),
        ({ATTR_ENTITY_ID: TEMPERATURE, "value": 1}, "field_not_writable"),
        ({ATTR_ENTITY_ID: "all", "value": 1}, "target_all"),
        ({ATTR_ENTITY_ID: "switch.greenhouse_vent_open", "field": "greenhouse-1.vent.open",
          "value": 1}, "field_and_target"),
        ({"field": "greenhouse-1.vent.open", "value": 1, "config_entry_id": "nope"},
         "entry_not_found"),
    ]  # fmt: skip
    for data, key in bad:
        with pytest.raises(ServiceValidationError) as err:
            await hass.services.async_call(DOMAIN, "set_field", data, blocking=True)
        assert err.value.translation_key == key, data
    assert node.commands.empty()


async def test_set_field_targets_devices(
    hass: HomeAssistant, integration: MockConfigEntry, lab: NodeSimulator
) -> None:
    """A device target sets the device's writable fields (HA resolves it, as for any entity
    service); its read-only fields are left alone."""
    await _settled(hass)
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, "ha-test-gw.lab-3"), integration.entry_id
    )
    assert device is not None
    await hass.services.async_call(
        DOMAIN, "set_field", {"device_id": device.id, "value": 19}, blocking=True
    )
    assert await lab.next_command() == ("edgeiot/v1/lab-3/set/probe/setpoint",
                                        {"v": 1, "value": 19.0})  # fmt: skip
    assert lab.commands.empty()


async def test_backup_action(hass: HomeAssistant, integration: MockConfigEntry) -> None:
    """edgeiot.backup returns the gateway's backup document (one gateway: no entry id)."""
    await _settled(hass)
    response = await hass.services.async_call(
        DOMAIN, "backup", {}, blocking=True, return_response=True
    )  # one gateway: no config_entry_id needed
    assert response is not None
    backup = response["backup"]
    assert backup["format"] == "edgeiot-backup"
    assert sorted(n["id"] for n in backup["nodes"]) == ["greenhouse-1", "lab-3"]


async def test_node_added_and_removed_live(
    hass: HomeAssistant, integration: MockConfigEntry, mosquitto: Mosquitto
) -> None:
    """A node announced at runtime appears; one removed on the gateway disappears."""
    devices = dr.async_get(hass)
    sim = NodeSimulator(mosquitto, "cellar-2", {
        "v": 1, "name": "Cellar", "sources": [
            {"id": "air", "fields": [{"id": "co2", "name": "CO2", "type": "int", "unit": "ppm",
                                      "device_class": "carbon_dioxide"}]}]}).start()  # fmt: skip
    try:
        sim.announce()
        sim.state("air", co2=640)
        await wait_until(hass, lambda: state_of(hass, "sensor.cellar_co2") == "640")
        device = devices.async_get_device_by_identifier(
            ("edgeiot", "ha-test-gw.cellar-2"), integration.entry_id
        )
        assert device is not None
        hub = integration.runtime_data
        await hub.client.command("remove_node", node_id="cellar-2")
        await wait_until(hass, lambda: state_of(hass, "sensor.cellar_co2") is None)
        assert devices.async_get(device.id) is None
    finally:
        sim.stop()


async def test_availability_follows_gateway_and_node(
    hass: HomeAssistant,
    integration: MockConfigEntry,
    gateway_process: GatewayProcess,
    node: NodeSimulator,
) -> None:
    """Gateway down → unavailable; back → recovers without reload; node offline → unavailable."""
    await _settled(hass)
    gateway_process.stop()
    await wait_until(hass, lambda: state_of(hass, TEMPERATURE) == STATE_UNAVAILABLE)
    gateway_process.start()
    await wait_until(hass, lambda: state_of(hass, TEMPERATURE) == "21.5", timeout=20)
    assert integration.state is ConfigEntryState.LOADED

    node.publish("status", {"v": 1, "state": "offline"}, retain=True)
    await wait_until(hass, lambda: state_of(hass, TEMPERATURE) == STATE_UNAVAILABLE)
    node.announce()
    await wait_until(hass, lambda: state_of(hass, TEMPERATURE) == "21.5")


async def test_gateway_token_change_starts_reauth(
    hass: HomeAssistant, integration: MockConfigEntry, gateway_process: GatewayProcess
) -> None:
    """When the gateway's token changes, the reconnect fails with auth and a reauth flow opens."""
    gateway_process.stop()
    (gateway_process.workdir / "data" / "api_token").write_text("n" * 43 + "\n")
    gateway_process.start()
    await wait_until(
        hass,
        lambda: any(f["context"]["source"] == "reauth"
                    for f in hass.config_entries.flow.async_progress_by_handler(DOMAIN)),
        timeout=20,
    )  # fmt: skip


async def test_node_event_fires_bus_event_and_device_trigger(
    hass: HomeAssistant, integration: MockConfigEntry, node: NodeSimulator
) -> None:
    """A node event fires edgeiot_event, updates the event entity and runs a device trigger."""
    await _settled(hass)
    device = dr.async_get(hass).async_get_device_by_identifier(
        ("edgeiot", "ha-test-gw.greenhouse-1"), integration.entry_id
    )
    assert device is not None
    from homeassistant.components.device_automation import (  # noqa: PLC0415
        DeviceAutomationType,
        async_get_device_automations,
    )

    triggers = (await async_get_device_automations(
        hass, DeviceAutomationType.TRIGGER, [device.id]))[device.id]  # fmt: skip
    ours = {(t["subtype"], t["type"]) for t in triggers if t["domain"] == DOMAIN}
    assert ours == {("button", "pressed"), ("button", "held")}
    calls = async_mock_service(hass, "test", "automation")
    assert await async_setup_component(
        hass, AUTOMATION_DOMAIN,
        {AUTOMATION_DOMAIN: {
            "trigger": {"platform": "device", "domain": DOMAIN, "device_id": device.id,
                        "type": "pressed", "subtype": "button"},
            "action": {"service": "test.automation",
                       "data_template": {"count": "{{ trigger.event.data.data.count }}"}}}},
    )  # fmt: skip
    bus_events = []
    hass.bus.async_listen("edgeiot_event", bus_events.append)
    node.publish("event/button", {"v": 1, "event": "pressed", "data": {"count": 2}})
    await wait_until(hass, lambda: calls)
    assert calls[0].data == {"count": "2"} or calls[0].data == {"count": 2}
    assert bus_events[0].data["device_id"] == device.id
    event_state = hass.states.get("event.greenhouse_button")
    assert event_state is not None
    assert event_state.attributes["event_type"] == "pressed"


async def test_remove_device(
    hass: HomeAssistant,
    integration: MockConfigEntry,
    node: NodeSimulator,
    hass_client: ClientSessionGenerator,
) -> None:
    """Online nodes and the gateway cannot be deleted; deleting an offline node's device only
    forgets it in HA (also across a reload) until the user confirms the repair that removes it
    from the gateway; a node that comes back online comes back in HA."""
    await _settled(hass)
    devices = dr.async_get(hass)
    greenhouse = devices.async_get_device_by_identifier(
        ("edgeiot", "ha-test-gw.greenhouse-1"), integration.entry_id
    )
    gateway = devices.async_get_device_by_identifier(
        ("edgeiot", "ha-test-gw"), integration.entry_id
    )
    assert greenhouse is not None
    assert gateway is not None
    assert not await async_remove_config_entry_device(hass, integration, gateway)
    assert not await async_remove_config_entry_device(hass, integration, greenhouse)
    node.publish("status", {"v": 1, "state": "offline"}, retain=True)
    await wait_until(hass, lambda: state_of(hass, TEMPERATURE) == STATE_UNAVAILABLE)
    assert await async_remove_config_entry_device(hass, integration, greenhouse)
    devices.async_remove_device(greenhouse.id)  # what HA does after True
    await hass.config_entries.async_reload(integration.entry_id)
    await hass.async_block_till_done()
    hub = integration.runtime_data
    assert "greenhouse-1" in hub.nodes  # still on the gateway
    assert state_of(hass, TEMPERATURE) is None
    assert (
        devices.async_get_device_by_identifier(
            ("edgeiot", "ha-test-gw.greenhouse-1"), integration.entry_id
        )
        is None
    )
    issue_id = f"node_forgotten_{integration.entry_id}_greenhouse-1"
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None

    # Back online: back in HA, the issue goes.
    node.announce()
    await wait_until(hass, lambda: state_of(hass, TEMPERATURE) == "21.5")
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None

    # Deleted again and the repair confirmed: the gateway removes the node.
    node.publish("status", {"v": 1, "state": "offline"}, retain=True)
    await wait_until(hass, lambda: state_of(hass, TEMPERATURE) == STATE_UNAVAILABLE)
    greenhouse = devices.async_get_device_by_identifier(
        ("edgeiot", "ha-test-gw.greenhouse-1"), integration.entry_id
    )
    assert greenhouse is not None
    assert await async_remove_config_entry_device(hass, integration, greenhouse)
    devices.async_remove_device(greenhouse.id)
    assert await async_setup_component(hass, "repairs", {})
    client = await hass_client()
    response = await client.post(
        "/api/repairs/issues/fix", json={"handler": DOMAIN, "issue_id": issue_id}
    )
    flow = await response.json()
    assert flow["step_id"] == "confirm"
    response = await client.post(f"/api/repairs/issues/fix/{flow['flow_id']}", json={})
    assert (await response.json())["type"] == "create_entry"
    await wait_until(hass, lambda: "greenhouse-1" not in hub.nodes)
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None


async def test_command_errors_become_ha_errors(
    hass: HomeAssistant, integration: MockConfigEntry, gateway_process: GatewayProcess
) -> None:
    """A command the gateway refuses, or one sent while disconnected, raises HomeAssistantError."""
    await _settled(hass)
    hub = integration.runtime_data
    with pytest.raises(HomeAssistantError) as err:
        await hub.async_command("node_action", node_id="greenhouse-1", action="explode")
    assert err.value.translation_key == "command_failed"
    gateway_process.stop()
    await wait_until(hass, lambda: not hub.connected)
    with pytest.raises(HomeAssistantError) as err:
        await hub.async_command("set_field", node_id="greenhouse-1", source_id="vent",
                                field_id="open", value=True)  # fmt: skip
    assert err.value.translation_key == "not_connected"
    gateway_process.start()
    await wait_until(hass, lambda: hub.connected, timeout=20)


async def test_action_target_errors(
    hass: HomeAssistant, integration: MockConfigEntry, config_entry: MockConfigEntry
) -> None:
    """Targets that are not EdgeIoT fields, or gateways that are not loaded, are refused."""
    await _settled(hass)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "set_field", {ATTR_ENTITY_ID: "sun.sun", "value": 1}, blocking=True
        )
    assert err.value.translation_key == "not_a_field_entity"
    other = MockConfigEntry(domain=DOMAIN, unique_id="not-loaded", data=config_entry.data)
    other.add_to_hass(hass)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "backup", {"config_entry_id": other.entry_id}, blocking=True,
            return_response=True,
        )  # fmt: skip
    assert err.value.translation_key == "entry_not_loaded"


async def test_diagnostic_sensors_when_enabled(
    hass: HomeAssistant, integration: MockConfigEntry, node: NodeSimulator
) -> None:
    """Signal strength and last seen (disabled by default) report once enabled."""
    await _settled(hass)
    registry = er.async_get(hass)
    for entity_id in ("sensor.greenhouse_signal_strength", "sensor.greenhouse_last_seen"):
        registry.async_update_entity(entity_id, disabled_by=None)
    await hass.config_entries.async_reload(integration.entry_id)
    await wait_until(hass, lambda: state_of(hass, "sensor.greenhouse_signal_strength") == "-58")
    assert state_of(hass, "sensor.greenhouse_last_seen") not in (None, STATE_UNAVAILABLE, "unknown")
    await hass.services.async_call(
        "switch", "turn_off", {ATTR_ENTITY_ID: "switch.greenhouse_vent_open"}, blocking=True
    )
    assert (await node.next_command())[1] == {"v": 1, "value": False}


async def test_device_trigger_validation(hass: HomeAssistant, integration: MockConfigEntry) -> None:
    """A trigger for an event the node does not declare is refused; unknown devices have none."""
    from homeassistant.components.device_automation.exceptions import (  # noqa: PLC0415
        InvalidDeviceAutomationConfig,
    )

    from custom_components.edgeiot import device_trigger  # noqa: PLC0415

    await _settled(hass)
    device = dr.async_get(hass).async_get_device_by_identifier(
        ("edgeiot", "ha-test-gw.greenhouse-1"), integration.entry_id
    )
    assert device is not None
    config = {"platform": "device", "domain": DOMAIN, "device_id": device.id,
              "type": "exploded", "subtype": "button"}  # fmt: skip
    with pytest.raises(InvalidDeviceAutomationConfig):
        await device_trigger.async_validate_trigger_config(hass, config)
    assert await device_trigger.async_get_triggers(hass, "no-such-device") == []
    gateway = dr.async_get(hass).async_get_device_by_identifier(
        ("edgeiot", "ha-test-gw"), integration.entry_id
    )
    assert gateway is not None
    assert await device_trigger.async_get_triggers(hass, gateway.id) == []
