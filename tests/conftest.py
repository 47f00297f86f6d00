"""Shared fixtures: real servers and the HA custom-integration switch."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

# Import this repository's custom_components before the HA harness mounts its own testing config,
# so HA's loader finds EdgeIoT there.
import custom_components  # noqa: F401
from edgeiot_gateway.gateway import Gateway

from .gateway.harness import gateway_config, start_gateway
from .servers import InfluxDB, Mosquitto

pytest_plugins = ["pytest_homeassistant_custom_component"]


@pytest.fixture
def mosquitto(tmp_path: Path, socket_enabled: None) -> Iterator[Mosquitto]:
    """A running Mosquitto broker on a free loopback port (sockets stay loopback-only)."""
    server = Mosquitto(tmp_path / "mosquitto")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def influxdb(tmp_path: Path, socket_enabled: None) -> Iterator[InfluxDB]:
    """A running InfluxDB 1.x server on a free loopback port."""
    server = InfluxDB(tmp_path / "influxdb")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def gateway(tmp_path: Path, mosquitto: Mosquitto) -> AsyncIterator[Gateway]:
    """A running gateway with an MQTT provider on the test broker."""
    gw = await start_gateway(gateway_config(tmp_path / "gw", mosquitto))
    yield gw
    await gw.stop()
