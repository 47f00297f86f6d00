"""CAN provider end to end: a peer on python-can's virtual bus (or an SLCAN adapter simulated on
a pseudo-terminal) ↔ gateway ↔ WebSocket/REST clients, decoding with tests/can/sample.dbc."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import select
import threading
import time
import tty
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import can
import cantools
import pytest

from edgeiot_gateway.commands import CommandError
from edgeiot_gateway.config import ConfigError
from edgeiot_gateway.diagnostics import DropCounter
from edgeiot_gateway.gateway import Gateway
from edgeiot_gateway.messages import FieldValues, NodeAnnounced
from edgeiot_gateway.providers import ProviderContext
from edgeiot_gateway.providers import can as can_provider
from edgeiot_gateway.providers.can import CanProvider, raw_source_id, sanitize_id
from edgeiot_gateway.providers.can import transport as can_transport

from .harness import ApiClient, gateway_config, start_gateway, wait_for

DBC = Path(__file__).parent.parent / "can" / "sample.dbc"
DATABASE = cantools.database.load_file(DBC)
VCAN = "vcan0"
PANEL = {
    "Light1": 1,
    "Light2": 0,
    "Mode": 3,
    "Dimmer": 50.5,
    "Counter": 7,
    "SupplyVoltage": 12.34,
    "Current": -3.2,
}
QUIET_PANEL = dict.fromkeys(PANEL, 0)


def _field(node: dict[str, Any], source: str, field_id: str) -> dict[str, Any]:
    src = next(s for s in node["sources"] if s["id"] == source)
    return next(f for f in src["fields"] if f["id"] == field_id)


def _is_value(node_id: str, field_id: str, value: Any = ...) -> Callable[[dict[str, Any]], bool]:
    def match(event: dict[str, Any]) -> bool:
        return (
            event["event"] == "field value"
            and event["node_id"] == node_id
            and event["field_id"] == field_id
            and (value is ... or event["value"] == value)
        )

    return match


def _is_status(node_id: str, online: bool) -> Callable[[dict[str, Any]], bool]:
    return lambda e: (
        e["event"] == "node status" and e["node_id"] == node_id and e["online"] is online
    )


@dataclass
class Rig:
    """A gateway with one CAN provider, an API client and a peer on the same bus."""

    gateway: Gateway
    api: ApiClient
    peer: can.BusABC
    channel: str
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def provider(self) -> CanProvider:
        provider = self.gateway.providers["can"]
        assert isinstance(provider, CanProvider)
        return provider

    def send(self, message: str, **signals: Any) -> None:
        """Send a DBC message from the peer."""
        dbc = DATABASE.get_message_by_name(message)
        if not dbc.is_multiplexed():  # signals not given are 0
            signals = {signal.name: 0 for signal in dbc.signals} | signals
        self.send_raw(dbc.frame_id, dbc.encode(signals), extended=dbc.is_extended_frame)

    def send_raw(self, frame_id: int, data: bytes, *, extended: bool = False) -> None:
        self.peer.send(can.Message(arbitration_id=frame_id, data=data, is_extended_id=extended))

    async def receive(self, timeout: float = 5) -> can.Message | None:
        """The next frame the gateway sent, as the peer sees it."""
        return await asyncio.to_thread(self.peer.recv, timeout)

    async def diagnostics(self) -> dict[str, Any]:
        status, body = await self.api.rest("GET", "/api/v1/diagnostics")
        assert status == 200
        return dict(body)

    async def node(self, node_id: str) -> dict[str, Any]:
        status, body = await self.api.rest("GET", f"/api/v1/nodes/{node_id}")
        assert status == 200, body
        return dict(body)


def _provider_config(channel: str, **options: Any) -> dict[str, Any]:
    config = {
        "type": "can",
        "name": "can",
        "interface": "virtual",
        "channel": channel,
        "dbc": str(DBC),
        "gateway_node": "DASH",
        "reconnect_interval": 0.05,
        "reconnect_max_interval": 0.2,
    }
    return {k: v for k, v in (config | options).items() if v is not None}


@pytest.fixture
def make_rig(
    tmp_path: Path, socket_enabled: None
) -> Callable[..., contextlib.AbstractAsyncContextManager[Rig]]:
    """Start a gateway with a CAN provider on a fresh virtual channel (options override)."""

    @contextlib.asynccontextmanager
    async def make(
        *, peer_interface: str = "virtual", wait_connected: bool = True, **options: Any
    ) -> AsyncIterator[Rig]:
        unique = uuid.uuid4().hex[:8]
        channel = options.pop("channel", f"edgeiot-{unique}")
        provider = _provider_config(channel, **options)
        config = gateway_config(tmp_path / f"gw-{unique}", None, providers=[provider])
        # (through can.interface: a test patches can.Bus, which the provider uses)
        peer = can.interface.Bus(interface=peer_interface, channel=channel)
        gateway: Gateway | None = None
        api: ApiClient | None = None
        try:
            gateway = await start_gateway(config, wait_connected=wait_connected)
            assert gateway.api is not None
            assert gateway.api.port is not None
            api = await ApiClient(gateway.api.port, gateway.token).connect()
            assert (await api.command("set_api_schema", schema_version=1))["success"]
            listening = await api.command("start_listening")
            yield Rig(gateway, api, peer, channel, listening["result"]["state"])
        finally:
            if api is not None:
                await api.close()
            if gateway is not None:
                await gateway.stop()
            peer.shutdown()

    return make


# Model ----------------------------------------------------------------------------------------


async def test_dbc_nodes_fields_and_values(make_rig: Callable[..., Any]) -> None:
    """DBC nodes, messages and signals become nodes, sources and typed fields; frames → values."""
    async with make_rig() as rig:
        nodes = {n["id"]: n for n in rig.state["nodes"]}
        assert set(nodes) == {"DASH", "SWITCHPANEL", "CLIMATE", "KEYPAD"}
        assert {n["provider"] for n in nodes.values()} == {"can"}
        panel = nodes["SWITCHPANEL"]
        assert [s["id"] for s in panel["sources"]] == ["SWITCHPANEL_STATUS", "SWITCHPANEL_CONFIG"]
        light = _field(panel, "SWITCHPANEL_STATUS", "Light1")
        assert (light["type"], light["writable"]) == ("bool", False)
        # A value table labelling only some raw values: the number, and the label beside it.
        mode = _field(panel, "SWITCHPANEL_STATUS", "Mode")
        assert (mode["type"], mode["min"], mode["max"]) == ("int", 0, 7)
        mode_label = _field(panel, "SWITCHPANEL_STATUS", "Mode_label")
        assert (mode_label["type"], mode_label["writable"]) == ("string", False)
        # min/max: what the bits hold, not the DBC's [0|100] (cantools decodes beyond it).
        dimmer = _field(panel, "SWITCHPANEL_STATUS", "Dimmer")
        assert dimmer | {"value": None} == dimmer | {
            "type": "float",
            "unit": "%",
            "min": 0,
            "max": 127.5,
            "step": 0.5,
            "writable": False,
        }
        counter = _field(panel, "SWITCHPANEL_STATUS", "Counter")
        assert (counter["type"], counter["min"], counter["max"]) == ("int", 0, 255)
        current = _field(panel, "SWITCHPANEL_STATUS", "Current")
        assert (current["type"], current["min"], current["max"]) == (
            "float",
            -32768 * 0.1,
            32767 * 0.1,
        )
        climate = nodes["CLIMATE"]
        outside = _field(climate, "CLIMATE_STATUS", "OutsideTemp")  # (1, -40): an int with offset
        assert (outside["type"], outside["unit"], outside["min"], outside["max"]) == (
            "int",
            "degC",
            -40,
            215,
        )
        assert _field(climate, "CLIMATE_STATUS", "State")["type"] == "int"
        power = _field(climate, "CLIMATE_ENERGY", "Power")  # IEEE float: no range from the bits
        assert (power["type"], "min" in power) == ("float", False)
        keypad = nodes["KEYPAD"]
        assert _field(keypad, "KEYPAD_PRESS", "Held")["type"] == "bool"  # Off/On: a boolean pair
        direction = _field(keypad, "KEYPAD_PRESS", "Direction")  # Forward/Reverse: labels kept
        assert (direction["type"], direction["options"]) == ("enum", ["Forward", "Reverse"])
        level = _field(keypad, "KEYPAD_PRESS", "Level")  # every raw value named, one name twice
        assert (level["type"], level["options"]) == ("enum", ["Low", "High", "SNA"])
        dash = nodes["DASH"]
        target = _field(dash, "DASH_CLIMATE_CMD", "TargetTemp")
        assert target | {"value": None} == target | {
            "type": "float",
            "min": 0,
            "max": 127.5,
            "step": 0.5,
            "writable": True,
        }
        assert _field(dash, "DASH_CLIMATE_CMD", "FanSpeed")["writable"] is True
        assert _field(dash, "DASH_CLIMATE_CMD", "FanSpeed_label")["writable"] is False

        # The gateway's own node is online with the bus; the others when they send.
        assert nodes["DASH"]["online"] is True
        assert nodes["SWITCHPANEL"]["online"] is False

        rig.send("SWITCHPANEL_STATUS", **PANEL)
        await rig.api.wait_event(_is_status("SWITCHPANEL", True))
        assert (await rig.api.wait_event(_is_value("SWITCHPANEL", "Light1")))["value"] is True
        assert (await rig.api.wait_event(_is_value("SWITCHPANEL", "Mode")))["value"] == 3
        await rig.api.wait_event(_is_value("SWITCHPANEL", "Mode_label", "Eco"))
        assert (await rig.api.wait_event(_is_value("SWITCHPANEL", "Current")))["value"] == -3.2
        await rig.api.wait_event(_is_value("SWITCHPANEL", "SupplyVoltage", 12.34))
        panel = await rig.node("SWITCHPANEL")
        values = {f["id"]: f["value"] for f in panel["sources"][0]["fields"]}
        assert values == {
            "Light1": True,
            "Light2": False,
            "Mode": 3,
            "Mode_label": "Eco",
            "Dimmer": 50.5,
            "Counter": 7,
            "SupplyVoltage": 12.34,
            "Current": -3.2,
        }

        rig.send("CLIMATE_ENERGY", Power=-1234.5, EnergyTotal=12345.678)  # extended id, float
        await rig.api.wait_event(_is_value("CLIMATE", "Power", -1234.5))
        await rig.api.wait_event(_is_value("CLIMATE", "EnergyTotal", 12345.678))
        rig.send(
            "CLIMATE_STATUS", Temperature=-12.5, Humidity=40, FanActive=1, State=2, OutsideTemp=-7
        )
        await rig.api.wait_event(_is_value("CLIMATE", "OutsideTemp", -7))
        await rig.api.wait_event(_is_value("CLIMATE", "Temperature", -12.5))
        await rig.api.wait_event(_is_value("CLIMATE", "State_label", "Cooling"))
        # Only changes are reported: the same payload again is counted, the next counter shown.
        rig.api.events.clear()
        rig.send("SWITCHPANEL_STATUS", **PANEL)
        rig.send("SWITCHPANEL_STATUS", **PANEL | {"Counter": 8})
        await rig.api.wait_event(_is_value("SWITCHPANEL", "Counter", 8))
        assert not [e for e in rig.api.events if e["event"] == "field value"]
        diagnostics = (await rig.diagnostics())["providers"]["can"]
        assert (
            diagnostics
            | {
                "connected": True,
                "interface": "virtual",
                "bus_state": "active",
                "frames_received": 5,
                "frames_decoded": 4,
                "frames_unchanged": 1,
                "decode_errors": 0,
            }
            == diagnostics
        )

        # Values without a label, and beyond the DBC range, are published as cantools decodes.
        rig.send_raw(0x1A0, bytes([0b11111100, 255, 0, 0, 0, 0, 0, 0]))  # Mode 7, Dimmer 127.5
        await rig.api.wait_event(_is_value("SWITCHPANEL", "Mode", 7))
        await rig.api.wait_event(_is_value("SWITCHPANEL", "Mode_label", ""))
        await rig.api.wait_event(_is_value("SWITCHPANEL", "Dimmer", 127.5))
        assert rig.provider.out_of_range == 2  # Mode 7 > 4, Dimmer 127.5 > 100
        rig.send("KEYPAD_PRESS", Key=1, Held=1, Direction=1, Level=1)
        await rig.api.wait_event(_is_value("KEYPAD", "Direction", "Reverse"))
        await rig.api.wait_event(_is_value("KEYPAD", "Level", "Low"))
        await rig.api.wait_event(_is_value("KEYPAD", "Held", True))

        # What the gateway stores and backs up is valid (the restore checks every definition).
        status, backup = await rig.api.rest("GET", "/api/v1/backup")
        assert status == 200
        status, restored = await rig.api.rest("POST", "/api/v1/restore", backup)
        assert (status, restored) == (200, {"nodes": 4, "automations": 0})


async def test_multiplexed_and_undecodable_frames(make_rig: Callable[..., Any]) -> None:
    """A multiplexed message yields only the signals of its multiplexer value."""
    async with make_rig() as rig:
        rig.api.events.clear()
        rig.send("CLIMATE_ZONES", Zone=0, ZoneTemp1=21.5, ZoneHumidity1=40)
        await rig.api.wait_event(_is_value("CLIMATE", "ZoneHumidity1", 40))
        await rig.api.wait_event(_is_value("CLIMATE", "ZoneTemp1", 21.5))
        rig.send("CLIMATE_ZONES", Zone=1, ZoneTemp2=-5.5, ZoneCO2=800)
        await rig.api.wait_event(_is_value("CLIMATE", "ZoneCO2", 800))
        await rig.api.wait_event(_is_value("CLIMATE", "ZoneTemp2", -5.5))
        await rig.api.wait_event(_is_value("CLIMATE", "Zone", 1))
        fields = {e["field_id"] for e in rig.api.events if e["event"] == "field value"}
        assert fields <= {"Zone"}, fields  # nothing of the other page was reported
        zones = next(
            s for s in (await rig.node("CLIMATE"))["sources"] if s["id"] == "CLIMATE_ZONES"
        )
        values = {f["id"]: f["value"] for f in zones["fields"]}
        assert values == {
            "Zone": 1,
            "ZoneTemp1": 21.5,
            "ZoneHumidity1": 40,
            "ZoneTemp2": -5.5,
            "ZoneCO2": 800,
        }

        rig.send_raw(0x2B1, bytes([7, 0, 0, 0, 0]))  # no such multiplexer value
        rig.send_raw(0x2B0, bytes([1, 2]))  # shorter than the message
        await wait_for(lambda: rig.gateway.drops.counts["can_decode_error"] == 2, what="drops")
        assert (await rig.diagnostics())["providers"]["can"]["decode_errors"] == 2
        rig.send("CLIMATE_ZONES", Zone=0, ZoneTemp1=22.0, ZoneHumidity1=40)  # the stream goes on
        await rig.api.wait_event(_is_value("CLIMATE", "ZoneTemp1", 22.0))


# Writing --------------------------------------------------------------------------------------


async def test_set_field_encodes_frame_keeping_other_signals(make_rig: Callable[..., Any]) -> None:
    """A set encodes the whole message: the other signals keep their last (or initial) values."""
    cmd = DATABASE.get_message_by_name("DASH_CLIMATE_CMD")
    async with make_rig(writable_messages=["SWITCHPANEL_CONFIG"]) as rig:
        result = await rig.api.command(
            "set_field",
            node_id="DASH",
            source_id="DASH_CLIMATE_CMD",
            field_id="FanSpeed",
            value=3,
        )
        assert result["success"], result
        frame = await rig.receive()
        assert frame is not None
        assert (frame.arbitration_id, frame.is_extended_id) == (0x300, False)
        # TargetTemp keeps its GenSigStartValue (raw 40 → 20.0 degC), the rest 0.
        assert cmd.decode(frame.data) == {
            "TargetTemp": 20.0,
            "FanSpeed": "High",
            "Heat": 0,
            "Sequence": 0,
        }
        await rig.api.wait_event(_is_value("DASH", "FanSpeed_label", "High"))  # what was sent

        status, body = await rig.api.rest(
            "PUT", "/api/v1/nodes/DASH/fields/DASH_CLIMATE_CMD/TargetTemp", {"value": 22.5}
        )
        assert (status, body) == (200, {"value": 22.5})
        frame = await rig.receive()
        assert frame is not None
        assert cmd.decode(frame.data) == {
            "TargetTemp": 22.5,
            "FanSpeed": "High",
            "Heat": 0,
            "Sequence": 0,
        }
        await rig.gateway.commands.set_field("DASH", "DASH_CLIMATE_CMD", "Heat", True)
        frame = await rig.receive()
        assert frame is not None
        assert cmd.decode(frame.data)["Heat"] == 1
        assert cmd.decode(frame.data)["TargetTemp"] == 22.5

        # Invalid or read-only: refused, nothing sent.
        async def refused(source: str, field_id: str, value: Any, node: str = "DASH") -> str:
            result = await rig.api.command(
                "set_field", node_id=node, source_id=source, field_id=field_id, value=value
            )
            assert not result["success"]
            return str(result["error_code"])

        assert await refused("DASH_CLIMATE_CMD", "TargetTemp", 128) == "invalid_value"
        assert await refused("DASH_CLIMATE_CMD", "FanSpeed", 8) == "invalid_value"
        assert await refused("DASH_CLIMATE_CMD", "FanSpeed_label", "Low") == "not_writable"
        assert await refused("SWITCHPANEL_STATUS", "Light1", True, "SWITCHPANEL") == "not_writable"
        no_echo = await rig.api.command(  # CAN has no echoes to ask for
            "set_field", node_id="DASH", source_id="DASH_LIGHT_CMD", field_id="Light1Cmd",
            value=True, ack=True,
        )  # fmt: skip
        assert (no_echo["error_code"], "no echoes" in no_echo["message"]) == ("invalid_value", True)
        assert await rig.receive(timeout=0.2) is None

        # Multiplexed: setting a signal selects its page.
        display = DATABASE.get_message_by_name("DASH_DISPLAY")
        await rig.gateway.commands.set_field("DASH", "DASH_DISPLAY", "Volume", 12)
        frame = await rig.receive()
        assert frame is not None
        assert display.decode(frame.data) == {"Page": "Sound", "Volume": 12}
        await rig.gateway.commands.set_field("DASH", "DASH_DISPLAY", "Brightness", 80)
        frame = await rig.receive()
        assert frame is not None
        assert display.decode(frame.data) == {"Page": "Light", "Brightness": 80}

        # writable_messages: a message of another node, its other signals as last received.
        config = DATABASE.get_message_by_name("SWITCHPANEL_CONFIG")
        rig.send("SWITCHPANEL_CONFIG", AutoOff=1, AutoOffDelay=30)
        await rig.api.wait_event(_is_value("SWITCHPANEL", "AutoOffDelay", 30))
        await rig.gateway.commands.set_field("SWITCHPANEL", "SWITCHPANEL_CONFIG", "AutoOff", False)
        frame = await rig.receive()
        assert frame is not None
        assert (frame.arbitration_id, config.decode(frame.data)) == (
            0x1A1,
            {"AutoOff": 0, "AutoOffDelay": 30},
        )
        await rig.api.wait_event(_is_value("SWITCHPANEL", "AutoOff", False))
        assert (await rig.diagnostics())["providers"]["can"]["frames_sent"] == 6


async def test_send_failure_is_reported(
    make_rig: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frame the interface refuses fails the set with provider_unavailable; nothing is shown."""
    async with make_rig() as rig:
        bus = rig.provider._bus
        assert bus is not None

        def refuse(_msg: can.Message, _timeout: float | None = None) -> None:
            raise can.CanOperationError("Transmit buffer full")

        monkeypatch.setattr(bus, "send", refuse)
        result = await rig.api.command(
            "set_field",
            node_id="DASH",
            source_id="DASH_LIGHT_CMD",
            field_id="Light1Cmd",
            value=True,
        )
        assert (result["success"], result["error_code"]) == (False, "provider_unavailable")
        assert "Transmit buffer full" in result["message"]
        diagnostics = (await rig.diagnostics())["providers"]["can"]
        assert (diagnostics["send_errors"], diagnostics["frames_sent"]) == (1, 0)
        assert _field(await rig.node("DASH"), "DASH_LIGHT_CMD", "Light1Cmd")["value"] is None


