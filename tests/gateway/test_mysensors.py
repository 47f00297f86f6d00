"""MySensors provider end to end: a simulated MySensors gateway on a pty, over TCP and over MQTT.

The simulator plays the gateway side of the serial protocol (the nodes behind it included); the
EdgeIoT gateway runs for real (start_gateway) and is observed through its API and diagnostics.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import threading
import time
import tty
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgeiot_gateway.diagnostics import DropCounter
from edgeiot_gateway.gateway import Gateway
from edgeiot_gateway.models import FieldType
from edgeiot_gateway.providers import (
    ProviderContext,
    mysensors,  # registers the provider
)
from edgeiot_gateway.providers.mysensors import protocol as ms
from edgeiot_gateway.providers.mysensors import values as mv
from edgeiot_gateway.schemas import BACKUP_SCHEMA

from ..servers import Mosquitto, free_port
from .harness import ApiClient, gateway_config, start_gateway, wait_for

S = ms.Presentation
ID_REQUEST = "255;255;3;0;3;"
ID_RESPONSE = "255;255;3;0;4;"


class Simulator:
    """The gateway end of the link: sends lines as nodes would, collects the controller's."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[str] = asyncio.Queue()
        self.lines: list[str] = []

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def send(self, *lines: str) -> None:
        for line in lines:
            self.write(f"{line}\n".encode())

    def _line(self, line: str) -> None:
        self.lines.append(line)
        self.received.put_nowait(line)

    async def expect(self, prefix: str, timeout: float = 5) -> str:
        """The next line from the controller that starts with `prefix` (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no line {prefix!r}; got {self.lines[-10:]}")
            try:
                line = await asyncio.wait_for(self.received.get(), remaining)
            except TimeoutError:
                raise TimeoutError(f"no line {prefix!r}; got {self.lines[-10:]}") from None
            if line.startswith(prefix):
                return line

    async def quiet(self, prefix: str, seconds: float) -> None:
        """Nothing starting with `prefix` arrives for `seconds`."""
        try:
            line = await self.expect(prefix, seconds)
        except TimeoutError:
            return
        pytest.fail(f"unexpected {line!r}")


class PtySimulator(Simulator):
    """A serial gateway behind a pseudo-terminal: the provider opens the slave path."""

    def __init__(self) -> None:
        super().__init__()
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self._rest = b""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.master, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._loop.remove_reader(self.master)
            return
        *lines, self._rest = (self._rest + data).split(b"\n")
        for line in lines:
            self._line(line.decode(errors="replace"))

    def write(self, data: bytes) -> None:
        os.write(self.master, data)  # small writes: they fit the pty buffer

    def hang_up(self) -> None:
        """Close the master side, as an unplugged USB adapter would vanish."""
        self._loop.remove_reader(self.master)
        os.close(self.master)
        self.master = -1

    def close(self) -> None:
        if self.master >= 0:
            self.hang_up()
        os.close(self.slave)


class TcpSimulator(Simulator):
    """An Ethernet gateway: a server on loopback the provider connects to."""

    def __init__(self) -> None:
        super().__init__()
        self.writer: asyncio.StreamWriter | None = None
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> TcpSimulator:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.connections += 1
        try:
            while line := await reader.readline():
                self._line(line.decode().rstrip("\n"))
        except ConnectionError:
            pass
        finally:
            writer.close()

    def write(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)

    def drop_connection(self) -> None:
        assert self.writer is not None
        self.writer.close()

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        if self.writer is not None:
            self.writer.close()
        await self._server.wait_closed()


class MqttSimulator(Simulator):
    """A MySensors MQTT gateway: publishes to mysensors-out, listens on mysensors-in."""

    def __init__(self, broker: Mosquitto) -> None:
        super().__init__()
        self._loop = asyncio.get_running_loop()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="mysensors-gw-sim")
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_args: subscribed.set()
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.subscribe("mysensors-in/#", qos=1)
        self.client.loop_start()
        assert subscribed.wait(5), "the simulator could not subscribe"

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        levels = message.topic.split("/")[1:]
        line = ";".join([*levels, message.payload.decode()])
        self._loop.call_soon_threadsafe(self._line, line)

    def send(self, *lines: str) -> None:
        for line in lines:
            *levels, payload = line.split(";", 5)
            self.publish("mysensors-out/" + "/".join(levels), payload.encode())

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _config(tmp_path: Path, **options: Any) -> dict[str, Any]:
    config = gateway_config(tmp_path / "gw", None)
    config["providers"] = [
        {
            "type": "mysensors",
            "state_file": str(tmp_path / "mysensors.json"),
            "announce_delay": 0.2,
            "reconnect_interval": 0.05,
            "reconnect_max_interval": 0.2,
            **options,
        }
    ]
    return config


async def present(
    sim: Simulator, node: int, sketch: str, version: str, *children: tuple[int, int, str]
) -> None:
    """A node's presentation as MySensors sends it, a few ms between radio messages."""
    lines = [
        f"{node};255;0;0;17;2.3.2",
        f"{node};255;3;0;11;{sketch}",
        f"{node};255;3;0;12;{version}",
        *(f"{node};{child};0;0;{sensor};{text}" for child, sensor, text in children),
    ]
    for line in lines:
        sim.send(line)
        await asyncio.sleep(0.01)


