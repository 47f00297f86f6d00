"""WebSocket API: version handshake, commands with message ids, and the live event stream."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any

import voluptuous as vol
from aiohttp import WSCloseCode, WSMsgType, web
from voluptuous.humanize import humanize_error

from .. import __version__, bus
from ..commands import (
    INTERNAL_ERROR,
    INVALID_MESSAGE,
    SCHEMA_INCOMPATIBLE,
    UNKNOWN_COMMAND,
    CommandError,
    Commands,
)
from ..schemas import SCHEMA_VERSION, Identifier

_LOGGER = logging.getLogger(__name__)

MIN_SCHEMA_VERSION = 1
MAX_SCHEMA_VERSION = SCHEMA_VERSION
# Events a slow client may fall behind by before it is disconnected (it resyncs on reconnect).
MAX_PENDING_EVENTS = 100_000

MESSAGE_SCHEMA = vol.Schema(
    {vol.Required("message_id"): vol.Any(str, int), vol.Required("command"): str},
    extra=vol.ALLOW_EXTRA,
)

Value = vol.Any(bool, int, float, str)

COMMAND_SCHEMAS: dict[str, vol.Schema] = {
    "set_api_schema": vol.Schema({vol.Required("schema_version"): int}),
    "start_listening": vol.Schema({}),
    "stop_listening": vol.Schema({}),
    "get_state": vol.Schema({}),
    "get_diagnostics": vol.Schema({}),
    "set_field": vol.Schema(
        {
            vol.Required("node_id"): Identifier,
            vol.Required("source_id"): Identifier,
            vol.Required("field_id"): Identifier,
            vol.Required("value"): Value,
            vol.Optional("ack"): bool,  # ask the node to echo it (MySensors)
        }
    ),
    "node_action": vol.Schema(
        {vol.Required("node_id"): Identifier, vol.Required("action"): Identifier}
    ),
    "rename_node": vol.Schema(
        {vol.Required("node_id"): Identifier, vol.Required("name"): vol.Any(None, str)}
    ),
    "remove_node": vol.Schema({vol.Required("node_id"): Identifier}),
    "backup": vol.Schema({}),
    "restore": vol.Schema({vol.Required("backup"): dict}),
}


class WebSocketClient:
    """One API connection; events go out through a bounded queue drained by a writer task."""

    def __init__(
        self,
        commands: Commands,
        events: bus.EventBus,
        max_message_bytes: int,
        errors: Counter[str],
    ) -> None:
        self.commands = commands
        self.errors = errors  # rejected commands by error code, shared by all clients
        self.events = events
        self.max_message_bytes = max_message_bytes
        self.schema_version = MAX_SCHEMA_VERSION
        self._ws: web.WebSocketResponse | None = None
        self._outbox: deque[str] = deque()
        self._wakeup = asyncio.Event()
        self._unsubscribe: Callable[[], None] | None = None
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            "set_api_schema": self._set_api_schema,
            "start_listening": self._start_listening,
            "stop_listening": self._stop_listening,
            "get_state": self._sync(lambda _: commands.state()),
            "get_diagnostics": self._sync(lambda _: commands.diagnostics()),
            "set_field": self._set_field,
            "node_action": self._node_action,
            "rename_node": self._sync(
                lambda a: {"node": commands.rename_node(a["node_id"], a["name"])}
            ),
            "remove_node": self._sync(lambda a: commands.remove_node(a["node_id"])),
            "backup": self._sync(lambda _: {"backup": commands.backup()}),
            "restore": self._restore,
        }  # fmt: skip

    async def serve(self, request: web.Request) -> web.WebSocketResponse:
        """Run the connection until either side closes it."""
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=self.max_message_bytes)
        await ws.prepare(request)
        self._ws = ws
        writer = asyncio.create_task(self._write_loop(ws), name="edgeiot-ws-writer")
        self._queue(
            {
                "type": "version",
                "server_version": __version__,
                "gateway_id": self.commands.gateway.gateway_id,
                "min_schema_version": MIN_SCHEMA_VERSION,
                "max_schema_version": MAX_SCHEMA_VERSION,
            }
        )
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await self._handle_text(message.data)
                elif message.type == WSMsgType.BINARY:
                    self._error(None, INVALID_MESSAGE, "binary frames are not supported")
                elif message.type == WSMsgType.ERROR:
                    _LOGGER.warning(
                        "WebSocket %s closed with error %s", request.remote, ws.exception()
                    )
        finally:
            self._stop_events()
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        return ws

    async def close(self) -> None:
        """Close the connection from the server side."""
        if self._ws is not None:
            await self._ws.close(code=WSCloseCode.GOING_AWAY, message=b"gateway stopping")

    async def _handle_text(self, text: str) -> None:
        try:
            data = json.loads(text)
        except ValueError as err:
            self._error(None, INVALID_MESSAGE, f"invalid JSON: {err}")
            return
        try:
            envelope = MESSAGE_SCHEMA(data)
        except vol.Invalid as err:
            message_id = data.get("message_id") if isinstance(data, dict) else None
            self._error(message_id, INVALID_MESSAGE, f"not a command message: {err}")
            return
        message_id, name = envelope.pop("message_id"), envelope.pop("command")
        handler, schema = self._handlers.get(name), COMMAND_SCHEMAS.get(name)
        if handler is None or schema is None:
            self._error(message_id, UNKNOWN_COMMAND, f"unknown command {name!r}")
            return
        try:
            args = schema(envelope)
        except vol.Invalid as err:
            self._error(message_id, INVALID_MESSAGE, humanize_error(envelope, err))
            return
        try:
            result = await handler(args)
        except CommandError as err:
            self._error(message_id, err.code, err.message)
        except Exception as err:
            _LOGGER.exception("Command %s failed", name)
            self._error(message_id, INTERNAL_ERROR, repr(err))
        else:
            self._queue({"type": "result", "message_id": message_id, "success": True,
                         "result": result if result is not None else {}})  # fmt: skip

    def _error(self, message_id: Any, code: str, message: str) -> None:
        self.errors[code] += 1
        _LOGGER.info("WebSocket command %s rejected: %s: %s", message_id, code, message)
        self._queue({"type": "result", "message_id": message_id, "success": False,
                     "error_code": code, "message": message})  # fmt: skip

    @staticmethod
    def _sync(func: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Awaitable[Any]]:
        async def run(args: dict[str, Any]) -> Any:
            return func(args)

        return run

    async def _set_api_schema(self, args: dict[str, Any]) -> None:
        version = args["schema_version"]
        if not MIN_SCHEMA_VERSION <= version <= MAX_SCHEMA_VERSION:
            raise CommandError(
                SCHEMA_INCOMPATIBLE,
                f"schema {version} is outside {MIN_SCHEMA_VERSION}..{MAX_SCHEMA_VERSION}",
            )
        self.schema_version = version

    async def _start_listening(self, _args: dict[str, Any]) -> dict[str, Any]:
        # The state and the subscription are taken in the same loop turn: no event is missed.
        if self._unsubscribe is None:
            self._unsubscribe = self.events.subscribe(self._on_event)
        return {"state": self.commands.state()}

    async def _stop_listening(self, _args: dict[str, Any]) -> None:
        self._stop_events()

    async def _set_field(self, args: dict[str, Any]) -> dict[str, Any]:
        value = await self.commands.set_field(
            args["node_id"], args["source_id"], args["field_id"], args["value"], args.get("ack")
        )
        return {"value": value}

    async def _node_action(self, args: dict[str, Any]) -> None:
        await self.commands.node_action(args["node_id"], args["action"])

    async def _restore(self, args: dict[str, Any]) -> dict[str, int]:
        return await self.commands.restore(args["backup"])

    def _stop_events(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _on_event(self, event: bus.Event) -> None:
        if len(self._outbox) >= MAX_PENDING_EVENTS:
            _LOGGER.warning("WebSocket client fell %d events behind; disconnecting it",
                            MAX_PENDING_EVENTS)  # fmt: skip
            self._stop_events()
            self._outbox.clear()
            if self._ws is not None:
                asyncio.get_running_loop().create_task(
                    self._ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow")
                )
            return
        self._queue({"type": "event", "event": {"event": event.name, **event.data}})

    def _queue(self, message: dict[str, Any]) -> None:
        self._outbox.append(json.dumps(message))
        self._wakeup.set()

    async def _write_loop(self, ws: web.WebSocketResponse) -> None:
        outbox = self._outbox
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while outbox and not ws.closed:
                await ws.send_str(outbox.popleft())
