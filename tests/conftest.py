"""Shared fixtures: real servers and the HA custom-integration switch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# Import this repository's custom_components before the HA harness mounts its own testing config,
# so HA's loader finds EdgeIoT there.
import custom_components  # noqa: F401

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