def _field(node: dict[str, Any], source: str, field: str) -> dict[str, Any]:
    src = next(s for s in node["sources"] if s["id"] == source)
    return next(f for f in src["fields"] if f["id"] == field)


def _provider(gateway: Gateway) -> mysensors.MySensorsProvider:
    provider = gateway.providers["mysensors"]
    assert isinstance(provider, mysensors.MySensorsProvider)
    return provider


@pytest.fixture
async def pty_sim(socket_enabled: None) -> AsyncIterator[PtySimulator]:
    sim = PtySimulator()
    yield sim
    sim.close()


@pytest.fixture
async def tcp_sim(socket_enabled: None) -> AsyncIterator[TcpSimulator]:
    sim = await TcpSimulator().start()
    yield sim
    await sim.close()


@pytest.fixture
async def serial_gateway(tmp_path: Path, pty_sim: PtySimulator) -> AsyncIterator[Gateway]:
    gateway = await start_gateway(_config(tmp_path, transport="serial", device=pty_sim.path))
    await pty_sim.expect("0;255;3;0;2;")  # the provider asks the gateway for its version
    yield gateway
    await gateway.stop()


@pytest.fixture
async def api(serial_gateway: Gateway) -> AsyncIterator[ApiClient]:
    assert serial_gateway.api is not None
    assert serial_gateway.api.port is not None
    client = await ApiClient(serial_gateway.api.port, serial_gateway.token).connect()
    await client.command("start_listening")
    yield client
    await client.close()


async def test_id_assignment_persists_across_restart(tmp_path: Path, pty_sim: PtySimulator) -> None:
    """Free ids are handed out in order, saved before they are sent and never reused."""
    config = _config(tmp_path, transport="serial", device=pty_sim.path)
    gateway = await start_gateway(config)
    try:
        pty_sim.send(ID_REQUEST)
        assert await pty_sim.expect(ID_RESPONSE) == ID_RESPONSE + "1"
        state = json.loads((tmp_path / "mysensors.json").read_text())
        assert "1" in state["nodes"]  # on disk before the node heard of it
        pty_sim.send(ID_REQUEST)
        assert await pty_sim.expect(ID_RESPONSE) == ID_RESPONSE + "2"
        await present(pty_sim, 1, "Kitchen", "1.0", (1, S.S_TEMP, ""))
        pty_sim.send("1;1;1;0;0;20.0")
        await wait_for(lambda: "ms-1" in gateway.processor.nodes, what="node 1")
        pty_sim.send("4;255;3;0;0;50")  # a node with a fixed id takes it too
        await wait_for(lambda: "ms-4" in gateway.processor.nodes, what="node 4")
    finally:
        await gateway.stop()

    again = await start_gateway(config)
    try:
        await pty_sim.expect("0;255;3;0;2;")
        for expected in (3, 5):
            pty_sim.send(ID_REQUEST)
            assert await pty_sim.expect(ID_RESPONSE) == f"{ID_RESPONSE}{expected}"
        # What node 1 presented is known after the restart: its values land in the right field.
        pty_sim.send("1;1;1;0;0;21.5")
        await wait_for(
            lambda: again.processor.nodes["ms-1"].field("child-1", "temp").value == 21.5,
            what="value after restart",
        )
        assert _provider(again).diagnostics()["ids_assigned"] == 2
    finally:
        await again.stop()
    state = json.loads((tmp_path / "mysensors.json").read_text())
    assert {"1", "2", "3", "4", "5"} <= set(state["nodes"])


