"""The API under load: heavy commands never stall the gateway; slow clients are paced or cut off."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

from edgeiot_gateway.api.ws import COALESCE_BYTES
from edgeiot_gateway.gateway import Gateway

from ..servers import Mosquitto
from .harness import ANNOUNCE, ApiClient, NodeSimulator, gateway_config, start_gateway, wait_for

NODES = 300
BACKUPS = 150
# Backup results sent at a time to a client that does not read, until the loopback socket
# buffers are full and the gateway waits for it (it is "behind").
PADDING_BACKUPS = 10


def big_backup(count: int = NODES) -> dict[str, Any]:
    """A backup of `count` nodes like the announce vector, each with two values."""
    definition = {key: value for key, value in ANNOUNCE.items() if key != "v"}
    return {
        "format": "edgeiot-backup",
        "version": 1,
        "gateway_id": "test-gw",
        "nodes": [
            definition | {"id": f"node-{index:03}", "provider": "mqtt"} for index in range(count)
        ],
        "values": [
            {
                "node_id": f"node-{index:03}",
                "source_id": "climate",
                "field_id": field_id,
                "value": value,
                "updated": 1764240000.0,
            }
            for index in range(count)
            for field_id, value in (("temperature", 20.5), ("humidity", 40))
        ],
    }


async def _restore_big(api: ApiClient) -> None:
    result = await api.command("restore", backup=big_backup())
    assert result["result"] == {"nodes": NODES, "automations": 0}


async def _send_corked(ws: aiohttp.ClientWebSocketResponse, texts: list[str]) -> None:
    """Send frames as one TCP segment, so the gateway reads them all at once (pipelining)."""
    sock = ws.get_extra_info("socket")  # an asyncio TransportSocket
    assert sock is not None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    for text in texts:
        await ws.send_str(text)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)


def _backup_commands(count: int, first: int = 0) -> list[str]:
    return [
        f'{{"message_id": {index}, "command": "backup"}}' for index in range(first, first + count)
    ]


async def _drain(client: ApiClient, quiet: float = 0.5) -> list[dict[str, Any]]:
    """Every event received until none has come for `quiet` seconds."""
    assert client.ws is not None
    events = list(client.events)
    while True:
        try:
            message = await client.ws.receive_json(timeout=quiet)
        except TimeoutError:
            return events
        assert message["type"] == "event"
        events.append(message["event"])


class Publisher(threading.Thread):
    """Publishes a new temperature from the simulated node every `interval` seconds."""

    def __init__(self, node: NodeSimulator, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.node, self.interval = node, interval
        self.stopping = threading.Event()
        self.sent = 0

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            self.sent += 1
            self.node.state("climate", temperature=self.sent / 10)


async def test_pipelined_backups_do_not_stall_the_gateway(
    gateway: Gateway, api: ApiClient, node: NodeSimulator
) -> None:
    """150 pipelined backups of a 300-node gateway: MQTT, /health and events go on meanwhile.

    Node messages are handled (by the gateway's clock) between the first and the last backup,
    no node goes offline (MQTT stays connected), and every backup is whole. The /health
    latencies are printed (bench/api_load.py measures them on a quiet machine).
    """
    await _restore_big(api)
    node.announce()
    await wait_for(lambda: (n := gateway.processor.nodes.get("greenhouse-1")) and n.online)
    assert gateway.api is not None
    assert gateway.api.port is not None
    listener = await ApiClient(gateway.api.port, gateway.token).connect()
    await listener.command("start_listening")
    publisher = Publisher(node)
    publisher.start()
    latencies: list[float] = []
    done = asyncio.Event()

    async def poll_health() -> None:
        while not done.is_set():
            started = time.perf_counter()
            status, _ = await listener.rest("GET", "/health")
            latencies.append(time.perf_counter() - started)
            assert status == 200
            await asyncio.sleep(0.01)

    health = asyncio.create_task(poll_health())
    try:
        assert api.ws is not None
        await _send_corked(api.ws, _backup_commands(BACKUPS))
        created = []
        for index in range(BACKUPS):
            result = await api.ws.receive_json(timeout=60)
            assert (result["message_id"], result["success"]) == (index, True)
            backup = result["result"]["backup"]
            assert len(backup["nodes"]) == NODES + 1
            created.append(backup["created"])
    finally:
        done.set()
        publisher.stopping.set()
        publisher.join()
        await health
    events = await _drain(listener)
    await listener.close()
    updates = [e["updated"] for e in events if e["event"] == "field value"]
    offline = [e for e in events if e["event"] == "node status" and not e["online"]]
    handled_meanwhile = [t for t in updates if created[0] < t < created[-1]]
    print(
        f"\n{BACKUPS} backups in {created[-1] - created[0]:.2f} s; /health max "
        f"{max(latencies) * 1000:.1f} ms, median {statistics.median(latencies) * 1000:.1f} ms "
        f"over {len(latencies)}; {len(handled_meanwhile)} node messages handled meanwhile"
    )
    assert len(handled_meanwhile) >= 3
    assert offline == []
    assert gateway.providers["mqtt"].connected


async def _fall_behind(gateway: Gateway, client: ApiClient) -> int:
    """Send backups that `client` does not read until the gateway waits for it; how many."""
    assert gateway.api is not None
    assert client.ws is not None
    api = gateway.api
    for sent in range(0, 40 * PADDING_BACKUPS, PADDING_BACKUPS):
        await _send_corked(client.ws, _backup_commands(PADDING_BACKUPS, sent))
        with contextlib.suppress(TimeoutError):
            await wait_for(lambda: any(c.outbox.behind for c in api.clients), timeout=1)
            return sent + PADDING_BACKUPS
    raise AssertionError("the client never fell behind")


async def test_slow_listener_gets_latest_field_values(
    gateway: Gateway, api: ApiClient, node: NodeSimulator
) -> None:
    """A listener that falls behind gets each field's latest value, other events all, in order.

    A coalesced value moves to the end of the queue: the last label arrives after the node
    status that was published before it. Coalesced values are counted in the diagnostics.
    """
    await _restore_big(api)
    node.announce()
    await wait_for(lambda: (n := gateway.processor.nodes.get("greenhouse-1")) and n.online)
    await api.command("start_listening")
    padding = await _fall_behind(gateway, api)

    labels = [f"v{index}" for index in range(400)]
    for label in labels[:200]:
        node.state("vent", label=label)
    node.publish("heartbeat", {"v": 1, "battery": 55})
    for label in labels[200:]:
        node.state("vent", label=label)
    await wait_for(lambda: gateway.processor.nodes["greenhouse-1"].field("vent", "label").value
                   == labels[-1], what="last label")  # fmt: skip
    assert gateway.api is not None
    coalesced = gateway.api.coalesced
    assert coalesced > 0

    results = 0
    received: list[dict[str, Any]] = []
    assert api.ws is not None
    last_seen = False  # not "the last event": a `gateway status` may come after it
    while results < padding or not last_seen:
        message = await api.ws.receive_json(timeout=10)
        if message["type"] == "result":
            results += 1
        else:
            received.append(message["event"])
            last_seen = last_seen or message["event"].get("value") == labels[-1]
    got = [e["value"] for e in received if e["event"] == "field value"]
    assert got == sorted(got, key=labels.index)  # in order, each label at most once
    assert len(got) + coalesced == len(labels)
    statuses = [i for i, e in enumerate(received) if e["event"] == "node status"]
    assert [received[i]["battery"] for i in statuses] == [55]
    assert statuses[0] < len(received) - 1  # the last label came after the status
    diagnostics = (await api.command("get_diagnostics"))["result"]
    assert diagnostics["api_coalesced"] == coalesced


async def test_hopelessly_behind_listener_is_cut_off(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Events that cannot be coalesced still bound the queue: the client gets 1013 too slow."""
    config = gateway_config(tmp_path / "gw", mosquitto, api={"max_pending_messages": 100})
    gateway = await start_gateway(config)
    assert gateway.api is not None
    assert gateway.api.port is not None
    api = await ApiClient(gateway.api.port, gateway.token).connect()
    node = NodeSimulator(mosquitto, "greenhouse-1").start()
    try:
        await _restore_big(api)
        node.announce()
        await wait_for(lambda: (n := gateway.processor.nodes.get("greenhouse-1")) and n.online)
        await api.command("start_listening")
        await _fall_behind(gateway, api)
        for battery in range(150):  # each a `node status` event
            node.publish("heartbeat", {"v": 1, "battery": battery % 101, "rssi": -battery})
        await wait_for(lambda: gateway.api is not None and gateway.api.client_count == 0,
                       what="the slow client cut off")  # fmt: skip
        assert gateway.api.errors["too_slow"] == 1
    finally:
        node.stop()
        await api.close()
        await gateway.stop()


async def test_client_that_never_reads_results_is_cut_off(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """Pipelined commands are paced by the client's reading; one that never reads is cut off."""
    config = gateway_config(tmp_path / "gw", mosquitto, api={"send_timeout": 1})
    gateway = await start_gateway(config)
    assert gateway.api is not None
    assert gateway.api.port is not None
    api = await ApiClient(gateway.api.port, gateway.token).connect()
    try:
        await _restore_big(api)
        await _fall_behind(gateway, api)
        await wait_for(lambda: gateway.api is not None and gateway.api.client_count == 0,
                       what="the client cut off")  # fmt: skip
        assert gateway.api.errors["too_slow"] == 1
        status, _ = await api.rest("GET", "/health")
        assert status == 200
    finally:
        await api.close()
        await gateway.stop()


async def test_pipelined_commands_are_paced_by_reading(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """Results never fill more than a quarter of the queue; a client that reads gets them all."""
    config = gateway_config(tmp_path / "gw", mosquitto, api={"max_pending_messages": 100})
    gateway = await start_gateway(config)
    assert gateway.api is not None
    assert gateway.api.port is not None
    api = await ApiClient(gateway.api.port, gateway.token).connect()
    try:
        await _restore_big(api)
        padding = await _fall_behind(gateway, api)
        assert api.ws is not None
        commands = [f'{{"message_id": "d{index}", "command": "get_diagnostics"}}'
                    for index in range(200)]  # fmt: skip
        await _send_corked(api.ws, commands)
        (client,) = gateway.api.clients
        await wait_for(lambda: len(client.outbox) >= 25, what="a quarter of the queue")
        await asyncio.sleep(0.5)
        assert len(client.outbox) <= 25
        for index in range(padding):
            assert (await api.ws.receive_json(timeout=10))["message_id"] == index
        for index in range(200):
            result = await api.ws.receive_json(timeout=10)
            assert (result["message_id"], result["success"]) == (f"d{index}", True)
        assert "too_slow" not in gateway.api.errors
    finally:
        await api.close()
        await gateway.stop()


async def test_coalesced_frames_keep_order_and_size(
    gateway: Gateway, api: ApiClient, node: NodeSimulator
) -> None:
    """With coalesce_messages, a burst arrives in fewer frames than messages, in order, each
    frame a JSON array within COALESCE_BYTES; a connection without it gets one object a frame."""
    plain = await ApiClient.of(gateway)
    try:
        node.announce()
        await wait_for(lambda: (n := gateway.processor.nodes.get("greenhouse-1")) and n.online)
        features = {"coalesce_messages": 1, "future": 1}  # an unknown feature is ignored
        assert (await api.command("supported_features", features=features))["success"]
        for client in (api, plain):
            await client.command("start_listening")
        frames_before = api.frames
        labels = [f"{index:04}" + "x" * 240 for index in range(2000)]  # > COALESCE_BYTES
        for label in labels:
            node.state("vent", label=label)
        for client in (api, plain):
            got: list[str] = []
            while len(got) < len(labels):
                event = await client.wait_event(lambda e: e.get("field_id") == "label")
                got.append(event["value"])
            assert got == labels
        assert plain.arrays == []
        assert api.frames - frames_before < len(labels) // 2
        assert api.arrays
        assert all(len(json.dumps(frame, separators=(",", ":"))) <= COALESCE_BYTES
                   for frame in api.arrays)  # fmt: skip
    finally:
        await plain.close()
