"""WebSocket API: version handshake, commands with message ids, and the live event stream."""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import voluptuous as vol
from aiohttp import WSCloseCode, WSMsgType, web
from voluptuous.humanize import humanize_error

from .. import __version__, bus
from ..automation.api import AUTOMATION_COMMANDS
from ..commands import (
    INTERNAL_ERROR,
    INVALID_MESSAGE,
    INVALID_VALUE,
    SCHEMA_INCOMPATIBLE,
    UNKNOWN_COMMAND,
    CommandError,
    Commands,
)
from ..pacing import pause
from ..schemas import SCHEMA_VERSION, Identifier
from ..updates.images import FORMATS
from ..updates.library import CHUNK_MAX
from ..updates.serial_flash import DEFAULT_BAUD
from . import codec
from .errors import reject
from .outbox import FieldKey, Outbox

if TYPE_CHECKING:
    from ..config import ApiConfig


MIN_SCHEMA_VERSION = 1
MAX_SCHEMA_VERSION = SCHEMA_VERSION
# Bytes queued for a client beyond which it is disconnected (with api.max_pending_messages).
MAX_PENDING_BYTES = 64 * 1024 * 1024
# Commands wait while their connection's queue holds more than this share of the limits, so
# results alone never fill it and a pipelining client is paced by its own reading.
RESULTS_SHARE = 4
# How long a slow client's close handshake may take before its connection is dropped.
CLOSE_SECONDS = 2.0
TOO_SLOW = "too_slow"

