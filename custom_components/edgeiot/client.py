"""WebSocket client of the EdgeIoT gateway API (one connection, commands and events)."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
from homeassistant.util.json import json_loads

_LOGGER = logging.getLogger(__name__)

SCHEMA_VERSION = 1
CONNECT_TIMEOUT = 10
COMMAND_TIMEOUT = 30
# The gateway pings every 30 s; a socket silent for longer than this is dead.
IDLE_TIMEOUT = 75
# Messages handled before giving the event loop a turn when a backlog is buffered.
YIELD_EVERY = 200
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class EdgeIoTError(Exception):
    """Root of the client's errors."""


class CannotConnect(EdgeIoTError):
    """The gateway cannot be reached (or the handshake failed)."""


class InvalidAuth(EdgeIoTError):
    """The gateway refused the token."""


class ConnectionClosed(EdgeIoTError):
    """The connection dropped."""


class CommandTimeout(EdgeIoTError):
    """The gateway did not answer a command in time."""


class InvalidState(EdgeIoTError):
    """The gateway's state dump lacks what the integration needs."""


class WrongGateway(EdgeIoTError):
    """Another gateway answered at the entry's address."""

    def __init__(self, expected: str, found: str) -> None:
        super().__init__(f"expected gateway {expected}, found {found}")
        self.expected = expected
        self.found = found


