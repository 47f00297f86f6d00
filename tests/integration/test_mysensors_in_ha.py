"""End to end: a MySensors Ethernet gateway → EdgeIoT gateway process → HA devices and entities."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.edgeiot.const import DOMAIN
from edgeiot_gateway.providers.mysensors.protocol import Presentation as S

from ..gateway.firmware_files import intel_hex
from ..gateway.test_mysensors import TcpSimulator, present
from ..servers import Mosquitto
from .conftest import GATEWAY_ID, GatewayProcess
from .helpers import state_of, wait_until


@pytest.fixture
async def ethernet_gateway(socket_enabled: None) -> AsyncIterator[TcpSimulator]:
    """A simulated MySensors Ethernet gateway on loopback."""
    sim = await TcpSimulator().start()
    yield sim
    await sim.close()


@pytest.fixture
async def entry(
    hass: HomeAssistant,
    enable_custom_integrations: None,
    tmp_path: Path,
    mosquitto: Mosquitto,
    ethernet_gateway: TcpSimulator,
) -> AsyncIterator[MockConfigEntry]:
    """A gateway process with a MySensors provider on the simulated Ethernet gateway, loaded in
    HA; the provider is connected."""
    provider = (
        '[[providers]]\ntype = "mysensors"\ntransport = "tcp"\nhost = "127.0.0.1"\n'
        f"port = {ethernet_gateway.port}\nannounce_delay = 0.05\n"
    )
    gateway = GatewayProcess(tmp_path / "gateway", mosquitto, extra=provider)
    gateway.start()
    config_entry = MockConfigEntry(domain=DOMAIN, unique_id=GATEWAY_ID, data=gateway.entry_data)
    config_entry.add_to_hass(hass)
    try:
        assert await hass.config_entries.async_setup(config_entry.entry_id)
        await wait_until(hass, lambda: ethernet_gateway.connections == 1)
        yield config_entry
    finally:
        await hass.config_entries.async_unload(config_entry.entry_id)
        gateway.stop()


async def test_mysensors_node_in_home_assistant(
    hass: HomeAssistant, entry: MockConfigEntry, ethernet_gateway: TcpSimulator
) -> None:
    """A presented MySensors node is an HA device; its sensor updates and its relay switches."""
    await present(ethernet_gateway, 5, "Garden", "1.1",
                  (1, S.S_TEMP, "Soil"), (3, S.S_BINARY, "Pump"))  # fmt: skip
    ethernet_gateway.send("5;1;1;0;0;14.5", "5;3;1;0;2;0")
    await wait_until(hass, lambda: state_of(hass, "sensor.garden_5_soil") == "14.5")
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, f"{GATEWAY_ID}.ms-5"), entry.entry_id
    )
    assert device is not None
    assert (device.name, device.sw_version) == ("Garden 5", "1.1")

    await hass.services.async_call(
        "switch", "turn_on", {ATTR_ENTITY_ID: "switch.garden_5_pump"}, blocking=True
    )
    line = await ethernet_gateway.expect("5;3;1;")
    assert line.endswith(";2;1")
    ethernet_gateway.send("5;3;1;0;2;1")  # the node's echo confirms the value
    await wait_until(hass, lambda: state_of(hass, "switch.garden_5_pump") == "on")


async def test_mysensors_firmware_versions(
    hass: HomeAssistant, entry: MockConfigEntry, tmp_path: Path, ethernet_gateway: TcpSimulator
) -> None:
    """A MySensors node running firmware type 7 version 2 gets an update entity: the newest
    library entry of type 7 is its latest version, shown as <type>.<version>; other types and
    older versions are not offered; a version not in the library cannot be installed."""
    folder = (tmp_path / "firmware").resolve()
    folder.mkdir()
    hass.config.allowlist_external_dirs = {str(folder)}
    update = "update.garden_5_firmware"
    await present(ethernet_gateway, 5, "Garden", "7.2", (1, S.S_TEMP, "Soil"))
    await wait_until(hass, lambda: state_of(hass, update) == "off")
    for number, (kind, version) in enumerate([(7, 3), (7, 1), (8, 9)]):
        (folder / f"{number}.hex").write_bytes(intel_hex(bytes([number]) * 32))
        await hass.services.async_call(
            DOMAIN, "upload_firmware",
            {"path": str(folder / f"{number}.hex"), "name": "garden", "version": f"v{version}",
             "target": "mysensors", "mysensors_type": kind, "mysensors_version": version,
             "release_notes": f"type {kind} version {version}"},
            blocking=True,
        )  # fmt: skip
    state = hass.states.get(update)
    assert state is not None
    assert (state.state, state.attributes["installed_version"]) == ("on", "7.2")
    assert state.attributes["latest_version"] == "7.3"
    with pytest.raises(ServiceValidationError, match=r"no version 7\.9 that fits"):
        await hass.services.async_call(
            "update", "install", {ATTR_ENTITY_ID: update, "version": "7.9"}, blocking=True
        )
    assert not any(
        e.get("node_id") for e in entry.runtime_data.firmware.jobs.values()
    )  # nothing was started