async def test_presentation_values_set_and_req(
    serial_gateway: Gateway, api: ApiClient, pty_sim: PtySimulator
) -> None:
    """A presenting node becomes one announced node with typed fields; sets and reqs work."""
    await present(
        pty_sim, 5, "Weather station", "1.4",
        (1, S.S_TEMP, "Outside"), (2, S.S_HUM, ""), (3, S.S_BINARY, "Relay"),
        (4, S.S_DIMMER, "Lamp"), (5, S.S_DOOR, "Front door"), (6, S.S_BARO, ""),
        (7, S.S_COVER, "Blind"), (8, S.S_SCENE_CONTROLLER, "Remote"),
    )  # fmt: skip
    added = await api.wait_event(lambda e: e["event"] == "node added")
    assert added["node"]["id"] == "ms-5"
    pty_sim.send("5;1;1;0;0;21.5", "5;2;1;0;1;48.2", "5;6;1;0;5;sunny")
    await api.wait_event(lambda e: e["event"] == "field value" and e["field_id"] == "forecast")
    events = [e for e in api.events if e["event"] in ("node added", "node updated")]
    assert len(events) <= 1, events  # one announce for the burst, one for the new V_FORECAST
    assert _provider(serial_gateway).stats["announces"] <= 2

    status, node = await api.rest("GET", "/api/v1/nodes/ms-5")
    assert status == 200
    assert (node["name"], node["kind"], node["firmware"], node["hardware"]) == (
        "Weather station 5", "Weather station", "1.4", "MySensors 2.3.2")  # fmt: skip
    assert (node["manufacturer"], node["model"], node["provider"]) == (
        "MySensors", "Sensor node", "mysensors")  # fmt: skip
    assert node["online"] is True
    assert node["actions"] == [
        "reboot", "request_heartbeat", "request_presentation", "request_version", "discover",
        "send_time", "send_config", "cover_7_up", "cover_7_down", "cover_7_stop",
    ]  # fmt: skip
    temp = _field(node, "child-1", "temp")
    assert temp == temp | {"name": "Outside", "type": "float", "unit": "°C", "value": 21.5,
                           "device_class": "temperature", "state_class": "measurement"}  # fmt: skip
    assert _field(node, "child-2", "hum") | {"updated": None} == {
        "id": "hum", "name": "Humidity 2", "type": "float", "unit": "%", "writable": False,
        "device_class": "humidity", "state_class": "measurement", "value": 48.2, "updated": None,
    }  # fmt: skip
    assert _field(node, "child-3", "status")["writable"] is True
    assert _field(node, "child-4", "percentage") == _field(node, "child-4", "percentage") | {
        "name": "Lamp percentage",
        "type": "int",
        "min": 0,
        "max": 100,
        "writable": True,
    }
    assert _field(node, "child-5", "tripped")["device_class"] == "door"
    forecast = _field(node, "child-6", "forecast")
    assert (forecast["type"], forecast["value"]) == ("enum", "sunny")
    assert BACKUP_SCHEMA(serial_gateway.commands.backup())  # definitions fit the schema

    # set with ack: sent with an echo request; the echo confirms the value
    result = await api.command(
        "set_field", node_id="ms-5", source_id="child-3", field_id="status", value=True, ack=True
    )
    assert result["success"], result
    assert await pty_sim.expect("5;3;") == "5;3;1;1;2;1"
    pty_sim.send("5;3;1;1;2;1")
    echo = await api.wait_event(lambda e: e["event"] == "field value" and e["field_id"] == "status")
    assert echo["value"] is True
    status, body = await api.rest(
        "PUT", "/api/v1/nodes/ms-5/fields/child-4/percentage", {"value": 55}
    )
    assert (status, body) == (200, {"value": 55})
    assert await pty_sim.expect("5;4;") == "5;4;1;0;3;55"  # no echo asked (request_ack)
    too_big = await api.command(
        "set_field", node_id="ms-5", source_id="child-4", field_id="percentage", value=150
    )
    assert too_big["error_code"] == "invalid_value"
    assert (await api.command("node_action", node_id="ms-5", action="cover_7_up"))["success"]
    assert await pty_sim.expect("5;7;") == "5;7;1;0;29;1"
    assert (await api.command("node_action", node_id="ms-5", action="reboot"))["success"]
    assert await pty_sim.expect("5;255;") == "5;255;3;0;13;"

    # req: answered from the last value, set by the gateway or reported by the node
    pty_sim.send("5;3;2;0;2;")
    assert await pty_sim.expect("5;3;") == "5;3;1;0;2;1"
    pty_sim.send("5;1;2;0;0;")
    assert await pty_sim.expect("5;1;") == "5;1;1;0;0;21.5"
    pty_sim.send("5;1;2;0;24;", "5;255;3;0;6;0")  # nothing known for V_VAR1: no answer
    assert await pty_sim.expect("5;") == "5;255;3;0;6;M"
    pty_sim.send("5;255;3;0;1;")
    reply = await pty_sim.expect("5;255;3;0;1;")
    assert abs(int(reply.rsplit(";", 1)[1]) - time.time()) < 5
    diagnostics = _provider(serial_gateway).diagnostics()
    assert diagnostics["acks"] == 1
    assert (diagnostics["requests_answered"], diagnostics["requests_unanswered"]) == (2, 1)
    assert diagnostics["connected"] is True

    # a scene controller's values are events; V_UNIT_PREFIX becomes the unit of the child
    pty_sim.send("5;8;1;0;19;3")
    scene = await api.wait_event(lambda e: e["event"] == "node event")
    assert scene == {"event": "node event", "node_id": "ms-5", "source_id": "child-8",
                     "event_type": "scene_on", "data": {"value": "3"}}  # fmt: skip
    pty_sim.send("5;6;1;0;43;mbar")
    await wait_for(
        lambda: serial_gateway.processor.nodes["ms-5"].field("child-6", "pressure").unit == "mbar",
        what="unit prefix",
    )
    dropped = (await api.command("get_diagnostics"))["result"]["dropped"]
    assert dropped == {}


