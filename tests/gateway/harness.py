"""Test harness: a simulated EdgeIoT MQTT node, a gateway in-process and an API client."""

from __future__ import annotations

import asyncio
import itertools
import json
import queue
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgeiot_gateway.config import parse_config
from edgeiot_gateway.gateway import Gateway

from ..servers import Mosquitto

PREFIX = "edgeiot/v1"
VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "mqtt.json").read_text())
ANNOUNCE = next(c for c in VECTORS["decode"] if c["name"] == "announce")["payload"]


class NodeSimulator:
    """An EdgeIoT node on MQTT: announces itself, publishes state, receives commands (QoS 1).

    Its session is persistent, so commands published while it (or the broker) is away arrive
    when it is back.
    """

    def __init__(self, broker: Mosquitto, node_id: str, announce: dict[str, Any] | None = None):
        self.node_id = node_id
        self.announce_payload = announce or ANNOUNCE
        self.commands: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.connected = queue.Queue[bool]()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"sim-{node_id}", clean_session=False
        )
        self.client.will_set(self.topic("status"), _json({"v": 1, "state": "offline"}), 1, True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)
        self.broker = broker

    def topic(self, *parts: str) -> str:
        return "/".join((PREFIX, self.node_id, *parts))

    def start(self) -> NodeSimulator:
        self.client.connect(self.broker.host, self.broker.port, keepalive=5)
        self.client.loop_start()
        assert self.connected.get(timeout=5)
        return self

    def stop(self, *, clean: bool = True) -> None:
        if clean:
            self.publish("status", {"v": 1, "state": "offline"}, retain=True)
        self.client.disconnect()
        self.client.loop_stop()

    def crash(self) -> None:
        """Drop the TCP connection without DISCONNECT, so the broker sends the Last Will."""
        sock = self.client.socket()
        self.client.loop_stop()
        if sock is not None:
            sock.close()

    def _on_connect(self, client: mqtt.Client, *_args: Any) -> None:
        client.subscribe(
            [(self.topic("set", "#"), 1), (self.topic("action"), 1), (self.topic("ota"), 1)]
        )
        self.connected.put(True)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.commands.put((msg.topic, json.loads(msg.payload)))

    def publish(self, kind: str, payload: Any, *, retain: bool = False, qos: int = 1) -> None:
        raw = payload if isinstance(payload, bytes) else _json(payload)
        self.client.publish(self.topic(*kind.split("/")), raw, qos=qos, retain=retain)

    def announce(self) -> None:
        self.publish("announce", self.announce_payload, retain=True)
        self.publish("status", {"v": 1, "state": "online"}, retain=True)

    def state(self, source: str, **values: Any) -> None:
        self.publish(f"state/{source}", {"v": 1, "values": values})

    async def next_command(self, timeout: float = 10) -> tuple[str, dict[str, Any]]:
        return await asyncio.to_thread(self.commands.get, True, timeout)


def _json(data: Any) -> bytes:
    return json.dumps(data).encode()


def gateway_config(data_dir: Path, broker: Mosquitto | None, **extra: Any) -> dict[str, Any]:
    """A gateway configuration on loopback with an OS-chosen API port."""
    config: dict[str, Any] = {
        "gateway_id": "test-gw",
        "data_dir": str(data_dir),
        # No zeroconf in tests: its multicast would leave the loopback network.
        "api": {"host": "127.0.0.1", "port": 0, "advertise": False, "status_interval": 0.2},
        "store": {"flush_interval": 0.05},
        "providers": [],
    }
    if broker is not None:
        config["providers"].append(
            {"type": "mqtt", "host": broker.host, "port": broker.port, "keepalive": 5}
        )
    for key, value in extra.items():
        config[key] = value | config.get(key, {}) if isinstance(value, dict) else value
    return config


async def start_gateway(config: dict[str, Any], *, wait_connected: bool = True) -> Gateway:
    """Start a gateway; by default wait until its providers are connected and subscribed."""
    gateway = Gateway(parse_config(config, Path.cwd()))
    await gateway.start()
    if wait_connected:
        await wait_for(lambda: all(p.connected for p in gateway.providers.values()), what="MQTT")
    return gateway


async def wait_for(predicate: Callable[[], Any], timeout: float = 10, what: str = "") -> Any:
    """Poll until predicate() is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        await asyncio.sleep(0.02)
    raise TimeoutError(f"timed out waiting for {what or predicate}")


async def wait_for_async(
    predicate: Callable[[], Awaitable[Any]], timeout: float = 10, what: str = ""
) -> Any:
    """Poll an async predicate until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := await predicate():
            return result
        await asyncio.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what or predicate}")


class ApiClient:
    """A WebSocket + REST client of the gateway API, as the HA integration will be."""

    def __init__(self, port: int, token: str | None) -> None:
        self.base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.session = aiohttp.ClientSession(headers=headers)
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.events: list[dict[str, Any]] = []
        self.version: dict[str, Any] = {}
        self._ids = itertools.count(1)

    @classmethod
    async def of(cls, gateway: Gateway) -> ApiClient:
        """A client connected to a running gateway's API with its token."""
        assert gateway.api is not None
        assert gateway.api.port is not None
        return await cls(gateway.api.port, gateway.token).connect()

    async def connect(self) -> ApiClient:
        self.ws = await self.session.ws_connect(f"{self.base}/api/v1/ws")
        self.version = await self.ws.receive_json(timeout=5)
        return self

    async def send_raw(self, text: str) -> dict[str, Any]:
        assert self.ws is not None
        await self.ws.send_str(text)
        return await self._next_result()

    async def command(self, command: str, **args: Any) -> dict[str, Any]:
        """Send a command and return its result message (events meanwhile are kept)."""
        assert self.ws is not None
        message_id = str(next(self._ids))
        await self.ws.send_json({"message_id": message_id, "command": command, **args})
        result = await self._next_result()
        assert result["message_id"] == message_id
        return result

    async def _next_result(self) -> dict[str, Any]:
        assert self.ws is not None
        while True:
            message = await self.ws.receive_json(timeout=10)
            if message["type"] == "event":
                self.events.append(message["event"])
            else:
                return message

    async def wait_event(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 10
    ) -> dict[str, Any]:
        """The first (already received or next) event for which match() is true."""
        assert self.ws is not None
        for event in self.events:
            if match(event):
                self.events.remove(event)
                return event
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            message = await self.ws.receive_json(timeout=remaining)
            if message["type"] != "event":
                continue
            if match(message["event"]):
                return message["event"]
            self.events.append(message["event"])
        raise TimeoutError("no matching event")

    async def rest(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(method, f"{self.base}{path}", json=body) as response:
            return response.status, await response.json()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        await self.session.close()
