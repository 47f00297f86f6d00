"""End to end: a CAN bus (slcan adapter on a pty, DBC) → gateway process → HA devices/entities."""

from __future__ import annotations

import asyncio
from pathlib import Path

import cantools
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.edgeiot.const import DOMAIN

from ..gateway.test_can import SlcanAdapter
from ..servers import Mosquitto
from .conftest import GATEWAY_ID, GatewayProcess
from .helpers import state_of, wait_until

DBC = Path(__file__).parents[1] / "can" / "sample.dbc"
DATABASE = cantools.database.load_file(DBC)


async def test_can_bus_in_home_assistant(
    hass: HomeAssistant,
    enable_custom_integrations: None,
    tmp_path: Path,
    mosquitto: Mosquitto,
    socket_enabled: None,
) -> None:
    """DBC nodes are HA devices; a received frame updates a sensor; a number sends a frame."""
    adapter = SlcanAdapter(tmp_path / "ttyCAN0")
    provider = (
        '[[providers]]\ntype = "can"\ninterface = "slcan"\n'
        f'channel = "{adapter.link}"\nbitrate = 500000\ndbc = "{DBC}"\ngateway_node = "DASH"\n'
        "bus_options = { sleep_after_open = 0 }\n"
    )
    gateway = GatewayProcess(tmp_path / "gateway", mosquitto, extra=provider)
    gateway.start()
    entry = MockConfigEntry(domain=DOMAIN, unique_id=GATEWAY_ID, data=gateway.entry_data)
    entry.add_to_hass(hass)
    try:
        assert await asyncio.to_thread(adapter.is_open.wait, 10)
        assert await hass.config_entries.async_setup(entry.entry_id)
        registry = er.async_get(hass)

        def entity(node: str, message: str, signal: str) -> str | None:
            unique_id = f"{GATEWAY_ID}.{node}.{message}.{signal}"
            platform_entries = er.async_entries_for_config_entry(registry, entry.entry_id)
            return next((e.entity_id for e in platform_entries if e.unique_id == unique_id), None)

        status = DATABASE.get_message_by_name("CLIMATE_STATUS")
        frame = status.encode({"Temperature": 21.7, "Humidity": 45, "FanActive": 1, "State": 1,
                               "OutsideTemp": 12})  # fmt: skip
        adapter.emit(status.frame_id, frame)
        temperature = await wait_until(hass, lambda: entity("CLIMATE", "CLIMATE_STATUS",
                                                            "Temperature"))  # fmt: skip
        await wait_until(hass, lambda: state_of(hass, temperature) == "21.7")
        climate = dr.async_get(hass).async_get_device_by_identifier(
            (DOMAIN, f"{GATEWAY_ID}.CLIMATE"), entry.entry_id
        )
        assert climate is not None

        dimmer = entity("DASH", "DASH_LIGHT_CMD", "DimmerCmd")
        assert dimmer is not None
        assert dimmer.startswith("number.")
        await hass.services.async_call(
            "number", "set_value", {ATTR_ENTITY_ID: dimmer, "value": 75.5}, blocking=True
        )
        await wait_until(hass, lambda: adapter.sent)
        sent = adapter.sent[0]
        command = DATABASE.get_message_by_name("DASH_LIGHT_CMD")
        assert sent.arbitration_id == command.frame_id
        assert command.decode(sent.data)["DimmerCmd"] == 75.5
    finally:
        await hass.config_entries.async_unload(entry.entry_id)
        gateway.stop()
        adapter.close()