async def test_heartbeat_battery_sketch_and_reconnect_over_tcp(
    tmp_path: Path, tcp_sim: TcpSimulator
) -> None:
    """Battery, heartbeats and sketch info update the node; a dropped TCP link comes back."""
    config = _config(
        tmp_path, transport="tcp", host="127.0.0.1", port=tcp_sim.port, heartbeat_interval=1
    )
    gateway = await start_gateway(config)
    try:
        assert gateway.api is not None
        assert gateway.api.port is not None
        api = await ApiClient(gateway.api.port, gateway.token).connect()
        await api.command("start_listening")
        await present(tcp_sim, 7, "Sensor", "1.0", (1, S.S_MOTION, "Hall"))
        await api.wait_event(lambda e: e["event"] == "node added")
        nodes = gateway.processor.nodes

        tcp_sim.send("7;255;3;0;0;87")
        battery = await api.wait_event(lambda e: e["event"] == "node status" and e["battery"])
        assert (battery["node_id"], battery["battery"], battery["online"]) == ("ms-7", 87, True)
        await wait_for(lambda: not nodes["ms-7"].online, timeout=8, what="heartbeat timeout")
        tcp_sim.send("7;255;3;0;22;1234")
        await wait_for(lambda: nodes["ms-7"].online, what="heartbeat")

        tcp_sim.send("7;255;3;0;12;1.1", "7;255;3;0;11;Motion")
        await wait_for(lambda: nodes["ms-7"].firmware == "1.1", what="sketch version")
        await wait_for(lambda: nodes["ms-7"].kind == "Motion", what="sketch name")
        assert nodes["ms-7"].name == "Motion 7"
        assert nodes["ms-7"].field("child-1", "tripped").device_class == "motion"

        provider = _provider(gateway)
        tcp_sim.drop_connection()
        await wait_for(lambda: not provider.connected, what="disconnect")
        assert not nodes["ms-7"].online  # the gateway marks the provider's nodes offline
        await wait_for(lambda: provider.connected and tcp_sim.connections == 2, what="reconnect")
        tcp_sim.send("7;1;1;0;16;1")
        await wait_for(lambda: nodes["ms-7"].field("child-1", "tripped").value is True,
                       what="value after reconnect")  # fmt: skip
        assert nodes["ms-7"].online
        assert provider.diagnostics()["reconnects"] == 1
        assert provider.stats["heartbeats"] == 1
        await api.close()
    finally:
        await gateway.stop()


