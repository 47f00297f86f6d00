"""Fixtures: the real `edgeiot-firmware` console script run on a small fixture firmware tree."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edgeiot_gateway.nodefw.cli import main

from ..gateway.firmware_files import esp_image

HERE = Path(__file__).parent
SOURCE = HERE / "node"  # a fixture firmware: boot.py, main.py and an edgeiot package
CLI = Path(sys.executable).parent / "edgeiot-firmware"
SECRETS = WIFI_PASSWORD, BROKER_USER, BROKER_PASSWORD = ("wifi-Secret-7731", "kitchen-login",
                                                        "mqtt-Secret-9902")  # fmt: skip


def node_config(**changes: Any) -> dict[str, Any]:
    """A node config of the schema the runtime reads, with every secret set."""
    return {
        "node_id": "kitchen-1",
        "name": "Kitchen",
        "heartbeat_interval": 30,
        "wifi": {"ssid": "home", "password": WIFI_PASSWORD},
        "broker": {"host": "192.0.2.10", "port": 1883, "user": BROKER_USER,
                   "password": BROKER_PASSWORD},
        "drivers": [{"id": "relay", "type": "relay", "pin": 5},
                    {"id": "climate", "type": "dht22", "pin": 4, "interval": 60}],
    } | changes  # fmt: skip


def run_cli(*args: str | Path, console: bool = False) -> subprocess.CompletedProcess[str]:
    """`edgeiot-firmware` in this process, or (`console`) the console script in a subprocess."""
    argv = [*map(str, args)]
    if console:
        return subprocess.run(
            [str(CLI), *argv], capture_output=True, text=True, timeout=120, check=False
        )
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


@dataclass
class Built:
    target: str
    out: Path
    base: bytes
    config: dict[str, Any]
    result: subprocess.CompletedProcess[str]

    @property
    def manifest(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((self.out / "manifest.json").read_text())
        return loaded

    def read(self, name: str) -> bytes:
        return (self.out / name).read_bytes()


def build(
    tmp: Path, target: str, config: dict[str, Any] | None = None, console: bool = False
) -> Built:
    """Build `target` from the fixture tree with a synthetic MicroPython base image."""
    tmp.mkdir(parents=True, exist_ok=True)
    config = node_config() if config is None else config
    (tmp / "node.json").write_text(json.dumps(config))
    base = esp_image(target, 3, 40000)
    (tmp / "micropython.bin").write_bytes(base)
    args = ("build", "--config", tmp / "node.json", "--target", target, "--src", SOURCE,
            "--base", tmp / "micropython.bin", "--out", tmp / "out")  # fmt: skip
    result = run_cli(*args, console=console)
    return Built(target, tmp / "out", base, config, result)


@pytest.fixture(scope="module", params=["esp32", "esp8266"])
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """One build per target by the console script, shared by a module's tests."""
    target: str = request.param
    done = build(tmp_path_factory.mktemp(f"build-{target}"), target, console=True)
    assert done.result.returncode == 0, done.result.stderr
    return done