class FailedCommand(EdgeIoTError):
    """The gateway answered a command with an error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


type EventCallback = Callable[[dict[str, Any]], None]


class EdgeIoTClient:
    """Connects to `ws://host:port/api/v1/ws` with a bearer token."""

    def __init__(self, session: aiohttp.ClientSession, host: str, port: int, token: str) -> None:
        self._session = session
        self.base_url = f"http://{host}:{port}/"
        self.url = f"{self.base_url}api/v1/ws"
        self._token = token
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._on_event: EventCallback | None = None
        self._listening = False
        # Messages that came in the frame of a `call` result, after it: `listen` takes them first.
        self._backlog: list[Any] = []
        self.version: dict[str, Any] = {}

    @property
    def connected(self) -> bool:
        """Whether the socket is open."""
        return self._ws is not None and not self._ws.closed

    @property
    def gateway_id(self) -> str:
        """The gateway's id, from its version message."""
        return str(self.version["gateway_id"])

    async def connect(self) -> dict[str, Any]:
        """Open the socket and read the version message."""
        try:
            self._ws = await self._session.ws_connect(
                self.url,
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=aiohttp.ClientWSTimeout(ws_close=CONNECT_TIMEOUT),
                max_msg_size=MAX_MESSAGE_BYTES,
            )
        except aiohttp.WSServerHandshakeError as err:
            if err.status == 401:
                raise InvalidAuth("the gateway refused the token") from err
            raise CannotConnect(f"handshake failed: {err.status} {err.message}") from err
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise CannotConnect(f"cannot reach {self.url}: {err}") from err
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                version: dict[str, Any] = await self._ws.receive_json()
            if version.get("type") != "version" or not (
                version["min_schema_version"] <= SCHEMA_VERSION <= version["max_schema_version"]
            ):
                raise CannotConnect(f"unsupported gateway API: {version}")
        except (
            TypeError,
            ValueError,
            KeyError,
            AttributeError,
            TimeoutError,
            aiohttp.ClientError,
        ) as err:
            await self.disconnect()
            raise CannotConnect(f"bad handshake: {err!r}") from err
        except CannotConnect:
            await self.disconnect()
            raise
        self.version = version
        return version

    async def listen(self, on_event: EventCallback) -> None:
        """Receive until the connection closes; events go to `on_event`. Raises ConnectionClosed."""
        ws = self._ws
        if ws is None:
            raise ConnectionClosed("not connected")
        self._on_event = on_event
        self._listening = True
        try:
            count = 0
            while True:
                if self._backlog:
                    messages, self._backlog = self._backlog, []
                else:
                    try:
                        message = await ws.receive(timeout=IDLE_TIMEOUT)
                    except TimeoutError:
                        await ws.close()
                        raise ConnectionClosed(f"gateway silent for {IDLE_TIMEOUT} s") from None
                    if message.type != aiohttp.WSMsgType.TEXT:
                        break
                    messages = _messages(json_loads(message.data))
                for data in messages:
                    if not isinstance(data, dict):
                        _LOGGER.warning(
                            "Dropped a gateway message that is not an object: %.200s", data
                        )
                        continue
                    self._dispatch(data)
                    count += 1
                    if count % YIELD_EVERY == 0:
                        await asyncio.sleep(0)  # a backlog must not hold the event loop
        finally:
            self._listening = False
            self._on_event = None
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionClosed("connection lost"))
            self._pending.clear()
        raise ConnectionClosed(f"connection closed ({ws.close_code})")

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") == "event":
            if self._on_event is not None:
                self._on_event(message["event"])
            return
        future = self._pending.pop(str(message.get("message_id")), None)
        if future is None or future.done():
            return
        if message.get("success"):
            future.set_result(message.get("result", {}))
        else:
            future.set_exception(
                FailedCommand(message.get("error_code", "unknown"), message.get("message", ""))
            )

    async def command(self, command: str, **args: Any) -> Any:
        """Send a command and wait for its result (needs `listen` running, or use `call`)."""
        if self._ws is None or self._ws.closed:
            raise ConnectionClosed("not connected")
        if not self._listening:  # mid-handshake: nothing would read the result
            raise ConnectionClosed("connecting")
        message_id = str(next(self._ids))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        try:
            await self._ws.send_json({"message_id": message_id, "command": command, **args})
            async with asyncio.timeout(COMMAND_TIMEOUT):
                return await future
        except TimeoutError as err:
            raise CommandTimeout(f"no answer to {command} in {COMMAND_TIMEOUT} s") from err
        except (aiohttp.ClientError, ConnectionError) as err:
            raise ConnectionClosed(str(err)) from err
        finally:
            self._pending.pop(message_id, None)

    async def call(self, command: str, **args: Any) -> Any:
        """Send a command before `listen` runs, reading the socket until its result arrives."""
        ws = self._ws
        if ws is None:
            raise ConnectionClosed("not connected")
        message_id = str(next(self._ids))
        try:
            await ws.send_json({"message_id": message_id, "command": command, **args})
            async with asyncio.timeout(COMMAND_TIMEOUT):
                message = await self._read_result(ws, message_id)
        except TimeoutError as err:
            raise CommandTimeout(f"no answer to {command} in {COMMAND_TIMEOUT} s") from err
        except (aiohttp.ClientError, ConnectionError, TypeError, ValueError, AttributeError) as err:
            # A socket closed mid-handshake (WSMessageTypeError is a TypeError) or a bad frame.
            raise ConnectionClosed(f"{command} failed: {err!r}") from err
        if message.get("success"):
            return message.get("result", {})
        raise FailedCommand(message.get("error_code", ""), message.get("message", ""))

    async def _read_result(
        self, ws: aiohttp.ClientWebSocketResponse, message_id: str
    ) -> dict[str, Any]:
        """Read until the result of `message_id`; what follows it in its frame is kept."""
        while True:
            messages = _messages(await ws.receive_json())
            for index, message in enumerate(messages):
                if message.get("type") == "result" and str(message.get("message_id")) == message_id:
                    self._backlog = messages[index + 1 :]
                    return dict(message)

    async def enable_coalescing(self) -> None:
        """Ask for several messages per frame (fewer frames to read); an older gateway that
        does not know the command keeps sending one message per frame."""
        try:
            await self.call("supported_features", features={"coalesce_messages": 1})
        except FailedCommand as err:
            if err.code != "unknown_command":
                raise

    async def disconnect(self) -> None:
        """Close the socket."""
        self._backlog = []
        if self._ws is not None:
            await self._ws.close()
            self._ws = None


def _messages(frame: Any) -> list[Any]:
    """The messages of a frame: one, or a coalesced JSON array of them."""
    return frame if isinstance(frame, list) else [frame]