async def test_tcp_gateway_down_at_start(tmp_path: Path, socket_enabled: None) -> None:
    """The provider starts without its gateway, retries with backoff and connects later."""
    port = free_port()
    gateway = await start_gateway(
        _config(tmp_path, transport="tcp", host="127.0.0.1", port=port), wait_connected=False
    )
    sim = TcpSimulator()
    try:
        provider = _provider(gateway)
        await asyncio.sleep(0.5)
        assert not provider.connected
        assert gateway.commands.diagnostics()["providers"]["mysensors"]["connected"] is False
        loop = "mysensors mysensors link"
        assert [p["loop"] for p in gateway.commands.status()["problems"]] == [loop]
        await sim.start(port)
        await wait_for(lambda: provider.connected, what="connected once the gateway is up")
        assert gateway.commands.status()["problems"] == []
        assert gateway.health.loops[loop].errors >= 1
        await sim.expect("0;255;3;0;2;")
        sim.send("0;255;3;0;2;2.3.2")
        await wait_for(lambda: provider.gateway_version == "2.3.2", what="gateway version")
    finally:
        await gateway.stop()
        await sim.close()


async def test_broken_state_file_is_set_aside(tmp_path: Path, socket_enabled: None) -> None:
    """An unreadable state file is kept aside for inspection; the provider starts afresh."""
    state = tmp_path / "mysensors.json"
    state.write_text("{not json")
    calls: list[Any] = []
    context = ProviderContext(
        "gw", lambda m, o: calls.append(m), DropCounter(), lambda n, c: None, tmp_path
    )
    options = {"transport": "tcp", "host": "127.0.0.1", "port": free_port(),
               "state_file": str(state), "reconnect_interval": 0.05}  # fmt: skip
    provider = mysensors.MySensorsProvider("mysensors", context, options)
    await provider.start()
    await provider.stop()
    broken = [name for name in os.listdir(tmp_path) if ".broken-" in name]
    assert [name.split(".broken-")[0] for name in broken] == [state.name]
    assert json.loads(state.read_text()) == {"version": 1, "nodes": {}}
    assert calls == []