# Liveness -------------------------------------------------------------------------------------


async def test_cyclic_timeout_marks_node_offline_and_back(make_rig: Callable[..., Any]) -> None:
    """A node whose cyclic frames stop is offline after 3 cycles; a frame brings it back."""
    async with make_rig() as rig:
        for temperature in (20.0, 20.0, 20.0, 20.0, 20.1, 20.1, 20.1, 20.1):  # every 100 ms
            rig.send(
                "CLIMATE_STATUS",
                Temperature=temperature,
                Humidity=40,
                FanActive=0,
                State=0,
                OutsideTemp=5,
            )
            last = time.monotonic()
            await asyncio.sleep(0.1)
        await rig.api.wait_event(_is_status("CLIMATE", True))
        await rig.api.wait_event(_is_status("CLIMATE", False), timeout=3)
        silence = time.monotonic() - last
        assert 0.25 <= silence < 2.0, silence  # 3 cycles of 100 ms, checked every 75 ms

        rig.send(
            "CLIMATE_STATUS", Temperature=20.1, Humidity=40, FanActive=0, State=0, OutsideTemp=5
        )
        await rig.api.wait_event(_is_status("CLIMATE", True))

        # A node without cyclic messages is online when it sends, and stays so.
        rig.send("KEYPAD_PRESS", Key=3, Held=0)
        await rig.api.wait_event(_is_status("KEYPAD", True))
        await rig.api.wait_event(_is_value("KEYPAD", "Key", 3))
        await asyncio.sleep(0.5)
        assert (await rig.node("KEYPAD"))["online"] is True
        assert (await rig.node("DASH"))["online"] is True  # the gateway itself


