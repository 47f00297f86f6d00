"""The gateway device's own sensors: dropped messages and the InfluxDB recorder's figures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.edgeiot.const import DOMAIN

from ..gateway.harness import NodeSimulator
from ..servers import InfluxDB, Mosquitto
from .conftest import GATEWAY_ID, GatewayProcess
from .helpers import state_of, wait_until

PREFIX = "sensor.edgeiot_gateway_ha_test_gw"


@pytest.fixture
def recording_gateway(
    tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB
) -> Iterator[GatewayProcess]:
    """A gateway process recording to a real influxd."""
    gateway = GatewayProcess(
        tmp_path / "gateway", mosquitto,
        extra=f'[recorder]\nurl = "{influxdb.url}"\nflush_interval = 0.05\n',
    )  # fmt: skip
    gateway.start()
    yield gateway
    gateway.stop()


async def test_recorder_figures_on_gateway_device(
    hass: HomeAssistant,
    enable_custom_integrations: None,
    recording_gateway: GatewayProcess,
    mosquitto: Mosquitto,
    influxdb: InfluxDB,
) -> None:
    """Written points count up; an InfluxDB outage shows as queue and last error, then clears."""
    entry = MockConfigEntry(domain=DOMAIN, unique_id=GATEWAY_ID, data=recording_gateway.entry_data)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    sim = NodeSimulator(mosquitto, "greenhouse-1").start()
    try:
        sim.announce()
        sim.state("climate", temperature=20.0, humidity=40)
        await wait_until(hass, lambda: state_of(hass, f"{PREFIX}_recorder_points_written") == "2")
        assert state_of(hass, f"{PREFIX}_dropped_messages") == "0"
        sim.publish("state/climate", b"not json")
        await wait_until(hass, lambda: state_of(hass, f"{PREFIX}_dropped_messages") == "1")

        influxdb.stop()
        sim.state("climate", temperature=21.0)
        await wait_until(hass, lambda: state_of(hass, f"{PREFIX}_recorder_queue") == "1")
        await wait_until(
            hass, lambda: state_of(hass, f"{PREFIX}_recorder_last_error") not in ("unknown", None)
        )
        influxdb.start()
        await wait_until(hass, lambda: state_of(hass, f"{PREFIX}_recorder_points_written") == "3",
                         timeout=30)  # fmt: skip
        assert state_of(hass, f"{PREFIX}_recorder_queue") == "0"
        assert state_of(hass, f"{PREFIX}_recorder_points_rejected") == "0"

        recording_gateway.stop()
        await wait_until(
            hass, lambda: state_of(hass, f"{PREFIX}_recorder_queue") == STATE_UNAVAILABLE
        )
    finally:
        sim.stop()
        await hass.config_entries.async_unload(entry.entry_id)