async def test_smart_sleep_queues_until_pre_sleep(
    serial_gateway: Gateway, pty_sim: PtySimulator
) -> None:
    """Commands for a sleeping node wait (newest per value) and go out in order, once, at its
    next I_PRE_SLEEP_NOTIFICATION; within the window it listens they go out at once."""
    commands = serial_gateway.commands

    async def barrier() -> None:
        """Lines are handled in order: once another node's request is answered, so is ours."""
        pty_sim.send("1;255;3;0;6;")
        await pty_sim.expect("1;255;3;0;6;")

    await present(pty_sim, 9, "Sleeper", "1.0", (1, S.S_BINARY, "Valve"), (2, S.S_DIMMER, "Fan"))
    pty_sim.send("9;2;1;0;2;0")  # a V_STATUS on the dimmer too: a value of that child
    pty_sim.send("9;255;3;0;32;100")  # pre-sleep: listening for 100 ms, then asleep
    await wait_for(lambda: "ms-9" in serial_gateway.processor.nodes, what="node 9")
    await barrier()
    await asyncio.sleep(0.2)

    await commands.set_field("ms-9", "child-1", "status", True)
    await commands.set_field("ms-9", "child-2", "percentage", 40)
    await commands.set_field("ms-9", "child-1", "status", False)  # replaces the first
    await commands.node_action("ms-9", "request_heartbeat")
    await commands.set_field("ms-9", "child-2", "status", True, ack=True)
    await pty_sim.quiet("9;", 0.5)
    provider = _provider(serial_gateway)
    assert provider.diagnostics()["sleep_queue"] == 4

    pty_sim.send("9;255;3;0;33;", "9;1;1;0;2;1")  # awake, reporting: not yet listening
    await pty_sim.quiet("9;", 0.3)
    pty_sim.send("9;255;3;0;32;1000")  # pre-sleep: the queue goes out, in order
    assert [await pty_sim.expect("9;") for _ in range(4)] == [
        "9;2;1;0;3;40", "9;1;1;0;2;0", "9;255;3;0;18;", "9;2;1;1;2;1",
    ]  # fmt: skip
    await commands.set_field("ms-9", "child-1", "status", True)  # in the window: at once
    assert await pty_sim.expect("9;") == "9;1;1;0;2;1"
    pty_sim.send("9;2;1;1;2;1")  # the echo we asked for
    await wait_for(lambda: provider.stats["acks"] == 1, what="echo")

    pty_sim.send("9;255;3;0;32;0")  # asleep right away: nothing is sent again
    await pty_sim.quiet("9;", 0.3)
    assert provider.diagnostics()["sleep_queue"] == 0
    assert (provider.stats["queued"], provider.stats["flushed"]) == (5, 4)


