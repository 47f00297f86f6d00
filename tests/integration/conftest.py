"""Fixtures: a real gateway process on a real broker, and the integration set up against it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.edgeiot import hub as hub_module
from custom_components.edgeiot.const import DOMAIN

from ..gateway.harness import NodeSimulator
from ..servers import LOOPBACK, Mosquitto, free_port
from .fake_gateway import FAKE_ID, FakeGateway, running_fake_gateway
from .helpers import wait_until

GATEWAY_ID = "ha-test-gw"


class GatewayProcess:
    """`python -m edgeiot_gateway` with a TOML config, restartable on the same port."""

    def __init__(
        self, workdir: Path, broker: Mosquitto, gateway_id: str = GATEWAY_ID, extra: str = ""
    ) -> None:
        self.workdir = workdir
        self.gateway_id = gateway_id
        self.host = LOOPBACK
        self.port = free_port()
        self.config = workdir / "gateway.toml"
        workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f'gateway_id = "{gateway_id}"\ndata_dir = "data"\n'
            f'[api]\nhost = "{LOOPBACK}"\nport = {self.port}\n'
            "advertise = false\nstatus_interval = 0.2\n"
            "[store]\nflush_interval = 0.05\n"
            f'[[providers]]\ntype = "mqtt"\nhost = "{broker.host}"\nport = {broker.port}\n'
            "keepalive = 5\n" + extra
        )
        self.proc: subprocess.Popen[str] | None = None
        self.log = workdir / "gateway.log"

    @property
    def token(self) -> str:
        return (self.workdir / "data" / "api_token").read_text().strip()

    @property
    def entry_data(self) -> dict[str, Any]:
        return {CONF_HOST: self.host, CONF_PORT: self.port, CONF_TOKEN: self.token}

    def start(self, *, wait_connected: bool = True) -> None:
        log = self.log.open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgeiot_gateway", "--config", str(self.config)],
            stdout=subprocess.PIPE, stderr=log, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if "ready on API port" in line:
                break
        else:
            raise AssertionError(f"gateway exited {self.proc.wait()}: {self.log.read_text()}")
        if wait_connected:
            self._wait_mqtt_subscribed()

    def _wait_mqtt_subscribed(self) -> None:
        """Until its MQTT provider is subscribed, a node's (unretained) state would be missed."""
        request = urllib.request.Request(
            f"http://{self.host}:{self.port}/api/v1/info",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with urllib.request.urlopen(request, timeout=2) as response:
                if all(p["connected"] for p in json.load(response)["providers"]):
                    return
            time.sleep(0.02)
        raise AssertionError(f"gateway never connected to the broker: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.communicate(timeout=15)
            self.proc = None


@pytest.fixture
def gateway_process(
    tmp_path: Path, mosquitto: Mosquitto, socket_enabled: None
) -> Iterator[GatewayProcess]:
    """A running gateway process connected to the test broker."""
    gateway = GatewayProcess(tmp_path / "gateway", mosquitto)
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture
def node(mosquitto: Mosquitto, gateway_process: GatewayProcess) -> Iterator[NodeSimulator]:
    """A simulated node, announced and online (the gateway retains it)."""
    sim = NodeSimulator(mosquitto, "greenhouse-1").start()
    sim.announce()
    sim.publish("heartbeat", {"v": 1, "battery": 91, "rssi": -58})
    sim.state("climate", temperature=21.5, humidity=48)
    sim.state("vent", open=False, position=30, mode="auto", label="north")
    yield sim
    sim.stop()


LAB_ANNOUNCE = {
    "v": 1,
    "name": "Lab",
    "kind": "bench-node",
    "actions": ["calibrate"],
    "sources": [
        {
            "id": "probe",
            "name": "Probe",
            "fields": [
                {"id": "leak", "name": "Leak", "type": "bool", "device_class": "moisture"},
                {"id": "door", "name": "Door", "type": "bool"},
                {"id": "phase", "name": "Phase", "type": "enum", "options": ["idle", "run"]},
                {"id": "note", "name": "Note", "type": "string"},
                {"id": "ph", "name": "pH", "type": "float", "device_class": "ph_level"},
                {
                    "id": "setpoint",
                    "name": "Setpoint",
                    "type": "float",
                    "unit": "°C",
                    "writable": True,
                    "device_class": "temperature",
                },
            ],
        }
    ],
}


@pytest.fixture
def lab(mosquitto: Mosquitto, gateway_process: GatewayProcess) -> Iterator[NodeSimulator]:
    """A second node with read-only bool/enum/string fields and a custom action."""
    sim = NodeSimulator(mosquitto, "lab-3", LAB_ANNOUNCE).start()
    sim.announce()
    sim.state("probe", leak=True, door=False, phase="run", note="ok", ph=7.2, setpoint=21.5)
    yield sim
    sim.stop()


@pytest.fixture
def config_entry(gateway_process: GatewayProcess) -> MockConfigEntry:
    """An EdgeIoT entry pointing at the gateway process."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=f"EdgeIoT {GATEWAY_ID}",
        unique_id=GATEWAY_ID,
        data=gateway_process.entry_data,
    )


@pytest.fixture
async def integration(
    hass: HomeAssistant,
    enable_custom_integrations: None,
    config_entry: MockConfigEntry,
    node: NodeSimulator,
    lab: NodeSimulator,
) -> AsyncIterator[MockConfigEntry]:
    """The integration loaded against the gateway with one announced node."""

    config_entry.add_to_hass(hass)
    await wait_until(hass, lambda: True)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    yield config_entry
    await hass.config_entries.async_unload(config_entry.entry_id)
    await hass.async_block_till_done()


@pytest.fixture
async def fake(socket_enabled: None) -> AsyncIterator[FakeGateway]:
    """A scripted gateway endpoint (fake_gateway.py) for failure paths."""
    async with running_fake_gateway() as gateway:
        yield gateway


@pytest.fixture
async def fake_entry(
    hass: HomeAssistant, enable_custom_integrations: None, fake: FakeGateway
) -> AsyncIterator[MockConfigEntry]:
    """The integration loaded against the fake gateway, reconnecting fast."""
    config_entry = MockConfigEntry(domain=DOMAIN, unique_id=FAKE_ID, data=fake.entry_data)
    config_entry.add_to_hass(hass)
    with patch.object(hub_module, "RECONNECT_MIN", 0.05):
        assert await hass.config_entries.async_setup(config_entry.entry_id)
        await hass.async_block_till_done()
        yield config_entry
        await hass.config_entries.async_unload(config_entry.entry_id)