_encode = json.JSONEncoder(separators=(",", ":")).encode

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
    **{name: schema for name, (schema, _) in AUTOMATION_COMMANDS.items()},
    "firmware_upload_begin": vol.Schema(
        {
            vol.Required("name"): str,
            vol.Required("version"): str,
            vol.Required("target"): str,
            vol.Optional("format"): vol.In(FORMATS),
            vol.Required("size"): vol.All(int, vol.Range(min=0)),
            vol.Optional("sha256"): str,
            vol.Optional("release_notes"): vol.Any(None, str),
            vol.Optional("offset"): vol.All(int, vol.Range(min=0)),
            vol.Optional("mysensors"): dict,
        }
    ),
    "firmware_upload_chunk": vol.Schema(
        {
            vol.Required("upload_id"): str,
            vol.Required("offset"): vol.All(int, vol.Range(min=0)),
            vol.Required("data"): vol.All(str, vol.Length(max=(CHUNK_MAX + 2) // 3 * 4)),
        }
    ),
    "firmware_upload_end": vol.Schema({vol.Required("upload_id"): str}),
    "firmware_list": vol.Schema({}),
    "firmware_get": vol.Schema({vol.Required("id"): str}),
    "firmware_delete": vol.Schema({vol.Required("id"): str}),
    "serial_ports": vol.Schema({}),
    "flash_serial": vol.Schema(
        {
            vol.Required("port"): vol.All(str, vol.Length(min=1, max=256)),
            vol.Required("firmware_id"): str,
            vol.Optional("baud", default=DEFAULT_BAUD): int,
            vol.Optional("erase", default=False): bool,
        }
    ),
    "firmware_install": vol.Schema(
        {vol.Required("node_id"): Identifier, vol.Required("firmware_id"): str}
    ),
    "firmware_jobs": vol.Schema({}),
}


class WebSocketClient:
    """One API connection: commands one at a time, results and events through its Outbox."""

    def __init__(
        self, commands: Commands, events: bus.EventBus, config: ApiConfig, errors: Counter[str]
    ) -> None:
        self.commands = commands
        self.errors = errors  # rejected commands by error code, shared by all clients
        self.events = events
        self.config = config
        self.schema_version = MAX_SCHEMA_VERSION
        self.outbox = Outbox()
        self._ws: web.WebSocketResponse | None = None
        self._request: web.Request | None = None
        self._closing: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        library, flasher = commands.gateway.firmware, commands.gateway.flasher
        installer = commands.gateway.installer
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
            "firmware_upload_begin": self._firmware_upload_begin,
            "firmware_upload_chunk": self._firmware_upload_chunk,
            "firmware_upload_end": self._firmware_upload_end,
            "firmware_list": self._sync(lambda _: {"firmware": library.list()}),
            "firmware_get": self._sync(lambda a: library.get(a["id"])),
            "firmware_delete": self._firmware_delete,
            "serial_ports": lambda _: flasher.ports(),
            "flash_serial": self._sync(lambda a: flasher.start(
                a["port"], a["firmware_id"], a["baud"], a["erase"])),
            "firmware_install": self._sync(lambda a: installer.start(
                a["node_id"], a["firmware_id"])),
            "firmware_jobs": self._sync(lambda _: installer.list()),
        }  # fmt: skip
        automations = commands.gateway.automations
        for name, (_, run) in AUTOMATION_COMMANDS.items():
            self._handlers[name] = functools.partial(run, automations)

    async def serve(self, request: web.Request) -> web.WebSocketResponse:
        """Run the connection until either side closes it."""
        # aiohttp refuses a message of max_msg_size bytes; the limit is on larger ones.
        limit = self.config.max_message_bytes + 1
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=limit)
        await ws.prepare(request)
        self._ws, self._request = ws, request
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
        room = (self.config.max_pending_messages // RESULTS_SHARE,
                MAX_PENDING_BYTES // RESULTS_SHARE)  # fmt: skip
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await self.outbox.wait_below(*room)
                    if self._closing is not None:
                        break
                    await self._handle_text(message.data)
                    await pause()  # pipelined commands are read without waiting: yield here
                elif message.type == WSMsgType.BINARY:
                    self._error(None, INVALID_MESSAGE, "binary frames are not supported")
                elif message.type == WSMsgType.ERROR:
                    reject(self.errors, "websocket_error", logging.WARNING,
                           "WebSocket %s closed with error %s",
                           request.remote, ws.exception())  # fmt: skip
        finally:
            self._stop_events()
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            if self._closing is not None:
                await asyncio.gather(self._closing, return_exceptions=True)
        return ws

    async def close(self) -> None:
        """Close the connection from the server side."""
        if self._ws is not None:
            await self._ws.close(code=WSCloseCode.GOING_AWAY, message=b"gateway stopping")

    async def _handle_text(self, text: str) -> None:
        try:
            data = codec.loads(text)
        except codec.InvalidJsonError as err:
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
            self._error(message_id, UNKNOWN_COMMAND, f"unknown command {name!r:.80}")
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
            reject(self.errors, INTERNAL_ERROR, logging.ERROR, "Command %s failed", name,
                   exc_info=True)  # fmt: skip
            self._queue_error(message_id, INTERNAL_ERROR, repr(err)[:200])
        else:
            await self._queue_result(message_id, result if result is not None else {})

    async def _queue_result(self, message_id: Any, result: Any) -> None:
        # The result takes its place now, so events that happen while it is encoded follow it.
        slot = self.outbox.reserve()
        message = {"type": "result", "message_id": message_id, "success": True, "result": result}
        try:
            text = await codec.dumps(message)
        except Exception as err:
            reject(self.errors, INTERNAL_ERROR, logging.ERROR, "Result of %.80r not encodable",
                   message_id, exc_info=True)  # fmt: skip
            text = _encode(_error_message(message_id, INTERNAL_ERROR, repr(err)[:200]))
        self.outbox.fill(slot, text)

    def _error(self, message_id: Any, code: str, message: str) -> None:
        reject(self.errors, code, logging.INFO, "WebSocket command %.80r rejected: %s: %.200s",
               message_id, code, message)  # fmt: skip
        self._queue_error(message_id, code, message)

    def _queue_error(self, message_id: Any, code: str, message: str) -> None:
        self._queue(_error_message(message_id, code, message))

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
        # The state, the subscription and the result's place in the queue are all taken in this
        # loop turn: no event is missed, and every later event follows the state.
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

    async def _firmware_upload_begin(self, args: dict[str, Any]) -> dict[str, str]:
        return {"upload_id": await self.commands.gateway.firmware.begin(args)}

    async def _firmware_upload_chunk(self, args: dict[str, Any]) -> dict[str, int]:
        try:
            data = base64.b64decode(args["data"], validate=True)
        except binascii.Error as err:
            raise CommandError(INVALID_VALUE, f"data: not base64 ({err})") from None
        return await self.commands.gateway.firmware.chunk(args["upload_id"], args["offset"], data)

    async def _firmware_upload_end(self, args: dict[str, Any]) -> dict[str, Any]:
        return await self.commands.gateway.firmware.end(args["upload_id"])

    async def _firmware_delete(self, args: dict[str, Any]) -> None:
        await self.commands.gateway.firmware.delete(args["id"])

    def _stop_events(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _on_event(self, event: bus.Event) -> None:
        outbox = self.outbox
        text = _encode({"type": "event", "event": {"event": event.name, **event.data}})
        key: FieldKey | None = None
        if event.name == bus.FIELD_VALUE:
            data = event.data
            key = (data["node_id"], data["source_id"], data["field_id"])
            if outbox.has_field_value(key):  # replaces a queued value: the queue does not grow
                outbox.put_field_value(key, text)
                return
        if len(outbox) >= self.config.max_pending_messages or outbox.bytes >= MAX_PENDING_BYTES:
            self._cut_off(f"{len(outbox)} messages ({outbox.bytes} bytes) behind")
        elif key is not None:
            outbox.put_field_value(key, text)
        else:
            outbox.put(text)

    def _queue(self, message: dict[str, Any]) -> None:
        self.outbox.put(_encode(message))

    def _cut_off(self, why: str) -> None:
        """Disconnect a client that does not keep up (close code 1013); it resyncs on reconnect."""
        if self._closing is not None:
            return
        remote = self._request.remote if self._request is not None else None
        reject(self.errors, TOO_SLOW, logging.WARNING, "Disconnecting slow WebSocket client %s: %s",
               remote, why)  # fmt: skip
        self._stop_events()
        self.outbox.clear()
        self._closing = asyncio.get_running_loop().create_task(self._close_slow())

    async def _close_slow(self) -> None:
        if self._ws is None or self._request is None:
            return
        transport = self._request.transport
        closing = asyncio.ensure_future(
            self._ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow")
        )
        await asyncio.wait([closing], timeout=CLOSE_SECONDS)
        # The close frame waits behind data the client does not take, and a closing transport
        # still waits to send it: drop the TCP connection and what it had buffered.
        if transport is not None:
            transport.abort()
        await asyncio.gather(closing, return_exceptions=True)

    async def _write_loop(self, ws: web.WebSocketResponse) -> None:
        outbox = self.outbox
        while not ws.closed:
            text = await outbox.get()
            # `behind` is only seen by others while send_str waits for the client to take data.
            outbox.behind = True
            try:
                async with asyncio.timeout(self.config.send_timeout):
                    await ws.send_str(text)
            except TimeoutError:
                self._cut_off(f"took no data for {self.config.send_timeout} s")
                return
            finally:
                outbox.behind = False


def _error_message(message_id: Any, code: str, message: str) -> dict[str, Any]:
    return {"type": "result", "message_id": message_id, "success": False,
            "error_code": code, "message": message}  # fmt: skip