async def test_malformed_input_is_counted_not_fatal(
    serial_gateway: Gateway, pty_sim: PtySimulator
) -> None:
    """Noise, bad fields, unknown types and over-long lines are dropped by reason."""
    for raw in (
        b"garbage\n", b"1;2;3\n", b"a;1;1;0;0;1\n", b"1;1;1;0;99;1\n", b"1;1;9;0;0;1\n",
        b"1;1;1;2;0;1\n", b"256;1;1;0;0;1\n", b"1; 1;1;0;0;1\n", b"\xff\xfe;1;1;0;0;1\n",
        b"\x00\x01\x02\n", b"\r\n", b"\n", b"x" * 200, b"y" * 200, b"z\n",
        b"w" * 300 + b"\n", b"1;1;57;0;0;1\n", b"1;1;1;0;57;1\n",
        b"255;1;1;0;0;1\n", b"255;255;3;0;7;\n", b"3;255;1;0;0;1\n", b"3;255;3;0;0;abc\n",
        b"3;255;3;0;0;120\n", b"3;1;0;0;17;2.3\n", b"3;255;0;0;6;\n", b"3;255;4;0;0;zz\n",
        b"3;255;4;0;0;" + struct.pack("<5H", 1, 2, 80, 0xBEEF, 0x0200).hex().encode() + b"\n",
        b"3;1;1;0;0;hot\n", b"3;1;1;0;0;1234567890123456789012345.0\n", b"3;1;1;0;0;2\x010\n",
        b"3;1;1;0;0;20.5\n",
    ):  # fmt: skip
        pty_sim.write(raw)
        await asyncio.sleep(0.002)
    nodes = serial_gateway.processor.nodes
    await wait_for(
        lambda: "ms-3" in nodes and nodes["ms-3"].field("child-1", "temp").value == 20.5,
        what="a good line after the garbage",
    )
    diagnostics = serial_gateway.commands.diagnostics()
    assert diagnostics["dropped"] == {
        "mysensors_invalid_line": 8,  # count, ids, ack, range, spaces, UTF-8, noise
        "mysensors_line_too_long": 2,  # 400 bytes over three writes, and 300 bytes
        "mysensors_unknown_type": 4,  # V_99, commands 9 and 57, V_MULTI_MESSAGE (57)
        "mysensors_invalid_node": 2,  # a set from node 255, a set for child 255
        # battery abc and 120, node type on a child and vice versa, firmware payload not hex,
        # "hot" for a float, 28 bytes, a control character
        "mysensors_invalid_payload": 8,
    }
    provider = diagnostics["providers"]["mysensors"]
    assert provider["connected"] is True
    assert provider["firmware_unanswered"] == 1  # the OTA seam: no firmware store yet
    assert provider["ignored"] == 1  # a parent search from a node without an id
    await pty_sim.quiet("3;255;4;", 0.1)  # and nothing was made up for it

    pty_sim.hang_up()  # the serial device goes away: disconnected, not crashed
    await wait_for(lambda: not _provider(serial_gateway).connected, what="disconnect")
    await asyncio.sleep(0.3)  # reopening fails and backs off quietly


