"""The MQTT provider runs paho on the event loop: no network thread, batched reads, keepalive."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

import pytest

from edgeiot_gateway.gateway import Gateway
from edgeiot_gateway.providers import mqtt as mqtt_provider

from ..servers import Mosquitto
from .harness import NodeSimulator, gateway_config, start_gateway, wait_for


def _value(gateway: Gateway, field: str) -> object:
    node = gateway.processor.nodes.get("greenhouse-1")
    return node.field("climate", field).value if node is not None else None


async def test_broker_up_after_start(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """start() does not wait for the broker; the provider connects once it is up."""
    mosquitto.stop()
    gateway = await start_gateway(gateway_config(tmp_path / "gw", mosquitto), wait_connected=False)
    sim: NodeSimulator | None = None
    try:
        provider = gateway.providers["mqtt"]
        assert not provider.connected
        assert not [t for t in threading.enumerate() if t.name.startswith("paho")]
        await asyncio.sleep(1.5)  # a failed attempt or two, with backoff
        assert not provider.connected
        mosquitto.start()
        await wait_for(lambda: provider.connected, timeout=15, what="connected")
        sim = NodeSimulator(mosquitto, "greenhouse-1").start()
        sim.announce()
        sim.state("climate", temperature=20.5)
        await wait_for(lambda: _value(gateway, "temperature") == 20.5, what="value")
    finally:
        if sim is not None:
            sim.stop()
        await gateway.stop()


async def test_flood_read_in_small_batches(
    gateway: Gateway, node: NodeSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one packet per readable callback, packets already in the read buffer (which the
    selector cannot see) are still all handled, in order."""
    monkeypatch.setattr(mqtt_provider, "READ_BATCH", 1)
    provider = gateway.providers["mqtt"]
    node.announce()
    node.state("climate", temperature=-1.0)  # after announce and status: all handled once seen
    await wait_for(lambda: _value(gateway, "temperature") == -1.0, what="first value")
    before = provider.diagnostics()["received"]
    count = 500
    for humidity in range(count):
        node.state("climate", humidity=humidity % 100, temperature=float(humidity))
    # Packets stranded in the read buffer would wait for the next keepalive exchange (5 s).
    await wait_for(lambda: _value(gateway, "temperature") == count - 1, 4, "last value")
    assert provider.diagnostics()["received"] - before == count
    assert gateway.drops.total == 0


@pytest.mark.slow
async def test_keepalive_and_dead_broker(gateway: Gateway, mosquitto: Mosquitto) -> None:
    """Idle, the provider keeps its connection (PINGREQ); a broker that stops answering is
    detected by the keepalive, and the provider reconnects when it answers again."""
    provider = gateway.providers["mqtt"]
    assert mosquitto.proc is not None
    deadline = time.monotonic() + 8  # the broker drops a silent client after 1.5 x 5 s
    while time.monotonic() < deadline:
        assert provider.connected
        await asyncio.sleep(0.1)
    mosquitto.proc.send_signal(signal.SIGSTOP)
    try:
        await wait_for(lambda: not provider.connected, timeout=15, what="keepalive timeout")
    finally:
        mosquitto.proc.send_signal(signal.SIGCONT)
    await wait_for(lambda: provider.connected, timeout=20, what="reconnected")


async def test_reader_failure_reconnects(gateway: Gateway, node: NodeSimulator) -> None:
    """An unexpected error while reading drops the connection; after reconnecting, the
    persistent session redelivers the QoS-1 message that was not acknowledged."""
    provider = gateway.providers["mqtt"]
    client = provider._client  # type: ignore[attr-defined]
    node.announce()
    node.state("climate", temperature=-1.0)
    await wait_for(lambda: _value(gateway, "temperature") == -1.0, what="first value")

    def fail_once() -> None:
        del client._packet_read  # back to paho's own
        raise RuntimeError("injected")

    client._packet_read = fail_once
    node.state("climate", temperature=30.0)
    await wait_for(lambda: not provider.connected, what="dropped")
    await wait_for(lambda: _value(gateway, "temperature") == 30.0, timeout=15, what="redelivery")
    await wait_for(lambda: provider.connected, what="reconnected")
