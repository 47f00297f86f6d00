"""Never stuck: every connection failure ends in a retry, not a dead listener or a raw error."""

from __future__ import annotations

import asyncio
from unittest.mock import patch

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.edgeiot import client as client_module
from custom_components.edgeiot.const import DOMAIN
from custom_components.edgeiot.helpers import node_identifier

from .fake_gateway import FAKE_ID, FakeGateway, fake_node
from .helpers import state_of, wait_until

TEMP_UID = f"{FAKE_ID}.n1.probe.temp"


def _temp(hass: HomeAssistant) -> str | None:
    entity_id = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, TEMP_UID)
    return None if entity_id is None else state_of(hass, entity_id)


@pytest.mark.parametrize("mode", ["close", "bad_state"])
async def test_reconnect_survives_a_failed_handshake(
    hass: HomeAssistant, fake_entry: MockConfigEntry, fake: FakeGateway, mode: str
) -> None:
    """A socket closed mid-handshake, or a state dump without nodes: back off and retry."""
    assert _temp(hass) == "1.5"
    fake.modes = {2: mode, 3: mode}
    await fake.drop()
    await wait_until(hass, lambda: _temp(hass) == STATE_UNAVAILABLE)
    await wait_until(hass, lambda: fake.connections >= 4 and fake_entry.runtime_data.connected)
    await wait_until(hass, lambda: _temp(hass) == "1.5")


async def test_coalesced_frames_and_an_older_gateway(
    hass: HomeAssistant, fake_entry: MockConfigEntry, fake: FakeGateway
) -> None:
    """Events sent in the frame of the start_listening result are applied after the state; a
    gateway that does not know supported_features still serves one message per frame."""
    commands = [c["command"] for c in fake.commands]
    assert commands[:3] == ["set_api_schema", "supported_features", "start_listening"]
    fake.modes = {2: "coalesce"}
    fake.unknown = {"supported_features"}
    fake.after_state = [{"event": "field value", "node_id": "n1", "source_id": "probe",
                         "field_id": "temp", "value": 9.5, "updated": 2.0}]  # fmt: skip
    await fake.drop()
    await wait_until(hass, lambda: fake.connections == 2 and _temp(hass) == "9.5")
    assert fake_entry.runtime_data.connected


