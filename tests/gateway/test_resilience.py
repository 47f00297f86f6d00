"""Broker restarts, standalone processes and several gateways on one broker."""

from __future__ import annotations

import asyncio
import json
import queue
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgeiot_gateway.gateway import Gateway

from ..servers import Mosquitto
from .harness import NodeSimulator, gateway_config, start_gateway, wait_for

COMMANDS = 60


async def test_broker_restart_loses_no_command(
    gateway: Gateway, node: NodeSimulator, mosquitto: Mosquitto
) -> None:
    """QoS-1 commands sent before, during and after a broker restart all reach the node."""
    node.announce()
    await wait_for(lambda: "greenhouse-1" in gateway.processor.nodes, what="announce")
    sent: list[str] = []

    async def send(count: int) -> None:
        for _ in range(count):
            label = f"cmd-{len(sent)}"
            await gateway.commands.set_field("greenhouse-1", "vent", "label", label)
            sent.append(label)

    await send(COMMANDS // 3)
    mosquitto.stop()
    await wait_for(lambda: not gateway.providers["mqtt"].connected, what="disconnect")
    await send(COMMANDS // 3)  # queued by the gateway's session while the broker is down
    mosquitto.start()
    await send(COMMANDS - len(sent))

    received: set[str] = set()
    while received != set(sent):
        topic, payload = await node.next_command(timeout=20)
        assert topic == "edgeiot/v1/greenhouse-1/set/vent/label"
        received.add(payload["value"])
    assert len(sent) == COMMANDS


def _start_process(config: Path) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeiot_gateway", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line)
        if "ready on API port" in line:
            return proc, lines
    raise AssertionError(f"gateway exited {proc.wait()}: {''.join(lines)}")


def _stop_process(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    return out


async def test_standalone_process(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """`python -m edgeiot_gateway --config FILE` prints its token once and stops on SIGTERM."""
    config = tmp_path / "gateway.toml"
    config.write_text(
        'gateway_id = "edge-1"\ndata_dir = "data"\n'
        '[api]\nhost = "127.0.0.1"\nport = 0\nadvertise = false\n'
        f'[[providers]]\ntype = "mqtt"\nhost = "127.0.0.1"\nport = {mosquitto.port}\n'
    )
    proc, lines = _start_process(config)
    token = (tmp_path / "data" / "api_token").read_text().strip()
    try:
        assert f"API token {token}" in "".join(lines)
        port = int(lines[-1].rsplit(" ", 1)[1])
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/health") as response:
                assert response.status == 200
            headers = {"Authorization": f"Bearer {token}"}
            async with session.get(f"http://127.0.0.1:{port}/api/v1/info", headers=headers) as r:
                assert (await r.json())["gateway_id"] == "edge-1"
    finally:
        _stop_process(proc)

    proc, lines = _start_process(config)
    assert "API token" not in "".join(lines)  # printed on the first start only
    _stop_process(proc)


def test_invalid_config_exits_with_message(tmp_path: Path) -> None:
    """A bad configuration stops the gateway with a clear message and exit code 2."""
    config = tmp_path / "gateway.toml"
    config.write_text('[api]\nport = "eighty"\n')
    result = subprocess.run(
        [sys.executable, "-m", "edgeiot_gateway", "--config", str(config)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "invalid configuration" in result.stderr
    assert "port" in result.stderr


async def test_two_gateways_share_one_broker(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Network mode: gateways with distinct ids keep their own sessions and status topics."""
    statuses: queue.Queue[tuple[str, dict[str, str]]] = queue.Queue()
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="watcher")
    watcher.on_message = lambda _c, _u, m: statuses.put((m.topic, json.loads(m.payload)))
    watcher.connect(mosquitto.host, mosquitto.port)
    watcher.subscribe("edgeiot/v1/$gateway/+/status", qos=1)
    watcher.loop_start()
    a = await start_gateway(gateway_config(tmp_path / "a", mosquitto, gateway_id="gw-a"))
    b = await start_gateway(gateway_config(tmp_path / "b", mosquitto, gateway_id="gw-b"))
    sim = NodeSimulator(mosquitto, "greenhouse-1").start()
    try:
        sim.announce()
        await wait_for(lambda: all("greenhouse-1" in g.processor.nodes for g in (a, b)))
        await a.commands.set_field("greenhouse-1", "vent", "open", True)
        await b.commands.set_field("greenhouse-1", "vent", "open", False)
        values = {(await sim.next_command())[1]["value"] for _ in range(2)}
        assert values == {True, False}
        await a.stop()
        seen: dict[str, str] = {}
        while seen.get("edgeiot/v1/$gateway/gw-a/status") != "offline":
            topic, payload = await asyncio.to_thread(statuses.get, True, 10)
            seen[topic] = payload["state"]
        assert seen["edgeiot/v1/$gateway/gw-b/status"] == "online"
        assert b.providers["mqtt"].connected
    finally:
        sim.stop()
        await b.stop()
        watcher.loop_stop()
        watcher.disconnect()
