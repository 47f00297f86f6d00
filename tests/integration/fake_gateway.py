"""A scripted gateway WebSocket endpoint on loopback, for failure paths a healthy gateway never
produces (a socket closed mid-handshake, a malformed state dump, a command never answered)."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN

from ..servers import LOOPBACK, free_port

FAKE_ID = "fake-gw"


def fake_node(node_id: str = "n1", **changes: Any) -> dict[str, Any]:
    """A node as the API shows it: one float sensor field, one action, online."""
    node: dict[str, Any] = {
        "id": node_id, "provider": "mqtt", "name": "Bench", "name_by_user": None, "kind": None,
        "manufacturer": None, "model": None, "firmware": None, "hardware": None,
        "actions": ["reboot"], "heartbeat_interval": None,
        "sources": [{"id": "probe", "name": "Probe", "events": [], "fields": [
            {"id": "temp", "name": "Temp", "type": "float", "unit": "°C",
             "device_class": "temperature", "writable": False, "value": 1.5, "updated": 1.0},
        ]}],
        "online": True, "battery": None, "rssi": None, "last_seen": 1.0,
    }  # fmt: skip
    node.update(changes)
    return node


class FakeGateway:
    """Answers the handshake and commands; `modes[n]` scripts the n-th connection (1-based):
    `close` closes the socket on start_listening, `bad_state` answers it without `nodes`,
    `stall` holds its answer until `release` is set, `coalesce` sends its answer and the
    events in `after_state` in one frame (a JSON array). Commands in `ignore` are never
    answered, those in `unknown` get an `unknown_command` error (an older gateway);
    `results[command]` is a command's result (default `{}`) and `then[command]` the events sent
    right after it, in the same write burst."""

    def __init__(self) -> None:
        self.gateway_id = FAKE_ID
        self.nodes: list[dict[str, Any]] = [fake_node()]
        self.modes: dict[int, str] = {}
        self.ignore: set[str] = set()
        self.unknown: set[str] = set()
        self.after_state: list[dict[str, Any]] = []
        self.results: dict[str, Any] = {}
        self.then: dict[str, list[dict[str, Any]]] = {}
        self.release = asyncio.Event()
        self.connections = 0
        self.commands: list[dict[str, Any]] = []
        self.port = free_port()
        self._sockets: list[web.WebSocketResponse] = []

    @property
    def entry_data(self) -> dict[str, Any]:
        return {CONF_HOST: LOOPBACK, CONF_PORT: self.port, CONF_TOKEN: "t" * 43}

    def state(self) -> dict[str, Any]:
        return {
            "gateway": {"gateway_id": self.gateway_id, "version": "0.0.1", "schema_version": 1,
                        "providers": [{"name": "mqtt", "type": "mqtt", "connected": True}]},
            "status": {"processed": 1, "dropped": 0, "recorder": None},
            "nodes": copy.deepcopy(self.nodes),
        }  # fmt: skip

    async def drop(self) -> None:
        """Close every open connection (the gateway restarting)."""
        for ws in self._sockets:
            await ws.close()

    async def send_frame(self, frame: Any) -> None:
        """Send one frame as it is (a coalesced array, or something malformed) on every
        open connection."""
        for ws in self._sockets:
            if not ws.closed:
                await ws.send_json(frame)

    async def send_event(self, event: dict[str, Any]) -> None:
        """Send an event on every open connection."""
        for ws in self._sockets:
            if not ws.closed:
                await ws.send_json({"type": "event", "event": event})

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        mode = self.modes.get(self.connections, "normal")
        self._sockets.append(ws)
        await ws.send_json({"type": "version", "gateway_id": self.gateway_id,
                            "server_version": "0.0.1", "min_schema_version": 1,
                            "max_schema_version": 1})  # fmt: skip
        try:
            async for message in ws:
                command = json.loads(message.data)
                self.commands.append(command)
                result: Any = self.results.get(command["command"], {})
                if command["command"] == "start_listening":
                    if mode == "close":
                        await ws.close()
                        break
                    if mode == "stall":
                        await self.release.wait()
                    state = self.state()
                    if mode == "bad_state":
                        del state["nodes"]
                    result = {"state": state}
                    if mode == "coalesce":
                        answer = {"type": "result", "message_id": command["message_id"],
                                  "success": True, "result": result}  # fmt: skip
                        events = [{"type": "event", "event": e} for e in self.after_state]
                        await ws.send_json([answer, *events])
                        continue
                elif command["command"] in self.ignore:
                    continue
                elif command["command"] in self.unknown:
                    await ws.send_json({"type": "result", "message_id": command["message_id"],
                                        "success": False, "error_code": "unknown_command",
                                        "message": "unknown command"})  # fmt: skip
                    continue
                await ws.send_json({"type": "result", "message_id": command["message_id"],
                                    "success": True, "result": result})  # fmt: skip
                for event in self.then.get(command["command"], ()):
                    await ws.send_json({"type": "event", "event": event})
        finally:
            self._sockets.remove(ws)
        return ws


@asynccontextmanager
async def running_fake_gateway() -> AsyncIterator[FakeGateway]:
    """A FakeGateway serving /api/v1/ws on a free loopback port."""
    fake = FakeGateway()
    app = web.Application()
    app.router.add_get("/api/v1/ws", fake._handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, LOOPBACK, fake.port).start()
    try:
        yield fake
    finally:
        fake.release.set()
        await fake.drop()  # else cleanup waits out aiohttp's shutdown timeout for open sockets
        await runner.cleanup()