async def test_a_non_object_in_a_coalesced_frame_is_dropped(
    hass: HomeAssistant,
    fake_entry: MockConfigEntry,
    fake: FakeGateway,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A frame's element that is not a message is logged and skipped; the rest is applied."""
    event = {"event": "field value", "node_id": "n1", "source_id": "probe", "field_id": "temp",
             "value": 7.5, "updated": 3.0}  # fmt: skip
    await fake.send_frame([42, {"type": "event", "event": event}])
    await wait_until(hass, lambda: _temp(hass) == "7.5")
    assert "Dropped a gateway message that is not an object: 42" in caplog.text
    assert fake_entry.runtime_data.connected


async def test_unexpected_reconnect_error_is_retried(
    hass: HomeAssistant,
    fake_entry: MockConfigEntry,
    fake: FakeGateway,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Anything unexpected while reconnecting is logged with its traceback and retried."""
    hub = fake_entry.runtime_data
    real = hub._apply_state
    failures = iter([RuntimeError("boom")])

    def flaky(state: dict[str, object]) -> None:
        if (err := next(failures, None)) is not None:
            raise err
        real(state)

    with patch.object(hub, "_apply_state", flaky):
        await fake.drop()
        await wait_until(hass, lambda: fake.connections >= 3 and hub.connected)
    assert "Unexpected error reconnecting" in caplog.text
    assert "RuntimeError: boom" in caplog.text


async def test_setup_maps_handshake_failures_to_not_ready(
    hass: HomeAssistant, enable_custom_integrations: None, fake: FakeGateway
) -> None:
    """A malformed state dump or a socket closed mid-handshake at setup: retried later."""
    fake.modes = {1: "bad_state", 2: "close"}
    for _ in range(2):
        config_entry = MockConfigEntry(domain=DOMAIN, unique_id=FAKE_ID, data=fake.entry_data)
        config_entry.add_to_hass(hass)
        await hass.config_entries.async_setup(config_entry.entry_id)
        assert config_entry.state is ConfigEntryState.SETUP_RETRY
        await hass.config_entries.async_remove(config_entry.entry_id)


async def test_other_gateway_on_reconnect_raises_repair_and_keeps_devices(
    hass: HomeAssistant, fake_entry: MockConfigEntry, fake: FakeGateway
) -> None:
    """Another gateway answering at the address never takes over; a repair issue says so."""
    issue_id = f"wrong_gateway_{fake_entry.entry_id}"
    fake.gateway_id, fake.nodes = "intruder", []
    await fake.drop()
    await wait_until(hass, lambda: ir.async_get(hass).async_get_issue(DOMAIN, issue_id))
    assert not fake_entry.runtime_data.connected
    assert _temp(hass) == STATE_UNAVAILABLE
    device = dr.async_get(hass).async_get_device_by_identifier(
        node_identifier(FAKE_ID, "n1"), fake_entry.entry_id
    )
    assert device is not None
    assert "n1" in fake_entry.runtime_data.nodes

    fake.gateway_id, fake.nodes = FAKE_ID, [fake_node()]
    await wait_until(hass, lambda: _temp(hass) == "1.5", timeout=20)
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None


async def test_command_timeout_is_a_translated_error(
    hass: HomeAssistant, fake_entry: MockConfigEntry, fake: FakeGateway
) -> None:
    """A command the gateway never answers raises HomeAssistantError, not TimeoutError."""
    fake.ignore = {"node_action"}
    with (
        patch.object(client_module, "COMMAND_TIMEOUT", 0.2),
        pytest.raises(HomeAssistantError) as err,
    ):
        await fake_entry.runtime_data.async_command("node_action", node_id="n1", action="reboot")
    assert err.value.translation_key == "command_timeout"


async def test_command_during_handshake_fails_fast(
    hass: HomeAssistant, fake_entry: MockConfigEntry, fake: FakeGateway
) -> None:
    """While the hub is reconnecting, a command fails at once instead of waiting it out."""
    hub = fake_entry.runtime_data
    fake.modes = {2: "stall"}
    await fake.drop()
    await wait_until(hass, lambda: fake.connections == 2)
    await wait_until(
        hass, lambda: any(c["command"] == "start_listening" for c in fake.commands[2:])
    )
    async with asyncio.timeout(2):
        with pytest.raises(HomeAssistantError) as err:
            await hub.async_command("node_action", node_id="n1", action="reboot")
    assert err.value.translation_key == "not_connected"
    fake.release.set()
    await wait_until(hass, lambda: hub.connected)


async def test_stale_nodes_and_fields_are_pruned_at_setup(
    hass: HomeAssistant, enable_custom_integrations: None, fake: FakeGateway
) -> None:
    """Nodes and fields removed on the gateway while HA was down are gone after setup."""
    fake.nodes = [fake_node("n1"), fake_node("n2")]
    config_entry = MockConfigEntry(domain=DOMAIN, unique_id=FAKE_ID, data=fake.entry_data)
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(config_entry.entry_id)
    devices, entities = dr.async_get(hass), er.async_get(hass)
    assert entities.async_get_entity_id("sensor", DOMAIN, TEMP_UID)

    other = {"id": "hum", "name": "Hum", "type": "int", "writable": False, "value": 40}
    fake.nodes = [fake_node("n1", sources=[{"id": "probe", "name": "Probe", "fields": [other]}])]
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    assert (
        devices.async_get_device_by_identifier(
            node_identifier(FAKE_ID, "n2"), config_entry.entry_id
        )
        is None
    )
    assert entities.async_get_entity_id("sensor", DOMAIN, TEMP_UID) is None
    assert entities.async_get_entity_id("sensor", DOMAIN, f"{FAKE_ID}.n1.probe.hum")
    await hass.config_entries.async_unload(config_entry.entry_id)


async def test_changed_definition_reaches_existing_entities(
    hass: HomeAssistant, fake_entry: MockConfigEntry, fake: FakeGateway
) -> None:
    """Name, unit, device class, range, options and event types follow a re-announce live."""
    entities = er.async_get(hass)
    node = fake_node()
    node["sources"].append({"id": "knob", "name": "Knob", "events": ["pressed"], "fields": [
        {"id": "level", "name": "Level", "type": "int", "writable": True, "min": 0, "max": 10},
        {"id": "mode", "name": "Mode", "type": "enum", "writable": True, "options": ["a", "b"]},
    ]})  # fmt: skip
    await fake.send_event({"event": "node updated", "node": node})
    number_uid, select_uid = f"{FAKE_ID}.n1.knob.level", f"{FAKE_ID}.n1.knob.mode"
    await wait_until(hass, lambda: entities.async_get_entity_id("select", DOMAIN, select_uid))
    temp_id = entities.async_get_entity_id("sensor", DOMAIN, TEMP_UID)
    number_id = entities.async_get_entity_id("number", DOMAIN, number_uid)
    select_id = entities.async_get_entity_id("select", DOMAIN, select_uid)
    event_id = entities.async_get_entity_id("event", DOMAIN, f"{FAKE_ID}.n1.events:knob")
    assert temp_id
    assert number_id
    assert select_id
    assert event_id

    probe = node["sources"][0]["fields"][0]
    probe.update(name="Water", unit="°F", device_class=None, value=40.0)
    level, mode = node["sources"][1]["fields"]
    level.update(max=50, step=5)
    mode.update(options=["a", "b", "c"])
    node["sources"][1]["events"] = ["pressed", "held"]
    await fake.send_event({"event": "node updated", "node": node})

    def updated() -> bool:
        temp, number = hass.states.get(temp_id), hass.states.get(number_id)
        select, event = hass.states.get(select_id), hass.states.get(event_id)
        return bool(
            temp and temp.attributes.get("unit_of_measurement") == "°F"
            and "device_class" not in temp.attributes
            and number and number.attributes["max"] == 50 and number.attributes["step"] == 5
            and select and select.attributes["options"] == ["a", "b", "c"]
            and event and event.attributes["event_types"] == ["pressed", "held"]
        )  # fmt: skip

    await wait_until(hass, updated)
    registry_entry = entities.async_get(temp_id)
    assert registry_entry is not None
    assert registry_entry.original_name == "Probe water"
    assert hass.states.get(temp_id).state == "40.0"  # type: ignore[union-attr]

    # A field that disappears takes its entity along.
    del node["sources"][1]["fields"][1]
    await fake.send_event({"event": "node updated", "node": node})
    await wait_until(
        hass, lambda: entities.async_get_entity_id("select", DOMAIN, select_uid) is None
    )
    assert hass.states.get(select_id) is None


async def test_entity_keys_cannot_collide_within_a_node(
    hass: HomeAssistant, fake_entry: MockConfigEntry, fake: FakeGateway
) -> None:
    """A source named `action` next to an action, a field named `events` next to events."""
    sensor = {"type": "int", "writable": False, "value": 1}
    node = fake_node("n2", actions=["reboot"], sources=[
        {"id": "action", "name": "Action", "fields": [{"id": "reboot", **sensor}]},
        {"id": "knob", "name": "Knob", "events": ["pressed"],
         "fields": [{"id": "events", **sensor}]},
    ])  # fmt: skip
    await fake.send_event({"event": "node added", "node": node})
    entities = er.async_get(hass)
    wanted = [("sensor", "action.reboot"), ("button", "action:reboot"),
              ("sensor", "knob.events"), ("event", "events:knob")]  # fmt: skip
    for domain, key in wanted:
        uid = f"{FAKE_ID}.n2.{key}"
        await wait_until(hass, lambda d=domain, u=uid: entities.async_get_entity_id(d, DOMAIN, u))
