"""Fixtures: the node firmware on MicroPython's unix port, a real broker and a real gateway."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeiot_gateway.gateway import Gateway

from ..gateway.harness import ApiClient
from ..servers import LOOPBACK, Mosquitto, free_port

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware" / "node"


def _script(name: str, *args: str) -> str:
    done = subprocess.run(
        [str(REPO / "script" / name), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def micropython_command() -> tuple[str, str]:
    """The MicroPython command and the MICROPYPATH of the firmware and its libraries."""
    assert _script("micropython", "-c", "import sys; print(sys.implementation.version[:2])") == (
        "(1, 26)"
    )
    lib = _script("micropython-lib")
    return str(REPO / "script" / "micropython"), f".frozen:{FIRMWARE}:{lib}"


@pytest.fixture(scope="session")
def micropython() -> tuple[str, str]:
    return micropython_command()


class NodeProcess:
    """One node firmware run: its config and simulated hardware in a temp dir, its log a file."""

    def __init__(
        self,
        command: tuple[str, str],
        workdir: Path,
        config: dict[str, Any] | str,
        sim: dict[str, Any] | None = None,
    ) -> None:
        self.command, self.workdir = command, workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "config.json"
        text = config if isinstance(config, str) else json.dumps(config)
        self.config_path.write_text(text)
        (workdir / "sim.json").write_text(json.dumps(sim or {}))
        self.log = workdir / "node.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> NodeProcess:
        env = dict(
            os.environ,
            MICROPYPATH=self.command[1],
            EDGEIOT_FS=f"{self.workdir}/",
            EDGEIOT_CONFIG=str(self.config_path),
            EDGEIOT_SIM_STATE=str(self.workdir / "sim.json"),
            EDGEIOT_SIM_PORT=str(self.port),
        )
        # Exit status 3 is the simulated board's reset (edgeiot/sim.py): boot again, like a board.
        loop = 'while :; do "$0" "$1"; rc=$?; [ $rc -eq 3 ] || exit $rc; echo "SIM boot"; done'
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                ["bash", "-c", loop, self.command[0], str(FIRMWARE / "main.py")],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=env,
                start_new_session=True,
            )
        return self

    def control(self, change: dict[str, Any]) -> None:
        """Change the simulated hardware (edgeiot/sim.py)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(json.dumps(change).encode(), (LOOPBACK, self.port))

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_log(self, pattern: str, timeout: float = 10, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(re.findall(pattern, self.text(), re.MULTILINE)) >= count:
                return
            assert self.proc is not None
            if self.proc.poll() is not None:
                break
            await asyncio.sleep(0.02)
        raise AssertionError(f"{pattern!r} not in the node's log:\n{self.text()}")

    def kill(self) -> None:
        """SIGKILL: the TCP connection drops without DISCONNECT (the broker sends the Last Will)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()


def node_config(broker: Mosquitto, *drivers: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "node_id": "fw-1",
        "name": "Firmware node",
        "heartbeat_interval": 2,
        "broker": {"host": broker.host, "port": broker.port, "keepalive": 5},
        "drivers": list(drivers),
        **extra,
    }


@pytest.fixture
async def api(gateway: Gateway) -> AsyncIterator[ApiClient]:
    client = await ApiClient.of(gateway)
    await client.command("start_listening")
    yield client
    await client.close()


@pytest.fixture
def run_node(micropython: tuple[str, str], tmp_path: Path) -> Iterator[Any]:
    """run_node(config, sim=None) starts a node firmware process, stopped after the test."""
    nodes: list[NodeProcess] = []

    def start(config: dict[str, Any] | str, sim: dict[str, Any] | None = None) -> NodeProcess:
        node = NodeProcess(micropython, tmp_path / f"node{len(nodes)}", config, sim).start()
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()
