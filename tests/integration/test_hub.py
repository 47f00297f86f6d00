"""What a hub integration offers beyond entities: connectivity, rename sync, configuration URL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from homeassistant.components import system_health
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.icon import async_get_icons
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.edgeiot import logbook
from custom_components.edgeiot.const import DOMAIN

from ..gateway.harness import NodeSimulator
from ..servers import Mosquitto
from .conftest import GatewayProcess
from .helpers import state_of, wait_until

GATEWAY_CONNECTED = "binary_sensor.edgeiot_gateway_ha_test_gw_connected"
PROVIDER = "binary_sensor.edgeiot_gateway_ha_test_gw_provider_mqtt"
NODE_ONLINE = "binary_sensor.greenhouse_connectivity"


@pytest.fixture
async def slow_status(
    hass: HomeAssistant,
    enable_custom_integrations: None,
    tmp_path: Path,
    mosquitto: Mosquitto,
    socket_enabled: None,
) -> AsyncIterator[tuple[GatewayProcess, MockConfigEntry]]:
    """A gateway whose periodic status tick is an hour: only pushed changes can arrive."""
    gateway = GatewayProcess(tmp_path / "slow", mosquitto)
    gateway.config.write_text(
        gateway.config.read_text().replace("status_interval = 0.2", "status_interval = 3600")
    )
    gateway.start()
    entry = MockConfigEntry(
        domain=DOMAIN, unique_id=gateway.gateway_id, data=gateway.entry_data, title="gw"
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    yield gateway, entry
    await hass.config_entries.async_unload(entry.entry_id)
    gateway.stop()


async def test_connectivity_sensors(
    hass: HomeAssistant,
    slow_status: tuple[GatewayProcess, MockConfigEntry],
    mosquitto: Mosquitto,
) -> None:
    """Gateway connected and MQTT provider connected follow the real processes, pushed by the
    gateway's `gateway status` event within seconds (no polling: the status tick is an hour)."""
    gateway_process, _entry = slow_status
    await wait_until(hass, lambda: state_of(hass, PROVIDER) == STATE_ON)
    assert state_of(hass, GATEWAY_CONNECTED) == STATE_ON

    mosquitto.stop()
    await wait_until(hass, lambda: state_of(hass, PROVIDER) == STATE_OFF, timeout=5)
    mosquitto.start()
    await wait_until(hass, lambda: state_of(hass, PROVIDER) == STATE_ON, timeout=15)

    gateway_process.stop()
    await wait_until(hass, lambda: state_of(hass, GATEWAY_CONNECTED) == STATE_OFF)
    assert state_of(hass, PROVIDER) == "unavailable"
    gateway_process.start()
    await wait_until(hass, lambda: state_of(hass, GATEWAY_CONNECTED) == STATE_ON, timeout=20)


async def test_node_online_sensor(
    hass: HomeAssistant, integration: MockConfigEntry, node: NodeSimulator
) -> None:
    """A node's connectivity sensor follows its `status` messages."""
    await wait_until(hass, lambda: state_of(hass, NODE_ONLINE) == STATE_ON)
    node.publish("status", {"v": 1, "state": "offline"}, retain=True)
    await wait_until(hass, lambda: state_of(hass, NODE_ONLINE) == STATE_OFF)


async def test_rename_syncs_both_ways(hass: HomeAssistant, integration: MockConfigEntry) -> None:
    """A device renamed in HA renames the node on the gateway, and the other way round."""
    await wait_until(hass, lambda: state_of(hass, "text.greenhouse_vent_label") == "north")
    devices = dr.async_get(hass)
    hub = integration.runtime_data
    device = devices.async_get_device_by_identifier(
        (DOMAIN, "ha-test-gw.greenhouse-1"), integration.entry_id
    )
    assert device is not None
    devices.async_update_device(device.id, name_by_user="Glasshouse")
    await wait_until(hass, lambda: hub.nodes["greenhouse-1"]["name_by_user"] == "Glasshouse")

    await hub.client.command("rename_node", node_id="greenhouse-1", name="Hothouse")

    def renamed() -> bool:
        entry = devices.async_get(device.id)
        return entry is not None and entry.name_by_user == "Hothouse"

    await wait_until(hass, renamed)
    await hub.client.command("rename_node", node_id="greenhouse-1", name=None)
    await wait_until(hass, lambda: (d := devices.async_get(device.id)) and d.name_by_user is None)
    assert hub.nodes["greenhouse-1"]["name_by_user"] is None


async def test_gateway_configuration_url(
    hass: HomeAssistant, integration: MockConfigEntry, gateway_process: GatewayProcess
) -> None:
    """The gateway device links the gateway's own page (no token needed), not a JSON API."""
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, "ha-test-gw"), integration.entry_id
    )
    assert device is not None
    assert device.configuration_url == f"http://{gateway_process.host}:{gateway_process.port}/"


async def test_every_translation_key_has_an_icon(
    hass: HomeAssistant, integration: MockConfigEntry
) -> None:
    """icons.json covers every entity translation key in use (field kinds, counters, actions)."""
    await wait_until(hass, lambda: state_of(hass, "text.greenhouse_vent_label") == "north")
    icons = (await async_get_icons(hass, "entity", [DOMAIN]))[DOMAIN]
    used = {
        (entry.domain, entry.translation_key)
        for entry in er.async_entries_for_config_entry(er.async_get(hass), integration.entry_id)
        if entry.translation_key
    }
    assert ("switch", "field") in used
    assert {(domain, key) for domain, key in used if key not in icons.get(domain, {})} == set()
    assert icons["switch"]["field"]["state"]["on"] == "mdi:toggle-switch-variant"


async def test_system_health(hass: HomeAssistant, integration: MockConfigEntry) -> None:
    """Reachability, version, nodes online and drop counters of the gateway."""
    await wait_until(hass, lambda: state_of(hass, "text.greenhouse_vent_label") == "north")
    assert await async_setup_component(hass, "system_health", {})
    await hass.async_block_till_done()
    info = (await system_health.get_info(hass))[DOMAIN]
    assert info["reachable"] == "ok"
    assert info["connected"] is True
    assert info["version"] == integration.runtime_data.gateway["version"]
    assert info["nodes"] == "2 online / 2"
    assert info["dropped"] == 0
    assert info["recorder_queue"] == "off"


async def test_logbook_describes_node_events(
    hass: HomeAssistant, integration: MockConfigEntry
) -> None:
    """An edgeiot_event reads as the device's name and the source's event."""
    await wait_until(hass, lambda: state_of(hass, "text.greenhouse_vent_label") == "north")
    described: dict[str, Callable[[Event], dict[str, str]]] = {}
    logbook.async_describe_events(hass, lambda _d, event, fn: described.setdefault(event, fn))
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, "ha-test-gw.greenhouse-1"), integration.entry_id
    )
    assert device is not None
    data = {"device_id": device.id, "node_id": "greenhouse-1", "source_id": "button",
            "event_type": "pressed", "data": {}}  # fmt: skip
    entry = described["edgeiot_event"](Event("edgeiot_event", data))
    assert entry == {"name": "Greenhouse", "message": "button: event pressed"}
