"""What a hub integration offers beyond entities: connectivity, rename sync, configuration URL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.edgeiot import hub as hub_module
from custom_components.edgeiot.const import DOMAIN

from ..gateway.harness import NodeSimulator
from ..servers import Mosquitto
from .conftest import GatewayProcess
from .helpers import state_of, wait_until

GATEWAY_CONNECTED = "binary_sensor.edgeiot_gateway_ha_test_gw_connected"
PROVIDER = "binary_sensor.edgeiot_gateway_ha_test_gw_provider_mqtt"
NODE_ONLINE = "binary_sensor.greenhouse_connectivity"


@pytest.fixture
async def fast_providers(
    hass: HomeAssistant,
    enable_custom_integrations: None,
    config_entry: MockConfigEntry,
    node: NodeSimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[MockConfigEntry]:
    """The integration with the providers' state refreshed every 0.2 s."""
    monkeypatch.setattr(hub_module, "PROVIDER_REFRESH", 0.2)
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    yield config_entry
    await hass.config_entries.async_unload(config_entry.entry_id)


async def test_connectivity_sensors(
    hass: HomeAssistant,
    fast_providers: MockConfigEntry,
    gateway_process: GatewayProcess,
    mosquitto: Mosquitto,
    node: NodeSimulator,
) -> None:
    """Gateway connected, MQTT provider connected and node online follow the real processes."""
    await wait_until(hass, lambda: state_of(hass, NODE_ONLINE) == STATE_ON)
    assert state_of(hass, GATEWAY_CONNECTED) == STATE_ON
    assert state_of(hass, PROVIDER) == STATE_ON

    node.publish("status", {"v": 1, "state": "offline"}, retain=True)
    await wait_until(hass, lambda: state_of(hass, NODE_ONLINE) == STATE_OFF)
    mosquitto.stop()
    await wait_until(hass, lambda: state_of(hass, PROVIDER) == STATE_OFF, timeout=20)
    mosquitto.start()
    await wait_until(hass, lambda: state_of(hass, PROVIDER) == STATE_ON, timeout=20)

    gateway_process.stop()
    await wait_until(hass, lambda: state_of(hass, GATEWAY_CONNECTED) == STATE_OFF)
    assert state_of(hass, PROVIDER) == "unavailable"
    gateway_process.start()
    await wait_until(hass, lambda: state_of(hass, GATEWAY_CONNECTED) == STATE_ON, timeout=20)


async def test_rename_syncs_both_ways(hass: HomeAssistant, integration: MockConfigEntry) -> None:
    """A device renamed in HA renames the node on the gateway, and the other way round."""
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
