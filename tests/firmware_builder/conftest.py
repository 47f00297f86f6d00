"""Fixtures: the real `edgeiot-firmware` console script run on a small fixture firmware tree."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import struct
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


# MicroPython 1.26.1's ESP32_GENERIC table (partitions-4MiBplus.csv) and its OTA variant's.
TABLE_4MIB_PLUS = [("nvs", 1, 2, 0x9000, 0x6000), ("phy_init", 1, 1, 0xF000, 0x1000),
                   ("factory", 0, 0, 0x10000, 0x1F0000)]  # fmt: skip
TABLE_OTA = [("nvs", 1, 2, 0x9000, 0x4000), ("otadata", 1, 0, 0xD000, 0x2000),
             ("phy_init", 1, 1, 0xF000, 0x1000), ("ota_0", 0, 0x10, 0x10000, 0x180000),
             ("ota_1", 0, 0x11, 0x190000, 0x180000)]  # fmt: skip


def partition_table(rows: list[tuple[str, int, int, int, int]]) -> bytes:
    """A binary partition table as ESP-IDF's gen_esp32part.py writes it (entries, MD5, 0xFF)."""
    table = b"".join(
        struct.pack("<2sBBII16sI", b"\xaa\x50", kind, sub, offset, size, label.encode(), 0)
        for label, kind, sub, offset, size in rows
    )
    table += b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(table).digest()
    return table + b"\xff" * (0xC00 - len(table))


def micropython_base(
    target: str, table: list[tuple[str, int, int, int, int]] | None = None
) -> bytes:
    """A stand-in for MicroPython's firmware .bin: esp8266 one image at 0x0; esp32 from 0x1000
    the bootloader, the partition table at 0x8000 and the app at 0x10000."""
    if target == "esp8266":
        return esp_image("esp8266", 3, 40000)
    flash = bytearray(b"\xff" * 0xF000)
    bootloader = esp_image("esp32", 1, 1024)
    flash[: len(bootloader)] = bootloader
    flash[0x7000:0x7C00] = partition_table(TABLE_4MIB_PLUS if table is None else table)
    return bytes(flash) + esp_image("esp32", 3, 40000)


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
    base = micropython_base(target)
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