async def test_mqtt_gateway(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """The same handling over a MySensors MQTT gateway (mysensors-out / mysensors-in)."""
    sim = MqttSimulator(mosquitto)
    config = _config(tmp_path, transport="mqtt", host=mosquitto.host, port=mosquitto.port)
    gateway = await start_gateway(config)
    try:
        await sim.expect("0;255;3;0;2;")
        sim.send(ID_REQUEST)
        assert await sim.expect(ID_RESPONSE) == ID_RESPONSE + "1"
        await present(sim, 1, "Attic", "2.0", (1, S.S_TEMP, "Attic"), (2, S.S_BINARY, "Fan"))
        sim.send("1;1;1;0;0;19.5", "1;255;3;0;0;64")
        nodes = gateway.processor.nodes
        await wait_for(lambda: "ms-1" in nodes and nodes["ms-1"].battery == 64, what="battery")
        assert nodes["ms-1"].field("child-1", "temp").value == 19.5
        assert nodes["ms-1"].field("child-2", "status").writable

        await gateway.commands.set_field("ms-1", "child-2", "status", True, ack=True)
        assert await sim.expect("1;2;") == "1;2;1;1;2;1"
        sim.send("1;2;2;0;2;")
        assert await sim.expect("1;2;") == "1;2;1;0;2;1"

        sim.publish("mysensors-out/1/1/1/0", b"1")
        sim.publish("mysensors-out/1/1/1/0/0", b"\xff")
        sim.publish("mysensors-out/1/1/1/0/77", b"1")
        sim.send("1;1;1;0;0;19.75")
        await wait_for(lambda: nodes["ms-1"].field("child-1", "temp").value == 19.75, what="last")
        assert gateway.drops.counts == {"mysensors_invalid_line": 2, "mysensors_unknown_type": 1}
    finally:
        await gateway.stop()
        sim.close()


# The codec ----------------------------------------------------------------------------------------


def test_codec_round_trip() -> None:
    """Lines and topics decode to messages and encode back; the payload may hold `;`."""
    message = ms.parse_line(b"12;3;1;0;49;55.72;13.01;18\r")
    assert message == ms.Message(12, 3, 1, False, ms.SetReq.V_POSITION, "55.72;13.01;18")
    assert message.encode() == b"12;3;1;0;49;55.72;13.01;18\n"
    assert message.topic("out") == "out/12/3/1/0/49"
    assert ms.parse_topic("out", "out/12/3/1/0/49", b"55.72;13.01;18") == message
    assert ms.parse_line(b"") is None
    assert ms.parse_line(b" \r") is None
    assert ms.parse_line(b"0;255;3;0;14;Gateway startup complete.") == ms.Message(
        0, 255, 3, False, ms.Internal.I_GATEWAY_READY, "Gateway startup complete."
    )
    for raw, reason in [
        (b"1;1;1;0;0", ms.INVALID_LINE),
        (b"+1;1;1;0;0;1", ms.INVALID_LINE),
        (b"1;1;1;0;200;1", ms.UNKNOWN_TYPE),
        (b"1;1;3;0;34;1", ms.UNKNOWN_TYPE),
        (b"1;1;1;0;0;" + b"9" * 300, ms.LINE_TOO_LONG),
    ]:
        with pytest.raises(ms.ParseError) as err:
            ms.parse_line(raw)
        assert err.value.reason == reason, raw


def test_value_tables() -> None:
    """Field types, units and device classes follow Home Assistant's MySensors integration."""
    assert mv.FIELD_IDS[ms.SetReq.V_LIGHT] == "status"
    assert mv.VALUE_TYPES["hvac_setpoint_heat"] == ms.SetReq.V_HVAC_SETPOINT_HEAT
    assert mv.value_spec(S.S_TEMP, ms.SetReq.V_TEMP, metric=False).unit == "°F"
    illuminance = mv.value_spec(S.S_LIGHT_LEVEL, ms.SetReq.V_LEVEL)
    assert (illuminance.unit, illuminance.device_class) == ("lx", "illuminance")
    assert mv.value_spec(None, ms.SetReq.V_LEVEL).unit is None
    assert mv.value_spec(S.S_WATER_LEAK, ms.SetReq.V_TRIPPED).device_class == "safety"
    energy = mv.value_spec(S.S_POWER, ms.SetReq.V_KWH)
    assert (energy.unit, energy.state_class) == ("kWh", "total_increasing")
    assert mv.value_spec(S.S_SCENE_CONTROLLER, ms.SetReq.V_SCENE_ON).event == "scene_on"
    assert mv.decode_value(FieldType.BOOL, "1") is True
    assert mv.decode_value(FieldType.BOOL, "2") == "2"  # left for the processor to reject
    assert mv.decode_value(FieldType.INT, "40.0") == 40.0
    assert mv.decode_value(FieldType.FLOAT, "hot") == "hot"
    assert [mv.encode_value(v) for v in (True, 3, 21.0, 21.25, "Off")] == [
        "1", "3", "21", "21.25", "Off"]  # fmt: skip


def test_firmware_payloads() -> None:
    """OTA stream payloads: little-endian uint16 words, hex encoded."""
    words = struct.pack("<5H", 10, 2, 320, 0xBEEF, 0x0201).hex()
    assert ms.parse_firmware_config_request(words) == ms.FirmwareConfigRequest(
        10, 2, 320, 0xBEEF, 0x0201
    )
    request = ms.parse_firmware_block_request(struct.pack("<3H", 10, 3, 7).hex())
    assert request == ms.FirmwareBlockRequest(10, 3, 7)
    assert ms.encode_firmware_config(ms.FirmwareConfig(10, 3, 320, 0x1234)) == (
        struct.pack("<4H", 10, 3, 320, 0x1234).hex()
    )
    block = ms.encode_firmware_block(request, bytes(range(16)))
    assert bytes.fromhex(block) == struct.pack("<3H", 10, 3, 7) + bytes(range(16))
    with pytest.raises(ms.ParseError):
        ms.parse_firmware_block_request("0a00")