async def test_heartbeat_refreshes_last_seen(make_rig: Callable[..., Any]) -> None:
    """Identical cyclic frames give no values but keep the node's last_seen moving."""
    async with make_rig() as rig:
        rig.send("SWITCHPANEL_STATUS", **QUIET_PANEL | {"Counter": 1})
        await rig.api.wait_event(_is_value("SWITCHPANEL", "Counter", 1))
        start = (await rig.node("SWITCHPANEL"))["last_seen"]
        for _ in range(13):
            rig.send("SWITCHPANEL_STATUS", **QUIET_PANEL | {"Counter": 1})
            await asyncio.sleep(0.1)
        node = await rig.node("SWITCHPANEL")
        assert node["online"] is True
        assert node["last_seen"] - start >= 0.9
        assert rig.provider.frames_unchanged == 13


# Errors and unknown frames ----------------------------------------------------------------------


async def test_unknown_ids_and_error_frames_are_counted(
    make_rig: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Unknown ids and error frames are dropped with a reason; bus-off disconnects until frames
    flow again."""
    caplog.set_level(logging.WARNING, logger="edgeiot_gateway.diagnostics")
    async with make_rig() as rig:
        rig.send_raw(0x123, b"\x01\x02")
        await wait_for(lambda: rig.gateway.drops.counts["unknown_can_id"] == 1, what="unknown")
        assert f"from can:{rig.channel}:0x123" in caplog.text

        # Error passive: counted, still connected.
        rig.peer.send(
            can.Message(
                is_error_frame=True, arbitration_id=0x04, data=bytes([0, 0x10, 0, 0, 0, 0, 0, 0])
            )
        )
        await wait_for(lambda: rig.provider.error_frames == 1, what="error frame")
        diagnostics = (await rig.diagnostics())["providers"]["can"]
        assert (diagnostics["bus_state"], diagnostics["connected"]) == ("error_passive", True)

        # Bus off: the provider is disconnected, its nodes offline.
        rig.peer.send(can.Message(is_error_frame=True, arbitration_id=0x40, data=bytes(8)))
        await rig.api.wait_event(_is_status("DASH", False))
        diagnostics = await rig.diagnostics()
        assert (
            diagnostics["providers"]["can"]
            | {"bus_state": "bus_off", "connected": False, "error_frames": 2, "unknown_ids": 1}
            == diagnostics["providers"]["can"]
        )
        assert (
            diagnostics["dropped"] | {"can_error_frame": 2, "unknown_can_id": 1}
            == (diagnostics["dropped"])
        )
        assert f"from can:{rig.channel}:0x40: error frame bus_off" in caplog.text
        result = await rig.api.command(
            "set_field",
            node_id="DASH",
            source_id="DASH_LIGHT_CMD",
            field_id="Light1Cmd",
            value=True,
        )
        assert result["error_code"] == "provider_unavailable"

        # Frames again: the controller recovered.
        rig.send("KEYPAD_PRESS", Key=1, Held=1)
        await rig.api.wait_event(_is_status("DASH", True))
        await rig.api.wait_event(_is_value("KEYPAD", "Held", True))
        assert rig.provider.connected


async def test_stalled_loop_overflow_is_counted(
    make_rig: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Frames read while the event loop is stalled and the inbox is full are counted, not kept."""
    monkeypatch.setattr(can_transport, "INBOX_MAX", 3)
    async with make_rig() as rig:
        for key in range(10):
            rig.send("KEYPAD_PRESS", Key=key, Held=0)
        time.sleep(0.5)  # noqa: ASYNC251 (stall the loop: the reader queues 3 frames, drops 7)
        await wait_for(lambda: rig.gateway.drops.counts["can_overflow"] == 7, what="overflow")
        await rig.api.wait_event(_is_value("KEYPAD", "Key", 2))
        diagnostics = (await rig.diagnostics())["providers"]["can"]
        assert (diagnostics["frames_overflow"], diagnostics["frames_received"]) == (7, 3)


# Raw mode -----------------------------------------------------------------------------------


async def test_raw_mode_shows_unknown_ids(make_rig: Callable[..., Any]) -> None:
    """With raw = true, ids not in the DBC appear as sources of the can-raw node."""
    async with make_rig(raw=True, raw_max_ids=2) as rig:
        assert "can-raw" not in {n["id"] for n in rig.state["nodes"]}  # announced when needed
        rig.send_raw(0x123, bytes.fromhex("deadbeef"))
        added = await rig.api.wait_event(lambda e: e["event"] == "node added")
        assert (added["node"]["id"], added["node"]["provider"]) == ("can-raw", "can")
        await rig.api.wait_event(_is_value("can-raw", "data", "deadbeef"))
        await rig.api.wait_event(_is_value("can-raw", "dlc", 4))
        rig.send_raw(0x18DAF110, bytes.fromhex("0102030405060708"), extended=True)
        await rig.api.wait_event(_is_value("can-raw", "data", "0102030405060708"))
        raw = await rig.node("can-raw")
        assert [s["id"] for s in raw["sources"]] == ["id_123", "id_18daf110"]
        assert raw["online"] is True
        rig.send_raw(0x124, b"\x00")  # beyond raw_max_ids
        await wait_for(lambda: rig.gateway.drops.counts["unknown_can_id"] == 1, what="limit")
        rig.send("KEYPAD_PRESS", Key=9, Held=0)  # DBC ids are still decoded
        await rig.api.wait_event(_is_value("KEYPAD", "Key", 9))
        assert rig.provider.frames_raw == 2


async def test_raw_mode_without_dbc(make_rig: Callable[..., Any]) -> None:
    """Without a DBC every frame is raw; nothing is writable."""
    async with make_rig(dbc=None, gateway_node=None) as rig:
        assert rig.state["nodes"] == []
        rig.send_raw(0x2B0, bytes.fromhex("c8000000"))
        await rig.api.wait_event(_is_value("can-raw", "data", "c8000000"))
        assert raw_source_id(0x2B0, False) == "id_2b0"
        result = await rig.api.command(
            "set_field", node_id="can-raw", source_id="id_2b0", field_id="data", value="00"
        )
        assert result["error_code"] == "not_writable"


# Recovery -----------------------------------------------------------------------------------


async def test_bus_open_failures_retry_with_backoff(
    make_rig: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interface that cannot be opened is retried; meanwhile the provider is disconnected."""
    real_bus = can.Bus
    attempts: list[float] = []

    def flaky_bus(*args: Any, **kwargs: Any) -> can.BusABC:
        attempts.append(time.monotonic())
        if len(attempts) <= 3:
            raise can.CanInitializationError("adapter not plugged in")
        return real_bus(*args, **kwargs)

    monkeypatch.setattr(can, "Bus", flaky_bus)
    async with make_rig(
        wait_connected=False, reconnect_interval=0.1, reconnect_max_interval=0.3
    ) as rig:
        diagnostics = (await rig.diagnostics())["providers"]["can"]
        assert diagnostics["connected"] is False
        # The failing loop is logged, counted and visible in the status until it works again.
        health = rig.gateway.health
        await wait_for(lambda: health.failing("can can bus"), what="failure in the status")
        assert "adapter not plugged in" in health.problems()[0]["error"]
        (provider,) = rig.gateway.commands.status()["providers"]
        assert provider["connected"] is False
        assert "adapter not plugged in" in provider["error"]
        await wait_for(lambda: rig.provider.connected, what="connected")
        assert rig.gateway.commands.status()["providers"][0]["error"] is None
        assert not health.failing("can can bus")
        assert health.loops["can can bus"].errors == 3
        assert len(attempts) == 4
        gaps = [round(b - a, 2) for a, b in itertools.pairwise(attempts)]
        assert [gap >= low for gap, low in zip(gaps, (0.09, 0.19, 0.29), strict=True)] == [
            True,
            True,
            True,
        ], gaps  # 0.1 s, doubling, capped at 0.3 s
        assert "adapter not plugged in" in (rig.provider.last_error or "")
        rig.send("KEYPAD_PRESS", Key=2, Held=0)
        await rig.api.wait_event(_is_value("KEYPAD", "Key", 2))


async def test_bus_failure_while_running_reconnects(make_rig: Callable[..., Any]) -> None:
    """When reading the bus fails, the provider closes it, reports it and opens it again."""
    async with make_rig() as rig:
        rig.send("KEYPAD_PRESS", Key=1, Held=0)
        await rig.api.wait_event(_is_status("KEYPAD", True))
        bus = rig.provider._bus  # (simulate the driver losing the interface)
        assert bus is not None
        bus.shutdown()  # reads now raise CanOperationError in the Notifier's thread
        await rig.api.wait_event(_is_status("KEYPAD", False))
        await rig.api.wait_event(_is_status("DASH", True))  # reopened
        assert rig.provider.bus_opens == 2
        assert "closed bus" in (rig.provider.last_error or "")
        rig.send("KEYPAD_PRESS", Key=4, Held=0)
        await rig.api.wait_event(_is_value("KEYPAD", "Key", 4))


# SLCAN over a pseudo-terminal -------------------------------------------------------------------


class SlcanAdapter:
    """A simulated SLCAN (Lawicel) USB adapter on the master side of a pty.

    Answers the open/close/bitrate/version commands with CR, records transmitted frames, and
    emits received frames ("t1A08..."). The slave side is reached through `link` (a symlink),
    so a new adapter can take over the same path as a replugged device would.
    """

    def __init__(self, link: Path) -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.slave_path = os.ttyname(slave)
        os.close(slave)
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        link.symlink_to(self.slave_path)
        self.link = link
        self.commands: list[str] = []
        self.sent: list[can.Message] = []
        self.is_open = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="slcan-adapter", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        buffer = b""
        deadline = time.monotonic() + 60  # bounded, whatever happens
        while not self._stop.is_set() and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.02)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # the slave side is not open (yet / any more)
                time.sleep(0.02)
                continue
            buffer += chunk
            while b"\r" in buffer:
                line, buffer = buffer.split(b"\r", 1)
                self._command(line.decode())

    def _command(self, line: str) -> None:
        self.commands.append(line)
        reply = "\r"
        if line in ("O", "L"):
            self.is_open.set()
        elif line == "C":
            self.is_open.clear()
        elif line == "V":
            reply = "V1013\r"
        elif line[:1] in ("t", "T"):
            extended = line[0] == "T"
            digits = 8 if extended else 3
            dlc = int(line[1 + digits])
            data = bytes.fromhex(line[2 + digits : 2 + digits + dlc * 2])
            self.sent.append(
                can.Message(
                    arbitration_id=int(line[1 : 1 + digits], 16), is_extended_id=extended, data=data
                )
            )
            reply = "Z\r" if extended else "z\r"
        elif line and line[0] not in "SsYC":
            reply = "\a"
        os.write(self.master, reply.encode())

    def emit(self, frame_id: int, data: bytes, *, extended: bool = False) -> None:
        head = f"T{frame_id:08X}" if extended else f"t{frame_id:03X}"
        os.write(self.master, f"{head}{len(data)}{data.hex().upper()}\r".encode())

    def close(self) -> None:
        """Unplug: the device path disappears, the pty closes."""
        with contextlib.suppress(FileNotFoundError):
            if self.link.readlink() == Path(self.slave_path):
                self.link.unlink()
        self._stop.set()
        self._thread.join(timeout=5)
        if self.master >= 0:
            os.close(self.master)
            self.master = -1  # (the number may be reused: never close it twice)


async def test_slcan_adapter_over_pty(make_rig: Callable[..., Any], tmp_path: Path) -> None:
    """python-can's slcan interface against a simulated adapter: open, receive, send, replug."""
    link = tmp_path / "ttyCAN0"
    adapter = SlcanAdapter(link)
    replugged: SlcanAdapter | None = None
    try:
        async with make_rig(
            interface="slcan",
            channel=str(link),
            bitrate=500_000,
            bus_options={"sleep_after_open": 0},
        ) as rig:
            assert await asyncio.to_thread(adapter.is_open.wait, 5)
            assert "S6" in adapter.commands  # 500 kbit/s
            assert adapter.commands[-1] == "O"

            status = DATABASE.get_message_by_name("CLIMATE_STATUS")
            adapter.emit(
                0x2B0,
                status.encode(
                    {
                        "Temperature": 21.7,
                        "Humidity": 45,
                        "FanActive": 1,
                        "State": 1,
                        "OutsideTemp": 12,
                    }
                ),
            )
            await rig.api.wait_event(_is_value("CLIMATE", "Temperature", 217 * 0.1))
            await rig.api.wait_event(_is_value("CLIMATE", "State_label", "Heating"))
            energy = DATABASE.get_message_by_name("CLIMATE_ENERGY")
            payload = energy.encode({"Power": 250.0, "EnergyTotal": 1.5})
            adapter.emit(0x18FF1234, payload, extended=True)
            total = energy.decode(payload)["EnergyTotal"]  # 1500 * 0.001, as cantools scales
            await rig.api.wait_event(_is_value("CLIMATE", "EnergyTotal", total))

            await rig.gateway.commands.set_field("DASH", "DASH_LIGHT_CMD", "DimmerCmd", 75.5)
            await wait_for(lambda: adapter.sent, what="frame at the adapter")
            frame = adapter.sent[0]
            assert frame.arbitration_id == 0x301
            assert DATABASE.get_message_by_name("DASH_LIGHT_CMD").decode(frame.data) == {
                "Light1Cmd": 0,
                "Light2Cmd": 0,
                "DimmerCmd": 75.5,
            }

            # Unplug: the read fails, reopening fails until an adapter is back at the path.
            adapter.close()
            await rig.api.wait_event(_is_status("CLIMATE", False))
            await wait_for(lambda: not rig.provider.connected, what="disconnected")
            await asyncio.sleep(0.3)  # a few failed reopen attempts
            assert not rig.provider.connected
            replugged = SlcanAdapter(link)
            await wait_for(lambda: rig.provider.connected, what="reconnected")
            assert rig.provider.bus_opens == 2
            replugged.emit(
                0x2B0,
                status.encode(
                    {
                        "Temperature": 22.0,
                        "Humidity": 45,
                        "FanActive": 1,
                        "State": 1,
                        "OutsideTemp": 12,
                    }
                ),
            )
            await rig.api.wait_event(_is_value("CLIMATE", "Temperature", 22.0))
    finally:
        adapter.close()
        if replugged is not None:
            replugged.close()


# SocketCAN --------------------------------------------------------------------------------------


@pytest.mark.skipif(
    not Path(f"/sys/class/net/{VCAN}").exists(),
    reason=f"no {VCAN} interface (needs: modprobe vcan; ip link add dev {VCAN} type vcan; "
    f"ip link set up {VCAN})",
)
async def test_socketcan_vcan(make_rig: Callable[..., Any]) -> None:
    """The same decoding on a Linux virtual CAN interface through SocketCAN."""
    async with make_rig(interface="socketcan", peer_interface="socketcan", channel=VCAN) as rig:
        rig.send("KEYPAD_PRESS", Key=5, Held=1)
        await rig.api.wait_event(_is_value("KEYPAD", "Key", 5))
        await rig.gateway.commands.set_field("DASH", "DASH_LIGHT_CMD", "Light2Cmd", True)
        frame = await rig.receive()
        assert frame is not None
        assert frame.arbitration_id == 0x301


# Configuration --------------------------------------------------------------------------------


def _context(messages: list[Any], data_dir: Path) -> ProviderContext:
    return ProviderContext(
        gateway_id="gw",
        submit=lambda message, _origin: messages.append(message),
        drops=DropCounter(),
        connection_changed=lambda _name, _connected: None,
        data_dir=data_dir,
    )


async def test_configuration_errors(tmp_path: Path) -> None:
    """Bad options, a missing DBC, or names not in the DBC stop the provider with a clear error."""
    with pytest.raises(ConfigError, match="bogus"):
        CanProvider("can", _context([], tmp_path), {"channel": "x", "bogus": 1})
    with pytest.raises(ConfigError, match="channel"):
        CanProvider("can", _context([], tmp_path), {})
    for options, error in (
        ({"dbc": "/nonexistent/bus.dbc"}, "cannot read DBC"),
        ({"dbc": str(DBC), "gateway_node": "ECU9"}, "gateway_node 'ECU9' is not a node"),
        ({"dbc": str(DBC), "writable_messages": ["NOPE"]}, r"\['NOPE'\] are not messages"),
    ):
        provider = CanProvider(
            "can", _context([], tmp_path), {"interface": "virtual", "channel": "x"} | options
        )
        with pytest.raises(ConfigError, match=error):
            await provider.start()
        await provider.stop()


async def test_ids_are_sanitized_and_prefixed(tmp_path: Path) -> None:
    """DBC names become valid, unique ids; node_prefix keeps two buses apart."""
    assert sanitize_id("Motor Ctrl/1") == "Motor_Ctrl_1"
    assert sanitize_id("X" * 80) == "X" * 64
    assert sanitize_id("A", {"A", "A_2"}) == "A_3"
    assert sanitize_id("") == "x"
    messages: list[Any] = []
    (tmp_path / "bus.dbc").write_bytes(DBC.read_bytes())  # relative: in the data directory
    provider = CanProvider(
        "can2",
        _context(messages, tmp_path),
        {"interface": "virtual", "channel": "x", "dbc": "bus.dbc", "node_prefix": "bus2-"},
    )
    try:
        await provider.start()
        announced = [m.node for m in messages if isinstance(m, NodeAnnounced)]
        assert [n.id for n in announced] == [
            "bus2-DASH",
            "bus2-SWITCHPANEL",
            "bus2-CLIMATE",
            "bus2-KEYPAD",
        ]
        assert {n.provider for n in announced} == {"can2"}
        assert not any(
            f.writable for n in announced for s in n.sources.values() for f in s.fields.values()
        )  # no gateway_node: nothing writable
        with pytest.raises(CommandError) as err:
            await provider.set_field(announced[0], "DASH_LIGHT_CMD", "Light1Cmd", True)
        assert err.value.code == "not_writable"
    finally:
        await provider.stop()


def _odd_dbc(path: Path) -> None:
    """A DBC at the schema's limits: 70 messages on one node, 70 choices, no transmitter."""
    lines = ['VERSION ""', "", "NS_ :", "", "BS_:", "", "BU_: BIG GW", ""]
    for index in range(70):
        lines += [
            f"BO_ {0x400 + index} BIG_{index}: 1 BIG",
            ' SG_ Level : 0|8@1+ (1,0) [0|0] "" GW',
        ]
    lines += [
        "BO_ 1536 ORPHAN: 2 Vector__XXX",
        ' SG_ Code : 0|8@1+ (1,0) [0|0] "" GW',
        ' SG_ Gear : 8|4@1+ (2,0) [0|0] "averyveryverylongunit" GW',
    ]
    names = " ".join(f'{raw} "{"Reserved" if raw >= 60 else f"C{raw}"}"' for raw in range(70))
    lines += [f"VAL_ 1536 Code {names} ;", 'VAL_ 1536 Gear 1 "First" 2 "Second" ;']
    path.write_text("\n".join(lines) + "\n")


async def test_dbc_at_the_schema_limits(tmp_path: Path) -> None:
    """Over 64 messages split a node; sparse value tables give labels; no transmitter: can-bus."""
    _odd_dbc(tmp_path / "odd.dbc")
    messages: list[Any] = []
    channel = f"edgeiot-{uuid.uuid4().hex[:8]}"
    provider = CanProvider(
        "can",
        _context(messages, tmp_path),
        {
            "interface": "virtual",
            "channel": channel,
            "dbc": "odd.dbc",
            "writable_messages": ["ORPHAN"],
        },
    )
    try:
        await provider.start()
        nodes = {m.node.id: m.node for m in messages if isinstance(m, NodeAnnounced)}
        assert [(n, len(node.sources)) for n, node in nodes.items()] == [
            ("BIG", 64),
            ("BIG-2", 6),
            ("can-bus", 1),
        ]
        code = nodes["can-bus"].field("ORPHAN", "Code")
        gear = nodes["can-bus"].field("ORPHAN", "Gear")
        assert code is not None
        assert gear is not None
        # 70 labels of 256 raw values, 2 of 16: numbers, with their labels beside them.
        assert (code.type, code.options, code.max) == ("int", None, 255)
        assert (gear.type, gear.unit, gear.max) == ("int", "averyveryverylon", 30)
        assert nodes["can-bus"].field("ORPHAN", "Code_label") is not None

        messages.clear()
        await wait_for(lambda: provider.connected, what="connected")
        provider.inbox.extend(
            [
                can.Message(arbitration_id=0x600, is_extended_id=False, data=bytes([65, 2])),
                can.Message(arbitration_id=0x600, is_extended_id=False, data=bytes([3, 1])),
                can.Message(arbitration_id=0x600, is_extended_id=False, data=bytes([3, 3])),
            ]
        )
        provider._drain()
        values = [m.values for m in messages if isinstance(m, FieldValues)]
        # Duplicate labels stay as cantools names them; raw 3 of Gear (scale 2) has no label.
        assert values == [
            {"Code": 65, "Code_label": "Reserved", "Gear": 4, "Gear_label": "Second"},
            {"Code": 3, "Code_label": "C3", "Gear": 2, "Gear_label": "First"},
            {"Gear": 6, "Gear_label": ""},
        ]
        assert provider.context.drops.counts["can_decode_error"] == 0

        # A burst larger than one batch is drained over several loop turns; remote frames count.
        burst = [
            can.Message(arbitration_id=0x400, is_extended_id=False, data=bytes([n % 256]))
            for n in range(4500)
        ]
        provider.inbox.extend([*burst, can.Message(arbitration_id=0x400, is_remote_frame=True)])
        received = provider.frames_received
        provider._drain()
        assert provider.frames_received - received == can_provider.DRAIN_BATCH
        await wait_for(lambda: not provider.inbox, what="drained")
        assert provider.frames_received - received == 4501
        assert provider.frames_remote == 1

        await provider.set_field(nodes["can-bus"], "ORPHAN", "Code", 61)
        await provider.set_field(nodes["can-bus"], "ORPHAN", "Gear", 4)
        with pytest.raises(CommandError, match="does not fit"):
            await provider.set_field(nodes["can-bus"], "ORPHAN", "Code", 256)
        assert provider.frames_sent == 2
    finally:
        await provider.stop()
